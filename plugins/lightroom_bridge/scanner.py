"""Readiness of inbox entries: ignore rules, settle tracking, and the file-system event handler.

A top-level file is one job and a top-level folder is one session. An entry is
ready when its size and modification time (of every file, for a session) stayed
the same for the settle time and no file in it is still open for writing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

log = logging.getLogger(__name__)

DONE_FOLDER = "done"
FAILED_FOLDER = "failed"
RESERVED_FOLDERS = (DONE_FOLDER, FAILED_FOLDER)

SIDECAR_SUFFIX = ".xmp"
# Names that operating systems and office programs leave behind; compared in lower case.
SYSTEM_FILE_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
# Suffixes of files that a copy tool or browser is still writing under a temporary name.
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download")


def is_ignored(name: str) -> bool:
    """Return True for names the bridge never takes or moves on its own.

    Hidden files (which include macOS `._*` resource forks and the bridge's own
    `.NAME.part` temporary files), system files, Office lock files (`~$*`),
    files still being copied under a temporary name, and `.xmp` sidecars, which
    move together with their image instead.
    """
    lowered = name.lower()
    if name.startswith(".") or name.startswith("~$"):
        return True
    if lowered in SYSTEM_FILE_NAMES:
        return True
    return lowered.endswith(IN_PROGRESS_SUFFIXES) or lowered.endswith(SIDECAR_SUFFIX)


def sidecars_of(image: Path) -> list[Path]:
    """Return the existing `.xmp` sidecars that belong to an image: `IMG_1.xmp` and `IMG_1.tif.xmp`."""
    found = []
    for candidate in (image.with_suffix(SIDECAR_SUFFIX), image.with_name(image.name + SIDECAR_SUFFIX)):
        try:
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
        except OSError:
            continue
    return found


def session_frames(folder: Path) -> list[Path]:
    """Return every file of a session folder that is not ignored, at any depth, in name order."""
    frames = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not is_ignored(name))
        for name in sorted(files):
            if not is_ignored(name):
                frames.append(Path(root) / name)
    return frames


def entry_signature(entry: Path) -> tuple | None:
    """Return what must stay unchanged while an entry settles, or None when it is gone.

    A file's signature is its size and modification time in nanoseconds. A
    session's is that pair for every frame (relative name included), so a frame
    added, removed or still growing all count as a change.
    """
    try:
        if entry.is_dir():
            parts = []
            for frame in session_frames(entry):
                stat = frame.stat()
                parts.append((str(frame.relative_to(entry)), stat.st_size, stat.st_mtime_ns))
            return ("session", tuple(parts))
        stat = entry.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return ("file", stat.st_size, stat.st_mtime_ns)


@dataclass
class _Pending:
    signature: tuple
    stable_since: float
    first_seen: float
    last_event: float = 0.0
    open_for_writing: set[str] = field(default_factory=set)
    not_before: float = 0.0  # a retry after a transient failure waits until then


class InboxTracker:
    """Follows the top-level entries of one inbox until each has settled.

    Events (`note_event`) and full scans (`scan`) only add entries; `take_ready`
    re-reads each entry's signature, so a missed event costs time, never a file.
    An entry handed out by `take_ready` is held until `release` is called.
    """

    def __init__(self, inbox: Path, settle_s: float = 2.0, open_write_timeout_s: float = 60.0, clock=time.monotonic):
        self.inbox = Path(inbox)
        self.settle_s = settle_s
        self.open_write_timeout_s = open_write_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._taken: set[str] = set()

    # -- discovery -------------------------------------------------------------------------------

    def scan(self) -> int:
        """List the inbox and follow every entry not yet known; return how many were added."""
        try:
            names = [entry.name for entry in os.scandir(self.inbox)]
        except FileNotFoundError:
            return 0
        added = 0
        for name in names:
            if self._track(name, touched=False):
                added += 1
        return added

    def note_event(self, event: FileSystemEvent) -> None:
        """Record a file-system event below the inbox: its entry starts (or restarts) settling.

        Opening a file and closing it without writing are left out, because every
        reader (a thumbnailer, the bridge's own decode check) causes them.
        """
        if isinstance(event, (FileOpenedEvent, FileClosedNoWriteEvent)):
            return
        paths = [event.src_path]
        if getattr(event, "dest_path", ""):
            paths.append(event.dest_path)
        for raw_path in paths:
            path = os.fsdecode(raw_path)
            name, relative = self._top_level_name(path)
            if name is None:
                continue
            self._track(name, touched=True)
            self._note_write_state(name, relative, event, path == os.fsdecode(event.src_path))

    def _top_level_name(self, path: str) -> tuple[str | None, str]:
        try:
            relative = Path(path).relative_to(self.inbox)
        except ValueError:
            return None, ""
        if not relative.parts:
            return None, ""
        name = relative.parts[0]
        if name in RESERVED_FOLDERS or is_ignored(name):
            return None, ""
        return name, str(relative)

    def _track(self, name: str, touched: bool) -> bool:
        if name in RESERVED_FOLDERS or is_ignored(name):
            return False
        now = self._clock()
        with self._lock:
            pending = self._pending.get(name)
            if pending is not None:
                if touched:
                    pending.last_event = now
                return False
            if name in self._taken:
                return False
            self._pending[name] = _Pending(signature=(), stable_since=now, first_seen=now, last_event=now if touched else 0.0)
            return True

    def _note_write_state(self, name: str, relative: str, event: FileSystemEvent, is_source: bool) -> None:
        with self._lock:
            pending = self._pending.get(name)
            if pending is None or event.is_directory:
                return
            if isinstance(event, FileClosedEvent):
                pending.open_for_writing.discard(relative)
            elif isinstance(event, FileModifiedEvent):
                # Not FileCreatedEvent: watchdog also reports files found in a newly watched
                # folder as created, and no close event follows those.
                pending.open_for_writing.add(relative)
            elif isinstance(event, (FileDeletedEvent, FileMovedEvent)) and is_source:
                pending.open_for_writing.discard(relative)

    # -- settling ---------------------------------------------------------------------------------

    def take_ready(self, limit: int | None = None) -> list[Path]:
        """Return settled entries, oldest first, and hold them until `release`.

        1. Re-read each pending entry's signature; a change restarts its settle time.
        2. An entry is ready when its signature is older than the settle time and
           no event touched it within the settle time. No file in it may be open
           for writing, unless it has been quiet for the open-write timeout
           (a close event can be lost).
        """
        now = self._clock()
        with self._lock:
            names = sorted(self._pending, key=lambda name: self._pending[name].first_seen)
        ready: list[Path] = []
        for name in names:
            if limit is not None and len(ready) >= limit:
                break
            entry = self.inbox / name
            signature = entry_signature(entry)
            with self._lock:
                pending = self._pending.get(name)
                if pending is None:
                    continue
                if signature is None:
                    del self._pending[name]
                    continue
                if signature != pending.signature:
                    pending.signature = signature
                    pending.stable_since = now
                    continue
                if not self._settled(pending, now):
                    continue
                del self._pending[name]
                self._taken.add(name)
            ready.append(entry)
        return ready

    def _settled(self, pending: _Pending, now: float) -> bool:
        if now < pending.not_before:
            return False
        quiet_for = now - max(pending.stable_since, pending.last_event)
        if quiet_for < self.settle_s:
            return False
        if pending.signature[0] == "session" and not pending.signature[1]:
            return False  # an empty folder is a session still being copied
        if pending.open_for_writing and quiet_for < self.open_write_timeout_s:
            return False
        return True

    def release(self, entry: Path, retry_after_s: float = 0.0) -> None:
        """Stop holding an entry; if it is still in the inbox it settles again before the next take."""
        name = Path(entry).name
        now = self._clock()
        with self._lock:
            self._taken.discard(name)
        if entry_signature(self.inbox / name) is None:
            return
        with self._lock:
            if name not in self._pending:
                self._pending[name] = _Pending(signature=(), stable_since=now, first_seen=now, not_before=now + retry_after_s)

    # -- counts -------------------------------------------------------------------------------------

    def waiting_count(self) -> int:
        with self._lock:
            return len(self._pending)


class InboxEventHandler(FileSystemEventHandler):
    """Passes watchdog events below one inbox to its tracker."""

    def __init__(self, tracker: InboxTracker, on_change=None):
        super().__init__()
        self.tracker = tracker
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self.tracker.note_event(event)
        except Exception:  # an observer thread that raises stops watching for good
            log.exception("hot folder %s: could not handle event %r", self.tracker.inbox, event)
            return
        if self._on_change is not None:
            self._on_change()
