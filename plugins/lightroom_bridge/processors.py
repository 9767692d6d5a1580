"""The back ends that turn the frames of one inbox entry into published headshots, behind the `Processor` protocol.

`DaemonProcessor` sends the job to the running daemon over gRPC, like any
other client; `InProcessProcessor` runs the pipeline in this process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

from pipeline.errors import HeadshotError

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
PREVIEW_SIDE = 256  # pixels; large enough to decode every row of the file, small enough to be quick


class Processor(Protocol):
    def process(self, frames: list[Path], out_dir: Path, request_options: dict) -> None:
        """Write the session's variants, `report.json` and `contact-sheet.jpg` into `out_dir`, each atomically.

        Raises HeadshotError when the frames cannot be used (the entry then
        goes to failed/), and ProcessorUnavailable when the back end cannot be
        reached (the entry stays in the inbox and is tried again).
        """


class ProcessorUnavailable(Exception):
    """The back end cannot be reached now; the bridge tries again later without counting an attempt."""


class ReportedError(HeadshotError):
    """A failure reported by another process (the daemon), whose message arrives already translated.

    Its code may belong to an area this process never imported, so it is not
    looked up in `pipeline.errors.MESSAGES`.
    """

    def __init__(self, code: str, path: str | None, detail: str, message: str):
        Exception.__init__(self, f"{code}: {path or '-'}: {detail or message}")
        self.code = code
        self.path = str(path) if path is not None else None
        self.detail = detail
        self.params = {}
        self.message = message

    def user_message(self, language: str | None = None) -> str:
        return self.message


def check_decodable(path: Path) -> None:
    """Raise HeadshotError unless `path` is a complete image that decodes.

    Decodes a small preview with `pipeline.photo_io.read_preview`, which checks
    the file's structure and decodes every pixel row, so a file cut short fails
    here. Without that module it decodes the whole file with Pillow (tifffile
    for TIFF).
    """
    try:
        from pipeline.photo_io import read_preview
    except ImportError:
        _decode_with_pillow(Path(path))
        return
    read_preview(Path(path), max_side=PREVIEW_SIDE)


def _decode_with_pillow(path: Path) -> None:
    import warnings

    from PIL import Image, UnidentifiedImageError

    # 1. Names and sizes that need no decoding.
    if not path.is_file():
        raise HeadshotError("not_a_file", path, "not a regular file")
    if path.stat().st_size == 0:
        raise HeadshotError("file_empty", path, "0 bytes")

    # 2. TIFF: every page's pixels through tifffile.
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            tifffile.imread(path)
            return
        except (tifffile.TiffFileError, ValueError, OSError, EOFError) as error:
            raise _classify(path, error) from error

    # 3. Everything else: Pillow decodes all pixels, so a file cut short fails here.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
    except UnidentifiedImageError as error:
        raise HeadshotError("not_an_image", path, str(error)) from error
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning) as error:
        raise _classify(path, error) from error


def _classify(path: Path, error: Exception) -> HeadshotError:
    text = str(error).lower()
    if any(word in text for word in ("truncat", "ends early", "premature", "eof", "not enough", "failed to read", "incomplete")):
        return HeadshotError("file_truncated", path, str(error))
    return HeadshotError("not_an_image", path, str(error))


class InProcessProcessor:
    """Runs `pipeline.process.run_job` in this process; what `headshot hotfolder --in-process` uses."""

    def __init__(self, should_stop: Callable[[], bool] | None = None, log_path: Path | str = "-"):
        self._should_stop = should_stop
        self._log_path = str(log_path)

    def process(self, frames: list[Path], out_dir: Path, request_options: dict) -> None:
        from pipeline.jobs import JobCanceled
        from pipeline.memory import release_free_memory
        from pipeline.process import run_job
        from pipeline.request import JobRequest

        request = JobRequest.from_dict({**request_options, "frames": [str(frame) for frame in frames]})
        try:
            run_job(request, out_dir, should_stop=self._should_stop)
        except JobCanceled as error:
            raise ProcessorUnavailable("stopped while processing") from error
        except HeadshotError:
            raise
        except Exception as error:
            # As in the daemon's worker: a pipeline bug fails the entry with a reason, because a retry meets it again.
            log.exception("hot folder: the pipeline raised an unexpected error on %s", frames[0])
            raise HeadshotError("internal_error", str(frames[0]), repr(error), log=self._log_path) from error
        finally:
            # The next session may be hours away; the memory the job kept for reuse goes back now.
            release_free_memory()


# Daemon error codes and gRPC statuses after which the same job may succeed later.
TRANSIENT_DAEMON_CODES = frozenset({"daemon_not_running", "daemon_unreachable", "daemon_stopping", "watch_ended", "queue_full"})
TRANSIENT_RPC_STATUSES = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED"})
# How many of the inbox's newest jobs are searched for one to follow again (ListJobs returns 100 unless told).
# NOTE: an entry retaken only after more jobs than this were queued from its inbox is processed a second time.
KNOWN_JOB_SEARCH_LIMIT = 5000


class DaemonProcessor:
    """Queues each session on the running daemon by path, with `output_dir` set, and watches it to the end.

    The daemon copies every result (variants, report.json, contact-sheet.jpg)
    into the output folder atomically before it reports the job completed. After
    a restart of the daemon or the bridge, a job the daemon already has for the
    same frames and folder (queued, running or finished) is watched again
    instead of queueing a second one.
    """

    def __init__(self, connect: Callable[[], object]):
        self._connect = connect
        self._client = None

    @classmethod
    def from_config(cls, config) -> "DaemonProcessor":
        from daemon.client import DaemonClient

        return cls(lambda: DaemonClient.connect(config.folders))

    def process(self, frames: list[Path], out_dir: Path, request_options: dict) -> None:
        from daemon.client import DaemonError
        from daemon.convert import event_kind
        from pipeline.request import JobRequest

        request = JobRequest.from_dict({**request_options, "frames": [str(Path(frame).absolute()) for frame in frames]})
        try:
            client = self._client_or_connect()
            job_id = self._known_job(client, request, out_dir)
            if job_id:
                log.info("hot folder: following daemon job %s again for %s", job_id, out_dir.name)
            else:
                job_id = client.submit(request, out_dir).job_id
                log.info("hot folder: queued daemon job %s for %s", job_id, out_dir.name)
            final = client.wait(job_id)
        except DaemonError as error:
            self._close_client()
            status = error.status.name if error.status is not None else ""
            if error.code in TRANSIENT_DAEMON_CODES or status in TRANSIENT_RPC_STATUSES:
                raise ProcessorUnavailable(f"{error.code}: {error.detail or error.message}") from error
            raise ReportedError(error.code, error.file or str(frames[0]), error.detail, error.message) from error

        kind = event_kind(final)
        if kind == "failed":
            raise ReportedError(final.failed.code, str(frames[0]), final.failed.detail, final.failed.message)
        if kind == "canceled":
            raise HeadshotError("job_canceled", frames[0].name, f"daemon job {job_id} was canceled")

    def _client_or_connect(self):
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # a channel to a dead daemon may fail to close; it is dropped either way
                log.debug("hot folder: closing the daemon client failed", exc_info=True)
            self._client = None

    @staticmethod
    def _known_job(client, request, out_dir: Path) -> str | None:
        """Return the newest job, not canceled, with the same origin, frames and output folder, if any.

        The output folder belongs to one content (the ledger hands it out), so a
        job that wrote into it was made from the same frames as this request.
        """
        from protos.headshot.v1 import headshot_pb2 as pb

        states = [pb.JOB_STATE_PENDING, pb.JOB_STATE_IN_PROGRESS, pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED]
        known = client.jobs(states=states, origin=request.origin, limit=KNOWN_JOB_SEARCH_LIMIT)
        for job in sorted(known, key=lambda status: status.created.ToNanoseconds(), reverse=True):
            same_frames = list(job.request.frames) == list(request.frames)
            same_folder = job.request.output_dir == str(out_dir)
            if same_frames and same_folder:
                return job.job_id
        return None

    def close(self) -> None:
        self._close_client()
