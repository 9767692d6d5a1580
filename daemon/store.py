"""The durable job queue: jobs, their events and their published variants in one SQLite database.

Every thread gets its own connection. Writes that must happen together (claim a
job, publish its variants and mark it completed) share one transaction, so a
daemon killed at any moment leaves a state that `recover()` can reset.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
TERMINAL_STATES = (COMPLETED, FAILED, CANCELED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    origin TEXT NOT NULL,
    request_json TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT '',
    output_dir TEXT NOT NULL DEFAULT '',
    uploaded INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    error_detail TEXT,
    error_params TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, sequence);
CREATE TABLE IF NOT EXISTS events (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, sequence);
CREATE TABLE IF NOT EXISTS variants (
    job_id TEXT NOT NULL,
    variant_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    frame TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (job_id, variant_id)
);
"""


class QueueFull(Exception):
    def __init__(self, limit: int):
        super().__init__(f"{limit} jobs pending")
        self.limit = limit


@dataclass
class JobRow:
    sequence: int
    id: str
    state: str
    origin: str
    request: dict
    language: str
    output_dir: str
    uploaded: bool
    created: float
    started: float | None
    finished: float | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_detail: str | None
    error_params: dict

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "JobRow":
        return cls(
            sequence=row["sequence"], id=row["id"], state=row["state"], origin=row["origin"],
            request=json.loads(row["request_json"]), language=row["language"], output_dir=row["output_dir"],
            uploaded=bool(row["uploaded"]), created=row["created"], started=row["started"], finished=row["finished"],
            attempts=row["attempts"], error_code=row["error_code"], error_message=row["error_message"],
            error_detail=row["error_detail"], error_params=json.loads(row["error_params"] or "{}"),
        )


@dataclass
class VariantRow:
    job_id: str
    variant_id: str
    path: str  # relative to the job's folder
    recipe_json: str
    width: int
    height: int
    size: int
    sha256: str
    frame: str
    score: float


