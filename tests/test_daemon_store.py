"""The SQLite job store on its own: claiming, canceling, recovery after a crash, giving up, the queue limit."""

from __future__ import annotations

import threading

import pytest

from daemon.store import CANCELED, FAILED, IN_PROGRESS, PENDING, JobStore, QueueFull


def queued(job_id: str, position: int):
    return "queued", f"queued {position}".encode()


def add(store: JobStore, job_id: str, max_pending: int = 100):
    return store.add_job(job_id, {"frames": ["/a.jpg"]}, "cli", "en", "", False, max_pending, queued)


def test_jobs_are_claimed_oldest_first(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    for job_id in ("a", "b", "c"):
        add(store, job_id)

    claimed = [store.claim_next().id for _ in range(3)]

    assert claimed == ["a", "b", "c"]
    assert store.claim_next() is None
    assert store.get_job("a").state == IN_PROGRESS
    assert store.get_job("a").attempts == 1


def test_queue_limit_counts_pending_only(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    add(store, "a", max_pending=2)
    store.claim_next()
    _job, position = add(store, "b", max_pending=2)
    add(store, "c", max_pending=2)

    with pytest.raises(QueueFull):
        add(store, "d", max_pending=2)

    assert position == 1
    assert store.pending_count() == 2
    assert store.get_job("d") is None


def test_cancel_touches_pending_job_only(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    add(store, "running")
    add(store, "waiting")
    store.claim_next()

    running, running_sequence = store.cancel_pending("running", ("canceled", b""))
    waiting, waiting_sequence = store.cancel_pending("waiting", ("canceled", b""))
    unknown, _ = store.cancel_pending("nope", ("canceled", b""))

    assert running.state == IN_PROGRESS
    assert running_sequence is None
    assert waiting.state == CANCELED
    assert waiting_sequence is not None
    assert unknown is None


def test_recover_requeues_and_drops_attempt_events(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    add(store, "a")
    add(store, "b")
    job = store.claim_next()
    store.add_event("a", job.attempts, "variant_ready", b"half-written variant")

    reopened = JobStore(tmp_path / "jobs.sqlite3")
    requeued, given_up = reopened.recover(3, queued, crashed_error=None)

    assert [job.id for job in requeued] == ["a"]
    assert given_up == []
    assert reopened.get_job("a").state == PENDING
    assert [event.kind for event in reopened.events("a")] == ["queued", "queued"]
    assert reopened.events("a")[-1].payload == b"queued 1"
    assert reopened.claim_next().id == "a"


def test_recover_gives_up_after_max_attempts(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    add(store, "a")

    def crashed(job):
        return "job_crashed", "given up", f"{job.attempts} attempts", {"job": job.id}, ("failed", b"gave up")

    for _ in range(2):
        store.claim_next()
        store.recover(2, queued, crashed)
    job = store.get_job("a")

    assert job.state == FAILED
    assert job.attempts == 2
    assert job.error_code == "job_crashed"
    assert job.error_params == {"job": "a"}
    assert store.events("a")[-1].kind == "failed"


def test_concurrent_claims_never_share_a_job(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    for index in range(40):
        add(store, f"job{index:02d}")
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all():
        while (job := store.claim_next()) is not None:
            with lock:
                claimed.append(job.id)
        store.close()

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(claimed) == [f"job{index:02d}" for index in range(40)]
