"""The one worker thread that runs queued jobs on the device, one at a time, and publishes their results.

Each attempt writes into a fresh `attempt-N` folder under the job's folder. Only
a finished attempt is renamed to `result`, and its variants are recorded after
that rename, so a daemon killed mid-run leaves nothing that looks finished.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from pipeline.atomic import fsync_folder
from pipeline.errors import HeadshotError
from pipeline.jobs import EventKind, JobCanceled, JobEvent, JobResult
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb

from .convert import event_message, pipeline_event_to_proto
from .events import EventHub
from .files import copy_atomically, remove_tree, sha256_of
from .store import CANCELED, COMPLETED, FAILED, JobRow, JobStore, VariantRow

log = logging.getLogger(__name__)

Runner = Callable[..., JobResult]
RESULT_FOLDER = "result"
FRAMES_FOLDER = "frames"
# Progress events closer together than this are neither stored nor sent, unless the fraction reaches 1.
PROGRESS_INTERVAL_S = 0.2
# Memory the jobs freed stays with the process for the next job; after this long without one it goes back.
IDLE_RELEASE_S = 30.0


def pipeline_runner(request: JobRequest, out_dir: Path, on_event=None, should_stop=None,
                    job_id: str | None = None) -> JobResult:
    """Run a job with the real pipeline; imported on first use, since it loads torch and mediapipe."""
    from pipeline.process import run_job

    options = {"job_id": job_id} if job_id and "job_id" in inspect.signature(run_job).parameters else {}
    return run_job(request, out_dir, on_event=on_event, should_stop=should_stop, **options)


class Worker:
    """Takes pending jobs from the store and runs them with `runner`, one at a time."""

    def __init__(self, store: JobStore, hub: EventHub, jobs_dir: Path, log_path: Path,
                 runner: Runner | None = None):
        self.store = store
        self.hub = hub
        self.jobs_dir = Path(jobs_dir)
        self.log_path = Path(log_path)
        self.runner = runner or pipeline_runner
        # The report names the job; a runner that accepts job_id gets the daemon's.
        self._runner_takes_job_id = "job_id" in inspect.signature(self.runner).parameters
        self.device = ""
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._current: JobRow | None = None
        self._interrupted: str | None = None
        self._last_progress = 0.0
        self._holding_since: float | None = None  # when the last job ended, until its freed memory is handed back

    # --- Control, called from other threads ---------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="headshot-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the running job to stop (it goes back to the queue) and wait for the thread; True when it ended."""
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wake(self) -> None:
        """Tell the worker a job was queued."""
        self._wake.set()

    @property
    def current_job_id(self) -> str | None:
        with self._lock:
            return self._current.id if self._current else None

    def interrupt(self, job_id: str) -> bool:
        """Make `should_stop` true for the job if it is the one running; False otherwise.

        NOTE: the job ends only when the runner next calls should_stop; a thread cannot be killed, so
        the 2-second promise of InterruptJob holds only as long as the pipeline checks that often.
        """
        with self._lock:
            if self._current is None or self._current.id != job_id:
                return False
            self._interrupted = job_id
        log.info("job %s: interrupt requested", job_id)
        return True

    # --- The thread ----------------------------------------------------------------

    def _run(self) -> None:
        self._warm_up()
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                job = self.store.claim_next()
            except Exception:
                log.exception("could not take the next job from the queue; retrying in 1 s")
                self._stopping.wait(1.0)
                continue
            if job is None:
                self._release_memory_when_idle()
                self._wake.wait(timeout=1.0)
                continue
            with self._lock:
                self._current = job
                self._interrupted = None
            try:
                self._process(job)
            except Exception:
                # The store itself failed; the job stays in_progress and recovery retries it on the next start.
                log.exception("job %s: could not record the outcome", job.id)
            finally:
                with self._lock:
                    self._current = None
                self._holding_since = time.monotonic()
        self.store.close()

    def _release_memory_when_idle(self) -> None:
        if self._holding_since is None or time.monotonic() - self._holding_since < IDLE_RELEASE_S:
            return
        from pipeline.memory import release_free_memory

        release_free_memory()
        self._holding_since = None
        log.debug("idle for %.0f s: freed memory handed back to the system", IDLE_RELEASE_S)

    def _warm_up(self) -> None:
        """Import the pipeline and find the device before the first job, so the first job is not slower."""
        if self.runner is not pipeline_runner:
            return
        try:
            import pipeline.process  # noqa: F401
            from pipeline.device import current_device

            self.device = str(current_device())
        except Exception:
            log.exception("the pipeline could not be loaded; jobs will fail until it is installed")
        log.info("worker ready on device %s", self.device or "-")

    def _should_stop(self) -> bool:
        with self._lock:
            job_id = self._current.id if self._current else None
            return self._stopping.is_set() or (job_id is not None and self._interrupted == job_id)

    def _process(self, job: JobRow) -> None:
        # 1. Start from a clean job folder: earlier attempts and an unrecorded result are leftovers of a crash.
        job_dir = self.jobs_dir / job.id
        for leftover in job_dir.glob("attempt-*"):
            remove_tree(leftover)
        remove_tree(job_dir / RESULT_FOLDER)
        attempt_dir = job_dir / f"attempt-{job.attempts}"
        attempt_dir.mkdir(parents=True)
        log.info("job %s: attempt %d started (origin %s)", job.id, job.attempts, job.origin)
        self.hub.record(event_message(job.id, job.attempts, started=pb.Started()))

        # 2. Run the pipeline into the attempt folder.
        options = {"job_id": job.id} if self._runner_takes_job_id else {}
        try:
            result = self.runner(JobRequest.from_dict(job.request), attempt_dir,
                                 on_event=lambda event: self._on_event(job, attempt_dir, event),
                                 should_stop=self._should_stop, **options)
        except JobCanceled:
            remove_tree(attempt_dir)
            self._end_canceled(job)
            return
        except HeadshotError as error:
            remove_tree(attempt_dir)
            log.warning("job %s: failed with %s: %s", job.id, error.code, error)
            self._end_failed(job, error)
            return
        except Exception as error:
            remove_tree(attempt_dir)
            log.exception("job %s: the pipeline raised an unexpected error", job.id)
            self._end_failed(job, HeadshotError("internal_error", _first_frame(job), repr(error)))
            return

        # 3. Publish the finished set by renaming the attempt folder, then record it.
        self._publish(job, attempt_dir, result)

    def _publish(self, job: JobRow, attempt_dir: Path, result: JobResult) -> None:
        job_dir = attempt_dir.parent
        result_dir = job_dir / RESULT_FOLDER
        try:
            if job.uploaded and result.report_path is not None:
                try:
                    _name_frames_as_sent(Path(result.report_path), self._frames_dir(job))
                except (OSError, ValueError, HeadshotError) as error:
                    log.warning("job %s: report.json keeps the daemon's paths of the uploaded frames: %s", job.id, error)
            relative_paths = [_relative_to(Path(variant.path), attempt_dir) for variant in result.variants]
            os.replace(attempt_dir, result_dir)
            fsync_folder(job_dir)
        except (OSError, ValueError) as error:
            remove_tree(attempt_dir)
            log.exception("job %s: could not publish the result", job.id)
            self._end_failed(job, HeadshotError("internal_error", _first_frame(job), repr(error)))
            return

        variants = []
        for variant, relative in zip(result.variants, relative_paths):
            final_path = result_dir / relative
            variants.append(VariantRow(
                job_id=job.id, variant_id=variant.variant_id, path=f"{RESULT_FOLDER}/{relative.as_posix()}",
                recipe_json=_recipe_json(variant.recipe), width=int(variant.width), height=int(variant.height),
                size=final_path.stat().st_size, sha256=sha256_of(final_path), frame=str(variant.frame),
                score=float(variant.score),
            ))

        # 4. Copy to the client's folder before marking the job completed, so a crash during the copy reruns it.
        error = None
        if job.output_dir:
            error = self._copy_results(job, result_dir)
        if error is not None:
            self._end_failed(job, error, variants)
            return

        completed = pb.Completed(variant_count=len(variants), output_dir=job.output_dir)
        message = event_message(job.id, job.attempts, completed=completed)
        message.sequence = self.store.finish(job, COMPLETED, ("completed", message.SerializeToString()), variants)
        self._remove_uploaded_frames(job)
        self.hub.publish(message)
        log.info("job %s: completed with %d variants in %.1f s", job.id, len(variants), time.time() - (job.started or 0))

    def _copy_results(self, job: JobRow, result_dir: Path) -> HeadshotError | None:
        """Copy every result file into the request's output folder, each atomically; return the error, if any."""
        output_dir = Path(job.output_dir)
        frames = {os.path.realpath(frame) for frame in job.request.get("frames", [])}
        sources = sorted(path for path in result_dir.rglob("*") if path.is_file())

        # Check every name before copying any file, so a refused job leaves nothing behind.
        for source in sources:
            target = output_dir / source.relative_to(result_dir)
            if os.path.realpath(target) in frames:
                return HeadshotError("would_overwrite_input", target, "a result has the name of an input frame")

        target = output_dir
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            for source in sources:
                target = output_dir / source.relative_to(result_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                copy_atomically(source, target)
        except OSError as error:
            log.error("job %s: copying the results to %s failed: %s", job.id, target, error)
            return HeadshotError("write_failed", target, repr(error), reason=error.strerror or str(error))
        log.info("job %s: results copied to %s", job.id, output_dir)
        return None

    def _on_event(self, job: JobRow, attempt_dir: Path, event: JobEvent) -> None:
        # 1. Thin out progress events; the stage and the end of a stage always go through.
        if event.kind == EventKind.progress:
            now = time.monotonic()
            finishing = event.fraction is not None and event.fraction >= 1.0
            if not finishing and now - self._last_progress < PROGRESS_INTERVAL_S:
                return
            self._last_progress = now

        # 2. Translate, store and send.
        size_bytes = 0
        if event.kind == EventKind.variant_ready and event.variant is not None:
            path = Path(event.variant.path)
            size_bytes = path.stat().st_size if path.is_file() else 0
        message = pipeline_event_to_proto(job.id, job.attempts, event, size_bytes)
        if message is None:
            return
        if job.uploaded and message.WhichOneof("kind") == "frame_scored":
            # The client knows an uploaded frame by the name it sent, not by the daemon's copy.
            copies = str(self._frames_dir(job)) + os.sep
            scored = message.frame_scored
            scored.frame = scored.frame.replace(copies, "")
            for reason in scored.reasons:
                reason.message = reason.message.replace(copies, "")
        self.hub.record(message)
        stage = event.stage.value if event.stage else "-"
        if event.kind == EventKind.progress:
            log.debug("job %s: stage %s at %s", job.id, stage, event.fraction)
        elif event.kind == EventKind.stage_started:
            log.info("job %s: stage %s started", job.id, stage)
        elif event.kind == EventKind.frame_scored:
            log.info("job %s: stage %s: frame %s scored %.1f", job.id, stage, event.frame, event.score or 0.0)
        elif event.kind == EventKind.variant_ready and event.variant is not None:
            log.info("job %s: stage %s: variant %s ready", job.id, stage, event.variant.variant_id)

    def _end_canceled(self, job: JobRow) -> None:
        if self._stopping.is_set() and self._interrupted != job.id:
            # The daemon is stopping: the job runs again on the next start, first in line
            # because the worker always takes the oldest pending job.
            message = event_message(job.id, job.attempts, queued=pb.Queued(position=1))
            message.sequence = self.store.requeue(job, ("queued", message.SerializeToString()))
            self.hub.publish(message)
            log.info("job %s: stopped because the daemon is stopping; back in the queue", job.id)
            return
        message = event_message(job.id, job.attempts, canceled=pb.Canceled(interrupted=True))
        message.sequence = self.store.finish(job, CANCELED, ("canceled", message.SerializeToString()))
        self._remove_uploaded_frames(job)
        self.hub.publish(message)
        log.info("job %s: interrupted", job.id)

    def _end_failed(self, job: JobRow, error: HeadshotError, variants: list[VariantRow] = ()) -> None:
        error = self._named_as_sent(job, error)
        error.params.setdefault("log", str(self.log_path))
        language = job.language or None
        failed = pb.Failed(code=error.code, message=error.user_message(language), detail=error.detail,
                           log_path=str(self.log_path), file=error.path or "")
        message = event_message(job.id, job.attempts, failed=failed)
        params = {"file": error.path, **error.params}
        message.sequence = self.store.finish(
            job, FAILED, ("failed", message.SerializeToString()), variants,
            error=(error.code, failed.message, error.detail, params),
        )
        self._remove_uploaded_frames(job)
        self.hub.publish(message)

    def _frames_dir(self, job: JobRow) -> Path:
        """Return the folder of an uploaded job's copies of its frames."""
        return self.jobs_dir / job.id / FRAMES_FOLDER

    def _named_as_sent(self, job: JobRow, error: HeadshotError) -> HeadshotError:
        """Return the error naming an uploaded frame as the client sent it, not by the daemon's copy."""
        if not job.uploaded or error.path is None or Path(error.path).parent != self._frames_dir(job):
            return error
        return HeadshotError(error.code, Path(error.path).name, error.detail, **error.params)

    def _remove_uploaded_frames(self, job: JobRow) -> None:
        """Delete a finished job's uploaded frames; they are copies, kept only while the job may run again."""
        if job.uploaded:
            remove_tree(self.jobs_dir / job.id / FRAMES_FOLDER)


def _name_frames_as_sent(report_path: Path, frames_dir: Path) -> None:
    """Rewrite an uploaded job's report.json so that it names each frame as the client sent it, not by the daemon's
    copy, which is deleted once the job has ended."""
    from pipeline.report import write_report

    if not report_path.is_file():
        return
    copies = str(frames_dir) + os.sep

    def renamed(value):
        if isinstance(value, str):
            return value.replace(copies, "")
        if isinstance(value, list):
            return [renamed(item) for item in value]
        if isinstance(value, dict):
            return {key: renamed(item) for key, item in value.items()}
        return value

    write_report(report_path, renamed(json.loads(report_path.read_text(encoding="utf-8"))))


def _relative_to(path: Path, folder: Path) -> Path:
    """Return `path` inside `folder`; the pipeline writes every variant into the folder it was given."""
    try:
        return path.resolve().relative_to(folder.resolve())
    except ValueError:
        raise ValueError(f"variant {path} was written outside the job folder {folder}") from None


def _recipe_json(recipe: dict) -> str:
    return json.dumps(recipe, sort_keys=True, default=str)


def _first_frame(job: JobRow) -> str:
    frames = job.request.get("frames") or ["-"]
    return str(frames[0])
