"""The bridge's memory across restarts: which content it has processed, into which output folder, with what result.

One SQLite file in the state folder; every change is one transaction, so a
crash leaves either the old row or the new one. A lock file per inbox keeps a
second bridge (the daemon's and a stand-alone one) from taking the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Row states, as job queues name them: the content is being processed, its
# outputs are all published, or it failed with an error a person must act on.
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contents (
    inbox TEXT NOT NULL,
    content_key TEXT NOT NULL,
    state TEXT NOT NULL,
    source_name TEXT NOT NULL,
    output_dir TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_json TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (inbox, content_key)
);
CREATE INDEX IF NOT EXISTS contents_output_dir ON contents (output_dir);
"""


@dataclass
class LedgerEntry:
    content_key: str
    state: str
    source_name: str  # the inbox entry that was first processed with this content
    output_dir: Path
    attempts: int
    error: dict | None  # {"code", "path", "detail", "params", "message"} when state is FAILED


class Ledger:
    """Processed content by inbox and content key (sha256 of the frames plus the request options)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def lookup(self, inbox: Path, content_key: str) -> LedgerEntry | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT content_key, state, source_name, output_dir, attempts, error_json FROM contents WHERE inbox = ? AND content_key = ?",
                (str(inbox), content_key),
            ).fetchone()
        return _entry(row) if row else None

    def output_dir_claimed(self, output_dir: Path) -> bool:
        """Return True when any content (of any inbox) was given this output folder."""
        with self._lock:
            row = self._connection.execute("SELECT 1 FROM contents WHERE output_dir = ? LIMIT 1", (str(output_dir),)).fetchone()
        return row is not None

    def start_attempt(self, inbox: Path, content_key: str, source_name: str, output_dir: Path) -> LedgerEntry:
        """Record that processing starts (again): insert the row, or count one more attempt.

        Attempts count the runs cut off by a stop, so content that failed or
        completed before starts again from one.
        """
        with self._lock, self._transaction():
            self._connection.execute(
                """INSERT INTO contents (inbox, content_key, state, source_name, output_dir, attempts, updated)
                   VALUES (?, ?, ?, ?, ?, 1, ?)
                   ON CONFLICT (inbox, content_key) DO UPDATE SET
                       state = excluded.state,
                       attempts = CASE WHEN state = excluded.state THEN attempts + 1 ELSE 1 END,
                       error_json = NULL, updated = excluded.updated""",
                (str(inbox), content_key, IN_PROGRESS, source_name, str(output_dir), time.time()),
            )
        entry = self.lookup(inbox, content_key)
        assert entry is not None
        return entry

    def forget_attempt(self, inbox: Path, content_key: str) -> None:
        """Take back the attempt count of a run that never reached the processor's back end."""
        self._update(inbox, content_key, "attempts = MAX(attempts - 1, 0)")

    def mark_completed(self, inbox: Path, content_key: str) -> None:
        self._update(inbox, content_key, "state = ?", COMPLETED)

    def mark_failed(self, inbox: Path, content_key: str, error: dict) -> None:
        self._update(inbox, content_key, "state = ?, error_json = ?", FAILED, json.dumps(error, default=str))

    def in_progress_output_dirs(self, inbox: Path) -> list[Path]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT output_dir FROM contents WHERE inbox = ? AND state = ?", (str(inbox), IN_PROGRESS)
            ).fetchall()
        return [Path(row[0]) for row in rows]

    def _update(self, inbox: Path, content_key: str, assignments: str, *values) -> None:
        with self._lock, self._transaction():
            self._connection.execute(
                f"UPDATE contents SET {assignments}, updated = ? WHERE inbox = ? AND content_key = ?",
                (*values, time.time(), str(inbox), content_key),
            )

    def _transaction(self):
        return _Transaction(self._connection)


class _Transaction:
    def __init__(self, connection: sqlite3.Connection):
        self._connection = connection

    def __enter__(self):
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self._connection.execute("ROLLBACK" if kind else "COMMIT")


def _entry(row) -> LedgerEntry:
    content_key, state, source_name, output_dir, attempts, error_json = row
    return LedgerEntry(
        content_key=content_key,
        state=state,
        source_name=source_name,
        output_dir=Path(output_dir),
        attempts=int(attempts),
        error=json.loads(error_json) if error_json else None,
    )


def inbox_lock_path(state_dir: Path, inbox: Path) -> Path:
    digest = hashlib.sha256(str(Path(inbox).resolve()).encode("utf-8")).hexdigest()[:16]
    return Path(state_dir) / "locks" / f"inbox-{digest}.lock"


class InboxLock:
    """An exclusive, non-blocking lock on one inbox that the operating system drops when the holder dies."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")
        try:
            _lock_file(handle)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode("ascii"))
        handle.flush()
        self._handle = handle
        return True

    def holder_pid(self) -> str:
        try:
            return self.path.read_text(encoding="ascii").strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock on every platform
            self._handle = None


def _lock_file(handle) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
