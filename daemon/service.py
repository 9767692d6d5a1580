"""The gRPC service `headshot.v1.HeadshotService`: checks each request, queues jobs and serves their results."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable

import grpc

from pipeline.errors import HeadshotError
from pipeline.i18n import N_, gettext_for
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb
from protos.headshot.v1 import headshot_pb2_grpc as pb_grpc

from . import validation
from .config import Config
from .convert import (STATE_FROM_PROTO, TERMINAL_EVENT_KINDS, event_kind, event_message, job_status,
                      request_fields, style_to_proto)
from .errors import abort_with, language_from
from .events import CLOSED, EventHub
from .files import CHUNK_SIZE, read_blocks, remove_tree, write_atomically
from .store import CANCELED, IN_PROGRESS, PENDING, TERMINAL_STATES, JobStore, QueueFull, new_job_id
from .worker import FRAMES_FOLDER, Worker

log = logging.getLogger(__name__)

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "tiff": "image/tiff", "webp": "image/webp",
               "heic": "image/heic"}
FORMAT_OF_SUFFIX = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff",
                    ".webp": "webp", ".heic": "heic", ".heif": "heic"}
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
WATCH_POLL_S = 1.0
# When the daemon stops, a watcher waits this long for the job's end to be recorded (the server's grace is 2 s).
STOPPING_WATCH_S = 1.5


class HeadshotService(pb_grpc.HeadshotServiceServicer):
    """One instance serves every client; the store and the worker do the work."""

    def __init__(self, config: Config, store: JobStore, hub: EventHub, worker: Worker, jobs_dir: Path,
                 log_path: Path, version: str, address: Callable[[], str],
                 pipeline_check: Callable[[JobRequest], None] | None = None):
        self.config = config
        self.store = store
        self.hub = hub
        self.worker = worker
        self.jobs_dir = jobs_dir
        self.log_path = str(log_path)
        self.version = version
        self.address = address
        self.pipeline_check = pipeline_check
        self.engines = _available_engines()

    # --- Queueing ------------------------------------------------------------------

    def SubmitJob(self, request: pb.JobRequest, context):
        language = language_from(context.invocation_metadata(), request.language)
        try:
            values = request_fields(request)
            job_request = validation.normalized_request(values, self.config.default_styles)
            validation.check_frames(job_request.frames)
            validation.check_output_dir(request.output_dir, language)
            if self.pipeline_check is not None:
                self.pipeline_check(job_request)
            return self._enqueue(new_job_id(), job_request, request.output_dir, uploaded=False)
        except HeadshotError as error:
            self._reject(context, "SubmitJob", error, language)

    def UploadJob(self, request_iterator, context):
        language = language_from(context.invocation_metadata())
        job_id = new_job_id()
        job_dir = self.jobs_dir / job_id
        try:
            # 1. The header: options are checked before a byte of a frame is accepted.
            header = self._upload_header(request_iterator)
            language = language_from(context.invocation_metadata(), header.request.language)
            job_request = validation.normalized_request(request_fields(header.request), self.config.default_styles)
            validation.check_output_dir(header.request.output_dir, language)
            names = _frame_file_names(header.frames)
            for frame, name in zip(header.frames, names):
                self._check_frame_header(frame, name)
            if all(frame.size == 0 for frame in header.frames):
                raise HeadshotError("file_empty", names[0], "declared size 0")
            if self.store.pending_count() >= self.config.max_queue:
                raise HeadshotError("queue_full", None, "queue full before the upload", limit=self.config.max_queue)

            # 2. The frames' bytes, into a folder that only becomes the job's frames when all arrived intact.
            partial = job_dir / (FRAMES_FOLDER + ".partial")
            partial.mkdir(parents=True)
            paths = [partial / name for name in names]
            self._receive_frames(request_iterator, context, header.frames, paths)
            frames_dir = job_dir / FRAMES_FOLDER
            os.replace(partial, frames_dir)
            job_request.frames = [str(frames_dir / name) for name in names]

            # 3. The same checks as a submitted job, then the queue. An error names the frame as the client sent
            #    it, not by the daemon's copy.
            try:
                validation.check_frames(job_request.frames)
            except HeadshotError as error:
                if error.path is None:
                    raise
                raise _named_as_sent(error) from error
            if self.pipeline_check is not None:
                self.pipeline_check(job_request)
            return self._enqueue(job_id, job_request, header.request.output_dir, uploaded=True)
        except HeadshotError as error:
            remove_tree(job_dir)
            self._reject(context, "UploadJob", error, language)
        except BaseException:
            remove_tree(job_dir)
            raise

    def _upload_header(self, request_iterator) -> pb.UploadHeader:
        try:
            first = next(request_iterator)
        except StopIteration:
            raise HeadshotError("upload_invalid", None, "empty stream", reason="the stream was empty") from None
        except grpc.RpcError:
            raise HeadshotError("upload_canceled", None, "the client canceled before the header") from None
        if first.WhichOneof("part") != "header":
            raise HeadshotError("upload_invalid", None, "first message is not a header",
                                reason="the first message must carry the header")
        if not first.header.frames:
            raise HeadshotError("no_frames", None, "the upload header lists no frames")
        return first.header

    def _check_frame_header(self, frame: pb.FrameHeader, name: str) -> None:
        # An empty frame is received as an empty file and skipped like any unreadable one, unless all are empty.
        if frame.size > self.config.max_frame_bytes:
            raise HeadshotError("upload_invalid", name, f"{frame.size} bytes declared",
                                reason=f"{name} is larger than {self.config.max_frame_bytes} bytes")
        if not SHA256_HEX.match(frame.sha256):
            raise HeadshotError("upload_invalid", name, f"sha256={frame.sha256!r}",
                                reason=f"the SHA-256 checksum of {name} is not 64 lowercase hex digits")

    def _receive_frames(self, request_iterator, context, frames, paths: list[Path]) -> None:
        """Write each frame's chunks to its file; raise unless every frame arrived complete with its checksum."""
        received = [0] * len(frames)
        digests = [hashlib.sha256() for _ in frames]
        handles = [None] * len(frames)
        current = 0
        try:
            # 1. Chunks, in frame order, never past a frame's declared size.
            while True:
                try:
                    chunk = next(request_iterator)
                except StopIteration:
                    break
                except grpc.RpcError:
                    raise HeadshotError("upload_canceled", paths[current].name, "the client canceled the stream") from None
                if chunk.WhichOneof("part") != "data":
                    raise HeadshotError("upload_invalid", None, "second header", reason="only the first message may carry a header")
                index = chunk.data.frame_index
                if len(chunk.data.data) > CHUNK_SIZE:
                    raise HeadshotError("upload_invalid", None, f"chunk of {len(chunk.data.data)} bytes",
                                        reason=f"a chunk is larger than {CHUNK_SIZE} bytes")
                if index >= len(frames) or index < current:
                    raise HeadshotError("upload_invalid", None, f"frame_index={index}",
                                        reason=f"frame index {index} is out of order")
                while index > current:
                    if received[current] != frames[current].size:
                        break
                    current += 1
                if index != current:
                    name = paths[current].name
                    raise HeadshotError("upload_incomplete", name, "next frame started early",
                                        received=received[current], size=frames[current].size)
                if received[index] + len(chunk.data.data) > frames[index].size:
                    raise HeadshotError("upload_invalid", paths[index].name, "more bytes than declared",
                                        reason=f"{paths[index].name} has more bytes than its header declares")
                if handles[index] is None:
                    handles[index] = open(paths[index], "wb")
                handles[index].write(chunk.data.data)
                digests[index].update(chunk.data.data)
                received[index] += len(chunk.data.data)

            # 2. Every frame complete and intact.
            if not context.is_active():
                raise HeadshotError("upload_canceled", None, "the client went away")
            for index, frame in enumerate(frames):
                if received[index] != frame.size:
                    raise HeadshotError("upload_incomplete", paths[index].name, "stream ended early",
                                        received=received[index], size=frame.size)
                if digests[index].hexdigest() != frame.sha256:
                    raise HeadshotError("upload_corrupted", paths[index].name, "sha256 mismatch")
                if handles[index] is None:  # an empty frame: no chunk came
                    handles[index] = open(paths[index], "wb")
                handles[index].flush()
                os.fsync(handles[index].fileno())
        finally:
            for handle in handles:
                if handle is not None:
                    handle.close()

    def _enqueue(self, job_id: str, job_request: JobRequest, output_dir: str, uploaded: bool) -> pb.JobHandle:
        def queued_event(new_id: str, position: int):
            message = event_message(new_id, 0, queued=pb.Queued(position=position))
            return "queued", message.SerializeToString()

        try:
            job, position = self.store.add_job(
                job_id, job_request.to_dict(), job_request.origin, job_request.language, output_dir, uploaded,
                self.config.max_queue, queued_event,
            )
        except QueueFull as full:
            raise HeadshotError("queue_full", None, f"{full.limit} jobs pending", limit=full.limit) from None
        self.worker.wake()
        log.info("job %s: queued at position %d (origin %s, %d frames%s)", job.id, position, job.origin,
                 len(job_request.frames), ", uploaded" if uploaded else "")
        return pb.JobHandle(job_id=job.id, state=pb.JOB_STATE_PENDING, position=position)

    # --- Watching and listing --------------------------------------------------------

    def WatchJob(self, request: pb.JobId, context):
        language = language_from(context.invocation_metadata())
        job = self._job_or_abort(context, request.job_id, language, "WatchJob")
        subscription = self.hub.subscribe(job.id)
        context.add_callback(lambda: subscription.put(CLOSED))
        try:
            # 1. Replay: everything stored so far. Events recorded after `subscribe` also reach the queue.
            last_sequence = 0
            for row in self.store.events(job.id):
                message = pb.JobEvent.FromString(row.payload)
                message.sequence = row.sequence
                yield self._localized(message, job, language)
                last_sequence = row.sequence
                if row.kind in TERMINAL_EVENT_KINDS:
                    return

            # 2. Live events until the terminal one, the client leaving, or the daemon stopping.
            while context.is_active():
                message = subscription.get(WATCH_POLL_S)
                if message is None:
                    continue
                if message is CLOSED:
                    if context.is_active() and self.hub._closed:
                        # The daemon is stopping. A job in its last step may still end, so its end is sent if it is
                        # stored in time. Otherwise the watcher learns that the job waits in the queue.
                        for stored in self._events_while_stopping(job.id, last_sequence):
                            yield self._localized(stored, job, language)
                            if event_kind(stored) in TERMINAL_EVENT_KINDS:
                                return
                        log.info("WatchJob of job %s from %s ended: the daemon is stopping", job.id, context.peer())
                        abort_with(context, HeadshotError("daemon_stopping", None, "stopping while watched", job=job.id),
                                   language, self.log_path)
                    return
                if message.sequence <= last_sequence:
                    continue
                last_sequence = message.sequence
                yield self._localized(message, job, language)
                if event_kind(message) in TERMINAL_EVENT_KINDS:
                    return
        finally:
            subscription.close()

    def _events_while_stopping(self, job_id: str, after: int):
        """Yield the job's stored events after `after` for up to STOPPING_WATCH_S, until its terminal one."""
        deadline = time.monotonic() + STOPPING_WATCH_S
        while time.monotonic() < deadline:
            for row in self.store.events(job_id, after=after):
                message = pb.JobEvent.FromString(row.payload)
                message.sequence = row.sequence
                after = row.sequence
                yield message
                if row.kind in TERMINAL_EVENT_KINDS:
                    return
            time.sleep(0.05)

    def _localized(self, message: pb.JobEvent, job, language: str | None) -> pb.JobEvent:
        """Translate a failed event's message into the watcher's language when it differs from the job's."""
        if event_kind(message) != "failed" or not language or language == (job.language or None):
            return message
        stored = self.store.get_job(job.id)
        if stored is not None and stored.error_code == message.failed.code:
            message.failed.message = _translated_error(stored, language) or message.failed.message
        return message

    def GetJob(self, request: pb.JobId, context):
        language = language_from(context.invocation_metadata())
        job = self._job_or_abort(context, request.job_id, language, "GetJob")
        return self._status(job, language)

    def ListJobs(self, request: pb.ListJobsRequest, context):
        language = language_from(context.invocation_metadata())
        states = [STATE_FROM_PROTO[state] for state in request.states if state in STATE_FROM_PROTO]
        jobs = self.store.list_jobs(states, request.origin, request.limit or 100)
        return pb.ListJobsResponse(jobs=[self._status(job, language, with_variants=False) for job in jobs])

    def _status(self, job, language: str | None, with_variants: bool = True) -> pb.JobStatus:
        variants = self.store.variants(job.id) if with_variants else []
        message = _translated_error(job, language) if language and language != job.language else None
        status = job_status(job, self.store.position(job), variants, self.log_path, message)
        if job.uploaded:
            # Name each uploaded frame as the client sent it, not by the daemon's copy, which is deleted when the job ends.
            frames_dir = self.jobs_dir / job.id / FRAMES_FOLDER
            status.request.frames[:] = [Path(frame).name if Path(frame).parent == frames_dir else frame
                                        for frame in status.request.frames]
        return status

    # --- Results ----------------------------------------------------------------------

    def FetchVariant(self, request: pb.VariantRef, context):
        language = language_from(context.invocation_metadata())
        try:
            path, variant = self._variant_file(request)
            data, file_format, sha256 = None, FORMAT_OF_SUFFIX.get(path.suffix.lower(), ""), variant.sha256
            if request.HasField("format") and request.format and request.format != file_format:
                data, file_format = _converted(path, request.format), request.format
                sha256 = hashlib.sha256(data).hexdigest()
            total_size = len(data) if data is not None else variant.size
            file_name = path.name if data is None else f"{path.stem}.{_extension(file_format)}"
        except HeadshotError as error:
            self._reject(context, "FetchVariant", error, language)
            return

        first = pb.Chunk(file_name=file_name, media_type=MEDIA_TYPES.get(file_format, "application/octet-stream"),
                         total_size=total_size, sha256=sha256)
        blocks = read_blocks(path) if data is None else (data[start:start + CHUNK_SIZE]
                                                         for start in range(0, len(data), CHUNK_SIZE))
        for block in blocks:
            if not context.is_active():
                return
            first.data = block
            yield first
            first = pb.Chunk()
        if total_size == 0:
            yield first

    def SaveVariant(self, request: pb.SaveVariantRequest, context):
        language = language_from(context.invocation_metadata())
        try:
            path, variant = self._variant_file(request.variant)
            target = self._save_target(request)
            if request.variant.HasField("format") and request.variant.format:
                source_format = FORMAT_OF_SUFFIX.get(path.suffix.lower(), "")
                if request.variant.format != source_format:
                    data = _converted(path, request.variant.format)
                    size, sha256 = self._write(target, [data])
                    return pb.SaveVariantResponse(path=str(target), size_bytes=size, sha256=sha256)
            size, sha256 = self._write(target, read_blocks(path))
            log.info("job %s: variant %s saved to %s", request.variant.job_id, variant.variant_id, target)
            return pb.SaveVariantResponse(path=str(target), size_bytes=size, sha256=sha256)
        except HeadshotError as error:
            self._reject(context, "SaveVariant", error, language)

    def _save_target(self, request: pb.SaveVariantRequest) -> Path:
        if not os.path.isabs(request.path):
            raise HeadshotError("path_not_absolute", request.path, "SaveVariant needs an absolute path")
        target = Path(request.path)
        if target.is_dir():
            raise HeadshotError("not_a_file", target, "the target is a folder")
        if not target.parent.is_dir():
            raise HeadshotError("write_failed", target, "the folder does not exist", reason="the folder does not exist")
        job = self.store.get_job(request.variant.job_id)
        inputs = {os.path.realpath(frame) for frame in (job.request.get("frames", []) if job else [])}
        if os.path.realpath(target) in inputs:
            raise HeadshotError("would_overwrite_input", target, "SaveVariant target is an input frame")
        if target.exists() and not request.overwrite:
            raise HeadshotError("file_exists", target, "overwrite was not requested")
        return target

    @staticmethod
    def _write(target: Path, blocks) -> tuple[int, str]:
        try:
            return write_atomically(target, blocks)
        except OSError as error:
            raise HeadshotError("write_failed", target, repr(error), reason=error.strerror or str(error)) from None

    def _variant_file(self, reference: pb.VariantRef):
        job = self.store.get_job(reference.job_id)
        if job is None:
            raise HeadshotError("job_not_found", None, reference.job_id, job=reference.job_id,
                                days=_days(self.config.retention_days))
        variant = self.store.variant(job.id, reference.variant_id)
        if variant is None:
            if job.state not in TERMINAL_STATES:
                raise HeadshotError("job_not_finished", None, f"{job.id} is {job.state}", job=job.id,
                                    state=_state_word(job.state))
            raise HeadshotError("variant_not_found", None, f"{job.id}/{reference.variant_id}", job=job.id,
                                variant=reference.variant_id)
        path = self.jobs_dir / job.id / variant.path
        if not path.is_file():
            raise HeadshotError("variant_not_found", None, f"{path} is missing", job=job.id,
                                variant=reference.variant_id)
        if reference.HasField("format") and reference.format and reference.format not in ("jpeg", "png", "tiff"):
            raise HeadshotError("invalid_option", None, f"format={reference.format!r}", option="format",
                                value=reference.format, allowed="jpeg, png, tiff")
        return path, variant

    # --- Control -----------------------------------------------------------------------

    def CancelJob(self, request: pb.JobId, context):
        language = language_from(context.invocation_metadata())
        message = event_message(request.job_id, 0, canceled=pb.Canceled(interrupted=False))
        try:
            job, sequence = self.store.cancel_pending(request.job_id, ("canceled", message.SerializeToString()))
            if job is None:
                raise HeadshotError("job_not_found", None, request.job_id, job=request.job_id,
                                    days=_days(self.config.retention_days))
            if sequence is None:
                code = "job_running" if job.state == IN_PROGRESS else "job_finished"
                raise HeadshotError(code, None, f"{job.id} is {job.state}", job=job.id, state=_state_word(job.state))
        except HeadshotError as error:
            self._reject(context, "CancelJob", error, language)
            return
        message.sequence = sequence
        self.hub.publish(message)
        if job.uploaded:
            remove_tree(self.jobs_dir / job.id)
        log.info("job %s: canceled while queued", job.id)
        return self._status(job, language)

    def InterruptJob(self, request: pb.JobId, context):
        language = language_from(context.invocation_metadata())
        try:
            job = self.store.get_job(request.job_id)
            if job is None:
                raise HeadshotError("job_not_found", None, request.job_id, job=request.job_id,
                                    days=_days(self.config.retention_days))
            if job.state in TERMINAL_STATES:
                raise HeadshotError("job_finished", None, f"{job.id} is {job.state}", job=job.id,
                                    state=_state_word(job.state))
            if not self.worker.interrupt(job.id):
                raise HeadshotError("job_not_running", None, f"{job.id} is {job.state}", job=job.id,
                                    state=_state_word(job.state))
        except HeadshotError as error:
            self._reject(context, "InterruptJob", error, language)
            return
        return self._status(job, language)

    def GetInfo(self, request, context):
        return pb.DaemonInfo(
            version=self.version, device=self.worker.device, engines=self.engines,
            queue_length=self.store.pending_count(), running_job_id=self.worker.current_job_id or "",
            pid=os.getpid(), address=self.address(), data_dir=str(self.config.data_path), log_path=self.log_path,
            max_queue=self.config.max_queue,
        )

    def ListStyles(self, request: pb.ListStylesRequest, context):
        language = language_from(context.invocation_metadata(), request.language) or None
        try:
            styles = importlib.import_module("pipeline.styles")
        except ModuleNotFoundError as error:
            if error.name != "pipeline.styles":
                raise
            return pb.ListStylesResponse()
        translate = gettext_for(language)
        messages = []
        for style in styles.list_styles():
            message = style_to_proto(style)
            if isinstance(style, dict) and not message.title:
                message.title = str(style.get(language or "en") or style.get("en") or message.name)
            elif message.title:
                message.title = translate(message.title)
            messages.append(message)
        return pb.ListStylesResponse(styles=messages)

    # --- Helpers -----------------------------------------------------------------------

    def _job_or_abort(self, context, job_id: str, language: str | None, method: str):
        job = self.store.get_job(job_id)
        if job is None:
            error = HeadshotError("job_not_found", None, job_id, job=job_id, days=_days(self.config.retention_days))
            self._reject(context, method, error, language)
        return job

    def _reject(self, context, method: str, error: HeadshotError, language: str | None):
        if "state" in error.params:
            error.params["state"] = gettext_for(language)(error.params["state"])
        log.warning("%s rejected from %s: %s", method, context.peer(), error)
        abort_with(context, error, language, self.log_path)


