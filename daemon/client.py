"""A client of the daemon for the command line, the tray, the hot folder and tests: discovery, calls, errors.

`DaemonClient.connect()` reads the discovery file the daemon wrote and returns
a client whose methods raise `DaemonError` (a code, a translated message, the
detail and the daemon's log path) instead of bare gRPC errors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import grpc

from pipeline.errors import HeadshotError
from pipeline.i18n import current_language
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb
from protos.headshot.v1 import headshot_pb2_grpc as pb_grpc

from .config import Folders, default_folders
from .convert import TERMINAL_EVENT_KINDS, event_kind, request_to_proto
from .errors import ERROR_METADATA_KEY
from .files import CHUNK_SIZE, read_blocks, sha256_of, write_atomically


@dataclass(frozen=True)
class Discovery:
    """The contents of the daemon's discovery file."""

    address: str
    transport: str
    pid: int
    version: str
    token: str | None


class DaemonError(Exception):
    """A failed call: the daemon's error code and translated message, or a transport failure."""

    def __init__(self, code: str, message: str, detail: str = "", log_path: str = "", file: str = "",
                 status: grpc.StatusCode | None = None, frames: list[dict] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.log_path = log_path
        self.file = file
        self.status = status
        self.frames = frames or []  # {"code", "file", "message"} of the other unusable frames of a rejected job

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, language: str | None = None, address: str = "") -> "DaemonError":
        """Read the daemon's error payload from the trailing metadata; a transport error gets a code of its own."""
        status = error.code() if hasattr(error, "code") else None
        for key, value in (error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else ():
            if key == ERROR_METADATA_KEY:
                payload = json.loads(value.decode("utf-8") if isinstance(value, bytes) else value)
                return cls(payload["code"], payload["message"], payload.get("detail", ""), payload.get("log", ""),
                           payload.get("file", ""), status, payload.get("frames"))
        details = error.details() if hasattr(error, "details") else str(error)
        if status == grpc.StatusCode.UNAVAILABLE:
            reason = details or "unavailable"
            fallback = HeadshotError("daemon_unreachable", None, reason, address=address, reason=reason)
            return cls(fallback.code, fallback.user_message(language), reason, status=status)
        return cls(status.name.lower() if status else "unknown", details or "", details or "", status=status)


def read_discovery(folders: Folders | None = None) -> Discovery | None:
    """Return what the running daemon wrote about itself, or None when no daemon has written it."""
    path = (folders or default_folders()).discovery_file
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return Discovery(address=values["address"], transport=values.get("transport", ""), pid=int(values.get("pid", 0)),
                     version=values.get("version", ""), token=values.get("token"))


def process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Add the token and the client's language to every call."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs

    def _details(self, details):
        metadata = list(details.metadata or []) + self._pairs
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class DaemonClient:
    """Calls to one daemon over one channel; use as a context manager or call close()."""

    def __init__(self, address: str, token: str | None = None, language: str | None = None):
        self.address = address
        self.language = language or current_language()
        pairs = [("accept-language", self.language)]
        if token:
            pairs.append(("authorization", f"Bearer {token}"))
        self.channel = grpc.intercept_channel(grpc.insecure_channel(address), _Metadata(pairs))
        self.stub = pb_grpc.HeadshotServiceStub(self.channel)

    @classmethod
    def connect(cls, folders: Folders | None = None, language: str | None = None) -> "DaemonClient":
        """Connect to the daemon named in the discovery file; raise DaemonError when none is running."""
        discovery = read_discovery(folders)
        if discovery is None or not process_exists(discovery.pid):
            error = HeadshotError("daemon_not_running", None, "no discovery file or its process is gone")
            raise DaemonError(error.code, error.user_message(language), error.detail)
        return cls(discovery.address, discovery.token, language)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "DaemonClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, method: Callable, request, timeout: float | None = 30.0):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as error:
            raise DaemonError.from_rpc_error(error, self.language, self.address) from None

    def _stream(self, call) -> Iterator:
        try:
            yield from call
        except grpc.RpcError as error:
            raise DaemonError.from_rpc_error(error, self.language, self.address) from None

    # --- Queueing ---------------------------------------------------------------

    def submit(self, request: JobRequest, output_dir: str | os.PathLike = "") -> pb.JobHandle:
        """Queue a job whose frames the daemon reads from their paths (the same computer)."""
        message = request_to_proto(request, str(output_dir) if output_dir else "")
        message.frames[:] = [os.path.abspath(frame) for frame in request.frames]
        return self._call(self.stub.SubmitJob, message)

    def upload(self, request: JobRequest, output_dir: str | os.PathLike = "", chunk_size: int = CHUNK_SIZE,
               timeout: float | None = None) -> pb.JobHandle:
        """Queue a job whose frames are streamed to the daemon; `request.frames` are read here."""
        return self._call(self.stub.UploadJob, upload_messages(request, output_dir, chunk_size), timeout=timeout)

    # --- Watching -----------------------------------------------------------------

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[pb.JobEvent]:
        """Yield the job's events, past ones first, until the terminal one."""
        return self._stream(self.stub.WatchJob(pb.JobId(job_id=job_id), timeout=timeout))

    def wait(self, job_id: str, on_event: Callable[[pb.JobEvent], None] | None = None,
             timeout: float | None = None) -> pb.JobEvent:
        """Watch until the job ends and return its completed, failed or canceled event."""
        last = None
        for event in self.watch(job_id, timeout):
            if on_event is not None:
                on_event(event)
            last = event
            if event_kind(event) in TERMINAL_EVENT_KINDS:
                return event
        raise DaemonError("watch_ended", f"the watch of job {job_id} ended before the job did", status=None,
                          detail=f"last event: {event_kind(last) if last else 'none'}")

    def job(self, job_id: str) -> pb.JobStatus:
        return self._call(self.stub.GetJob, pb.JobId(job_id=job_id))

    def jobs(self, states: Iterable[int] = (), origin: str = "", limit: int = 0) -> list[pb.JobStatus]:
        response = self._call(self.stub.ListJobs, pb.ListJobsRequest(states=list(states), origin=origin, limit=limit))
        return list(response.jobs)

    # --- Results --------------------------------------------------------------------

    def fetch_variant(self, job_id: str, variant_id: str, file_format: str | None = None) -> tuple[pb.Chunk, bytes]:
        """Return the first chunk (file name, media type, size, sha256) and the variant's whole bytes."""
        reference = pb.VariantRef(job_id=job_id, variant_id=variant_id)
        if file_format:
            reference.format = file_format
        chunks = list(self._stream(self.stub.FetchVariant(reference)))
        data = b"".join(chunk.data for chunk in chunks)
        return chunks[0], data

    def download_variant(self, job_id: str, variant_id: str, target: str | os.PathLike,
                         file_format: str | None = None) -> Path:
        """Stream a variant into `target` here, atomically, and check its SHA-256."""
        reference = pb.VariantRef(job_id=job_id, variant_id=variant_id)
        if file_format:
            reference.format = file_format
        header: list[pb.Chunk] = []

        def blocks():
            for chunk in self._stream(self.stub.FetchVariant(reference)):
                if not header:
                    header.append(chunk)
                yield chunk.data

        target = Path(target)
        size, sha256 = write_atomically(target, blocks())
        if header and header[0].sha256 and header[0].sha256 != sha256:
            target.unlink(missing_ok=True)
            raise DaemonError("upload_corrupted", f"{target.name}: checksum mismatch after download",
                              detail=f"expected {header[0].sha256}, got {sha256}")
        return target

    def save_variant(self, job_id: str, variant_id: str, path: str | os.PathLike, overwrite: bool = False,
                     file_format: str | None = None) -> pb.SaveVariantResponse:
        """Have the daemon write a variant to `path` on its computer, atomically."""
        reference = pb.VariantRef(job_id=job_id, variant_id=variant_id)
        if file_format:
            reference.format = file_format
        request = pb.SaveVariantRequest(variant=reference, path=os.path.abspath(path), overwrite=overwrite)
        return self._call(self.stub.SaveVariant, request)

    # --- Control and information -------------------------------------------------------

    def cancel(self, job_id: str) -> pb.JobStatus:
        return self._call(self.stub.CancelJob, pb.JobId(job_id=job_id))

    def interrupt(self, job_id: str) -> pb.JobStatus:
        return self._call(self.stub.InterruptJob, pb.JobId(job_id=job_id))

    def info(self, timeout: float | None = 5.0) -> pb.DaemonInfo:
        return self._call(self.stub.GetInfo, pb.GetInfoRequest(), timeout=timeout)

    def styles(self) -> list[pb.Style]:
        return list(self._call(self.stub.ListStyles, pb.ListStylesRequest(language=self.language)).styles)

    def health(self, service: str = "", timeout: float | None = 5.0) -> str:
        """Return the health service's status name, e.g. "SERVING"."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        response = self._call(stub.Check, health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def upload_messages(request: JobRequest, output_dir: str | os.PathLike = "",
                    chunk_size: int = CHUNK_SIZE) -> Iterator[pb.UploadChunk]:
    """Yield the header (names, sizes, checksums), then each frame's bytes in chunks of at most `chunk_size`."""
    chunk_size = min(chunk_size, CHUNK_SIZE)
    paths = [Path(frame) for frame in request.frames]
    message = request_to_proto(request, str(output_dir) if output_dir else "")
    del message.frames[:]
    frames = [pb.FrameHeader(name=path.name, size=path.stat().st_size, sha256=sha256_of(path)) for path in paths]
    yield pb.UploadChunk(header=pb.UploadHeader(request=message, frames=frames))
    for index, path in enumerate(paths):
        for block in read_blocks(path, chunk_size):
            yield pb.UploadChunk(data=pb.FrameData(frame_index=index, data=block))
