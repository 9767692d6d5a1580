"""The errors that reading and writing photos raise for unreadable files, damaged image data and invalid options."""

from __future__ import annotations

import errno
import re
from pathlib import Path

from PIL import Image

from ..errors import HeadshotError, register_messages
from ..i18n import N_, _

register_messages(
    {
        "file_damaged": N_("{file} is damaged: its image data could not be decoded. Export or copy the photo again."),
    }
)


def _decode_error(path: Path, error: BaseException) -> HeadshotError:
    text = str(error)
    if re.search(r"truncat|end of (file|data|stream)|premature|ended early", text, re.IGNORECASE):
        return HeadshotError("file_truncated", path, text)
    if isinstance(error, Image.UnidentifiedImageError) or "cannot identify" in text:
        return HeadshotError("not_an_image", path, text)
    return HeadshotError("file_damaged", path, f"{type(error).__name__}: {text}")


def _invalid_option(path: Path, option: str, value, allowed: str, detail: str) -> HeadshotError:
    # The shared invalid_option message has no {file} field, so the value carries the file name.
    return HeadshotError("invalid_option", path, detail, option=option, value=f"{value} ({path.name})", allowed=allowed)


def _unreadable(path: Path, error: OSError) -> HeadshotError:
    return HeadshotError("file_unreadable", path, str(error), reason=os_reason(error))


def os_reason(error: OSError) -> str:
    """Return why an operating-system call failed, in the reader's words and language."""
    reasons = {
        errno.EACCES: N_("permission denied"),
        errno.EPERM: N_("permission denied"),
        errno.ENOENT: N_("the folder does not exist"),
        errno.ENOTDIR: N_("a part of the path is a file, not a folder"),
        errno.ENOSPC: N_("no space left on the disk"),
        errno.EROFS: N_("the disk is read-only"),
        errno.EISDIR: N_("it is a folder"),
        errno.EEXIST: N_("it is a file, not a folder"),
        errno.EIO: N_("input/output error"),
    }
    from ..atomic import ReadOnlyFileError

    if isinstance(error, ReadOnlyFileError):
        return _(N_("the file is read-only"))
    reason = reasons.get(error.errno or 0)
    return _(reason) if reason else (error.strerror or type(error).__name__)
