"""Publishing a file in one step, so a reader sees the old file or the whole new one and never a partial one.

Photo outputs, reports and the daemon's results go through `atomic_output`: a
hidden temporary file in the target's own folder, fsync, rename over the target,
then fsync of the folder.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

# Temporary names are ".<name>.<random>.part"; the hot folder and its scanners skip them.
PART_SUFFIX = ".part"

log = logging.getLogger(__name__)


def temporary_path_for(path: Path, suffix: str = PART_SUFFIX) -> Path:
    """Return a fresh hidden name beside `path` for its temporary file."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o644, suffix: str = PART_SUFFIX) -> Iterator[BinaryIO]:
    """Yield a binary handle whose content replaces `path` in one rename when the block ends without error.

    On any error (or KeyboardInterrupt) the temporary file is removed, `path` is
    left as it was, and the error propagates unchanged. A read-only `path` is not
    replaced: ReadOnlyFileError. `suffix` lets a writer
    mark its temporary files as its own (the daemon uses ".partial").
    """
    path = Path(path)
    _reject_read_only(path)
    temporary = temporary_path_for(path, suffix)
    handle = temporary.open("xb")
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_folder(path.parent)


class ReadOnlyFileError(PermissionError):
    """The file to replace is read-only for every user."""


def _reject_read_only(path: Path) -> None:
    """Raise ReadOnlyFileError when `path` exists and no user may write it, because someone protected that file on purpose.

    The mode bits are read rather than `os.access`, which returns True for the superuser.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise ReadOnlyFileError(errno.EACCES, "the existing file is read-only", str(path))


def fsync_folder(folder: Path) -> None:
    """Make a rename or new file in `folder` durable; a no-op where folders cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        log.warning("cannot open %s to fsync it: %s", folder, error)
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        log.warning("fsync of folder %s failed: %s", folder, error)
    finally:
        os.close(descriptor)
