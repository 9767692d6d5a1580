"""Writing outputs so that no reader sees half a file, and filing sources into done/ or failed/ without overwriting anything.

A published file first exists as `.NAME.<token>.part` in its final folder, is
synced to disk and then renamed over the final name. Sources are only ever
renamed within their inbox; a name already taken gets a `-2`, `-3`, … suffix.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Callable

from pipeline.errors import HeadshotError
from pipeline.i18n import N_, gettext_for

from .scanner import DONE_FOLDER, FAILED_FOLDER, sidecars_of

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
# The daemon copies results into the output folder under `.NAME.<random>.partial`. Such a
# file may belong to a copy still running after the bridge restarted, so only an old one goes.
DAEMON_PARTIAL_SUFFIX = ".partial"
DAEMON_PARTIAL_STALE_S = 600.0
ERROR_REPORT_SUFFIX = ".error.txt"


def temporary_path_for(path: Path) -> Path:
    """Return a fresh hidden name next to `path` that the bridge and the inbox scanner both ignore."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def write_atomically(path: Path, content: bytes | Callable[[Path], None]) -> Path:
    """Publish `content` (bytes, or a function that writes a given path) under `path` in one rename.

    The temporary file lives in the same folder, so the rename never crosses a
    file system. The file is synced before the rename, and the folder after it.
    """
    path = Path(path)
    temporary = temporary_path_for(path)
    try:
        if callable(content):
            content(temporary)
        else:
            with open(temporary, "wb") as handle:
                handle.write(content)
        _sync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)
    return path


def _sync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def sync_folder(folder: Path) -> None:
    """Make renames inside `folder` durable; a no-op where folders cannot be opened (Windows)."""
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_partial_files(folder: Path) -> int:
    """Delete the temporary files that interrupted attempts left in a folder; return how many.

    The bridge's own `.NAME….part` files always go, because nothing else
    writes them; the daemon's `.NAME….partial` files only when they are older
    than DAEMON_PARTIAL_STALE_S.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    stale_before = time.time() - DAEMON_PARTIAL_STALE_S
    for entry in entries:
        if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        ours = entry.name.endswith(PART_SUFFIX)
        stale_daemon_copy = entry.name.endswith(DAEMON_PARTIAL_SUFFIX) and entry.stat(follow_symlinks=False).st_mtime < stale_before
        if ours or stale_daemon_copy:
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def numbered_name(name: str, stem_length: int, number: int) -> str:
    """Return `name` with `-number` after its first `stem_length` characters (number 1 keeps the name)."""
    if number == 1:
        return name
    return f"{name[:stem_length]}-{number}{name[stem_length:]}"


def entry_stem(entry: Path) -> str:
    """Return the part of an entry's name that a numeric suffix follows: `IMG_1` for `IMG_1.tif`, a folder's whole name."""
    return entry.name if entry.is_dir() else entry.stem


def _free_targets(entry: Path, folder: Path, is_free: Callable[[list[Path]], bool]) -> list[Path]:
    """Return the entry's and its sidecars' names in `folder` under the first number that `is_free` accepts."""
    folder.mkdir(exist_ok=True)
    group = [entry, *(sidecars_of(entry) if entry.is_file() else [])]
    stem_length = len(entry_stem(entry))
    number = 1
    while True:
        targets = [folder / numbered_name(path.name, stem_length, number) for path in group]
        if is_free(targets):
            return targets
        number += 1


def _rename_group(entry: Path, targets: list[Path]) -> Path:
    """Rename an entry and its sidecars to `targets` (the entry's first).

    Sidecars go first: if the program stops in between, the image is still in
    the inbox and is filed on the next start, next to its sidecar.
    """
    sidecars = sidecars_of(entry) if entry.is_file() else []
    for sidecar, target in zip(sidecars, targets[1:]):
        os.rename(sidecar, target)
    os.rename(entry, targets[0])
    sync_folder(targets[0].parent)
    sync_folder(entry.parent)
    return targets[0]


def _none_exist(targets: list[Path]) -> bool:
    return not any(os.path.lexists(path) for path in targets)


def file_as_done(inbox: Path, entry: Path) -> Path:
    """Rename a processed entry (and its sidecars) into `inbox/done/`; return its new path."""
    targets = _free_targets(entry, Path(inbox) / DONE_FOLDER, _none_exist)
    return _rename_group(entry, targets)


def file_as_failed(inbox: Path, entry: Path, error: HeadshotError, language: str | None = None) -> Path:
    """Rename a failed entry into `inbox/failed/` next to `<name>.error.txt` with the reason; return its new path.

    The reason file is written first, so a failed source never sits in
    failed/ without one. A reason file whose source is missing (left by a stop
    between the two steps) may be replaced.
    """
    targets = _free_targets(entry, Path(inbox) / FAILED_FOLDER, _none_exist)
    report_path = targets[0].with_name(targets[0].name + ERROR_REPORT_SUFFIX)
    write_atomically(report_path, error_report(error, inbox, language).encode("utf-8"))
    return _rename_group(entry, targets)


def error_report(error: HeadshotError, inbox: Path, language: str | None = None) -> str:
    """Return the text of a `.error.txt` file: the reason and what to do in the user's language, then the code."""
    _ = gettext_for(language)
    lines = [
        error.user_message(language),
        "",
        _(N_("When the problem is solved, put the photo back into the inbox ({inbox}); Headshot Studio takes it up by itself. You can delete this file.")).format(inbox=inbox),
        "",
        _(N_("Error code: {code}")).format(code=error.code),
        _(N_("Time: {time}")).format(time=datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
    ]
    if error.detail:
        lines.append(_(N_("Detail (for support): {detail}")).format(detail=error.detail))
    return "\n".join(lines) + "\n"