@dataclass
class EventRow:
    sequence: int
    job_id: str
    attempt: int
    time: float
    kind: str
    payload: bytes


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class JobStore:
    """The jobs database; safe to share between threads (each uses its own connection)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses no committed transaction when the process is killed,
            # only (at worst) the last ones on a power cut.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _transaction(self):
        return _Transaction(self._connection())

    # --- Jobs ----------------------------------------------------------------

    def add_job(self, job_id: str, request: dict, origin: str, language: str, output_dir: str,
                uploaded: bool, max_pending: int, first_event) -> tuple[JobRow, int]:
        """Insert a pending job and its first event; raise QueueFull when `max_pending` jobs already wait.

        `first_event(job_id, position)` returns (kind, payload) for the queued event.
        Returns the job and its position in the queue (1 = next to run).
        """
        with self._transaction() as connection:
            pending = connection.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (PENDING,)).fetchone()[0]
            if pending >= max_pending:
                raise QueueFull(max_pending)
            now = time.time()
            connection.execute(
                "INSERT INTO jobs (id, state, origin, request_json, language, output_dir, uploaded, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, PENDING, origin, json.dumps(request), language, output_dir, int(uploaded), now),
            )
            position = pending + 1
            kind, payload = first_event(job_id, position)
            connection.execute(
                "INSERT INTO events (job_id, attempt, time, kind, payload) VALUES (?, 0, ?, ?, ?)",
                (job_id, now, kind, payload),
            )
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRow.from_row(row), position

    def get_job(self, job_id: str) -> JobRow | None:
        row = self._connection().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRow.from_row(row) if row else None

    def list_jobs(self, states: list[str] | None = None, origin: str = "", limit: int = 100) -> list[JobRow]:
        clauses, values = [], []
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            values += states
        if origin:
            clauses.append("origin = ?")
            values.append(origin)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._connection().execute(
            f"SELECT * FROM jobs {where} ORDER BY sequence DESC LIMIT ?", (*values, limit)
        ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def pending_count(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (PENDING,)).fetchone()[0]

    def position(self, job: JobRow) -> int:
        """Return a pending job's place in the queue (1 = next), or 0 for any other state."""
        if job.state != PENDING:
            return 0
        ahead = self._connection().execute(
            "SELECT COUNT(*) FROM jobs WHERE state = ? AND sequence < ?", (PENDING, job.sequence)
        ).fetchone()[0]
        return ahead + 1

    def claim_next(self) -> JobRow | None:
        """Move the oldest pending job to in_progress and count the attempt; None when the queue is empty."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY sequence LIMIT 1", (PENDING,)
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE jobs SET state = ?, started = ?, attempts = attempts + 1 WHERE id = ?",
                (IN_PROGRESS, time.time(), row["id"]),
            )
            claimed = connection.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return JobRow.from_row(claimed)

    def cancel_pending(self, job_id: str, event) -> tuple[JobRow | None, int | None]:
        """Cancel the job only if it is still pending, adding `event` ((kind, payload)) in the same transaction.

        Returns the job as it is afterwards (None if unknown) and the event's
        sequence number (None when the job was not pending).
        """
        sequence = None
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE jobs SET state = ?, finished = ? WHERE id = ? AND state = ?",
                (CANCELED, time.time(), job_id, PENDING),
            ).rowcount
            if changed:
                sequence = self._insert_event(connection, job_id, 0, *event)
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return (JobRow.from_row(row) if row else None), sequence

    def finish(self, job: JobRow, state: str, event, variants: list[VariantRow] = (),
               error: tuple[str, str, str, dict] | None = None) -> int:
        """Record the job's end in one transaction: its variants, the state, the error and the last event.

        Returns the event's sequence number.
        """
        with self._transaction() as connection:
            connection.execute("DELETE FROM variants WHERE job_id = ?", (job.id,))
            for position, variant in enumerate(variants):
                connection.execute(
                    "INSERT INTO variants (job_id, variant_id, position, path, recipe_json, width, height, size,"
                    " sha256, frame, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.id, variant.variant_id, position, variant.path, variant.recipe_json, variant.width,
                     variant.height, variant.size, variant.sha256, variant.frame, variant.score),
                )
            code, message, detail, params = error or (None, None, None, {})
            connection.execute(
                "UPDATE jobs SET state = ?, finished = ?, error_code = ?, error_message = ?, error_detail = ?,"
                " error_params = ? WHERE id = ?",
                (state, time.time(), code, message, detail, json.dumps(params, default=str), job.id),
            )
            return self._insert_event(connection, job.id, job.attempts, *event)

    def requeue(self, job: JobRow, event) -> int:
        """Put a running job back in the queue (the daemon is stopping) with a new queued event."""
        with self._transaction() as connection:
            connection.execute("UPDATE jobs SET state = ?, started = NULL WHERE id = ?", (PENDING, job.id))
            return self._insert_event(connection, job.id, job.attempts, *event)

    def recover(self, max_attempts: int, queued_event, crashed_error) -> tuple[list[JobRow], list[JobRow]]:
        """Reset the jobs a killed daemon left in_progress; give up those that used up `max_attempts`.

        The events of the interrupted attempt are removed, because they may name
        variants that were never published. `queued_event(job_id, position)` and
        `crashed_error(job)` build the replacement event and the failure.
        Returns (requeued, given_up).
        """
        requeued, given_up = [], []
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT * FROM jobs WHERE state = ? ORDER BY sequence", (IN_PROGRESS,)
            ).fetchall()
            for row in rows:
                job = JobRow.from_row(row)
                connection.execute("DELETE FROM events WHERE job_id = ? AND attempt = ?", (job.id, job.attempts))
                connection.execute("DELETE FROM variants WHERE job_id = ?", (job.id,))
                if job.attempts >= max_attempts:
                    code, message, detail, params, event = crashed_error(job)
                    connection.execute(
                        "UPDATE jobs SET state = ?, finished = ?, error_code = ?, error_message = ?,"
                        " error_detail = ?, error_params = ? WHERE id = ?",
                        (FAILED, time.time(), code, message, detail, json.dumps(params), job.id),
                    )
                    self._insert_event(connection, job.id, job.attempts, *event)
                    given_up.append(job)
                    continue
                connection.execute("UPDATE jobs SET state = ?, started = NULL WHERE id = ?", (PENDING, job.id))
                ahead = connection.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state = ? AND sequence < ?", (PENDING, job.sequence)
                ).fetchone()[0]
                self._insert_event(connection, job.id, job.attempts, *queued_event(job.id, ahead + 1))
                requeued.append(job)
        return requeued, given_up

    def expired_jobs(self, finished_before: float) -> list[JobRow]:
        placeholders = ", ".join("?" for _ in TERMINAL_STATES)
        rows = self._connection().execute(
            f"SELECT * FROM jobs WHERE state IN ({placeholders}) AND finished < ?", (*TERMINAL_STATES, finished_before)
        ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def delete_job(self, job_id: str) -> None:
        with self._transaction() as connection:
            connection.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            connection.execute("DELETE FROM variants WHERE job_id = ?", (job_id,))
            connection.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def known_job_ids(self) -> set[str]:
        return {row[0] for row in self._connection().execute("SELECT id FROM jobs")}

    # --- Events and variants -------------------------------------------------------

    def add_event(self, job_id: str, attempt: int, kind: str, payload: bytes) -> int:
        with self._transaction() as connection:
            return self._insert_event(connection, job_id, attempt, kind, payload)

    @staticmethod
    def _insert_event(connection: sqlite3.Connection, job_id: str, attempt: int, kind: str, payload: bytes) -> int:
        cursor = connection.execute(
            "INSERT INTO events (job_id, attempt, time, kind, payload) VALUES (?, ?, ?, ?, ?)",
            (job_id, attempt, time.time(), kind, payload),
        )
        return cursor.lastrowid

    def events(self, job_id: str, after: int = 0) -> list[EventRow]:
        rows = self._connection().execute(
            "SELECT * FROM events WHERE job_id = ? AND sequence > ? ORDER BY sequence", (job_id, after)
        ).fetchall()
        return [EventRow(row["sequence"], row["job_id"], row["attempt"], row["time"], row["kind"], row["payload"])
                for row in rows]

    def variants(self, job_id: str) -> list[VariantRow]:
        rows = self._connection().execute(
            "SELECT * FROM variants WHERE job_id = ? ORDER BY position", (job_id,)
        ).fetchall()
        return [VariantRow(row["job_id"], row["variant_id"], row["path"], row["recipe_json"], row["width"],
                           row["height"], row["size"], row["sha256"], row["frame"], row["score"]) for row in rows]

    def variant(self, job_id: str, variant_id: str) -> VariantRow | None:
        matches = [variant for variant in self.variants(job_id) if variant.variant_id == variant_id]
        return matches[0] if matches else None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, so check-then-write steps are atomic."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.connection.execute("COMMIT")
        else:
            self.connection.execute("ROLLBACK")