def _frame_file_names(frames) -> list[str]:
    """Return a safe, unique file name for each uploaded frame; the client's folder part is dropped."""
    names, seen = [], set()
    for index, frame in enumerate(frames):
        base = frame.name.replace("\\", "/").rsplit("/", 1)[-1].strip()
        if base in ("", ".", "..") or "\x00" in base:
            base = f"frame-{index + 1}"
        stem, dot, suffix = base.rpartition(".")
        if not dot:
            stem, suffix = base, ""
        candidate, counter = base, 2
        while candidate in seen:
            candidate = f"{stem}-{counter}.{suffix}" if dot else f"{stem}-{counter}"
            counter += 1
        seen.add(candidate)
        names.append(candidate)
    return names


def _translated_error(job, language: str | None) -> str | None:
    if not job.error_code:
        return None
    params = dict(job.error_params)
    file = params.pop("file", None)
    try:
        return HeadshotError(job.error_code, file, job.error_detail or "", **params).user_message(language)
    except (ValueError, KeyError, IndexError):
        return None


STATE_WORDS = {"pending": N_("queued"), "in_progress": N_("running"), "completed": N_("completed"),
               "failed": N_("failed"), "canceled": N_("canceled")}


def _state_word(state: str) -> str:
    """Return the untranslated word for a state; `_reject` translates it into the client's language."""
    return STATE_WORDS.get(state, state)


def _days(retention_days: float) -> str:
    return f"{retention_days:g}"


def _extension(file_format: str) -> str:
    return {"jpeg": "jpg", "tiff": "tif"}.get(file_format, file_format)


def _converted(path: Path, file_format: str) -> bytes:
    """Encode a variant in another format: 8-bit through Pillow (keeps the ICC profile), 16-bit through OpenCV."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise HeadshotError("not_an_image", path, "OpenCV could not decode the stored variant")
    if pixels.dtype == np.uint8:
        with Image.open(path) as image:
            profile = image.info.get("icc_profile")
            if file_format == "jpeg" and image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            buffer = io.BytesIO()
            options = {"quality": 95} if file_format == "jpeg" else {}
            image.save(buffer, format=file_format.upper(), icc_profile=profile, **options)
            return buffer.getvalue()

    # NOTE: the 16-bit path drops the ICC profile; OpenCV cannot write one.
    if file_format == "jpeg":
        pixels = (pixels / 257.0).round().astype(np.uint8)
    ok, encoded = cv2.imencode("." + _extension(file_format), pixels)
    if not ok:
        raise HeadshotError("write_failed", path, f"OpenCV could not encode {file_format}", reason=file_format)
    return encoded.tobytes()


def _available_engines() -> list[str]:
    """Return the engines whose packages are importable, without importing them (torch alone takes seconds)."""
    from importlib.util import find_spec

    candidates = (("torch", "torch"), ("mediapipe", "mediapipe"), ("opencv", "cv2"), ("diffusers", "diffusers"),
                  ("heif", "pillow_heif"))
    return [name for name, module in candidates if find_spec(module) is not None]


def _named_as_sent(error: HeadshotError) -> HeadshotError:
    """Return an uploaded frame's error naming the frame by its file name, not by the daemon's copy; likewise its `frame_errors`."""
    params = dict(error.params)
    if "frame_errors" in params:
        params["frame_errors"] = [_named_as_sent(frame_error) for frame_error in params["frame_errors"]]
    return HeadshotError(error.code, Path(error.path).name if error.path else None, error.detail, **params)
