"""Conversions between the API's messages and the pipeline's types, shared by the server and its clients."""

from __future__ import annotations

import dataclasses
import json
import time

from google.protobuf.timestamp_pb2 import Timestamp

from pipeline.jobs import EventKind, JobEvent
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb

from .store import CANCELED, COMPLETED, FAILED, IN_PROGRESS, PENDING, JobRow, VariantRow

STATE_TO_PROTO = {
    PENDING: pb.JOB_STATE_PENDING,
    IN_PROGRESS: pb.JOB_STATE_IN_PROGRESS,
    COMPLETED: pb.JOB_STATE_COMPLETED,
    FAILED: pb.JOB_STATE_FAILED,
    CANCELED: pb.JOB_STATE_CANCELED,
}
STATE_FROM_PROTO = {value: key for key, value in STATE_TO_PROTO.items()}
TERMINAL_EVENT_KINDS = ("completed", "failed", "canceled")

_LIST_FIELDS = ("frames", "backdrops", "lights", "crops")
_SCALAR_FIELDS = ("origin", "top", "retouch", "makeup", "output_format", "bit_depth", "jpeg_quality", "language")


def request_to_proto(request: JobRequest, output_dir: str = "") -> pb.JobRequest:
    """Build the API message from the pipeline's request; every field is copied, defaults included."""
    message = pb.JobRequest(output_dir=output_dir)
    for name in _LIST_FIELDS:
        getattr(message, name).extend(str(value) for value in getattr(request, name))
    for name in _SCALAR_FIELDS:
        setattr(message, name, getattr(request, name))
    return message


def request_fields(message: pb.JobRequest) -> dict:
    """Return the message's fields that are set (non-empty lists, non-zero scalars) as a dict."""
    values: dict = {}
    for name in _LIST_FIELDS:
        items = list(getattr(message, name))
        if items:
            values[name] = items
    for name in _SCALAR_FIELDS:
        value = getattr(message, name)
        if value:
            values[name] = value
    return values


def request_from_dict(values: dict) -> JobRequest:
    return JobRequest.from_dict(values)


def timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def event_message(job_id: str, attempt: int, **kind) -> pb.JobEvent:
    """Build a JobEvent with exactly one kind set, e.g. `event_message(id, 1, started=pb.Started())`."""
    message = pb.JobEvent(job_id=job_id, attempt=attempt, time=timestamp(time.time()))
    for name, value in kind.items():
        getattr(message, name).CopyFrom(value)
    return message


def event_kind(message: pb.JobEvent) -> str:
    return message.WhichOneof("kind") or ""


def pipeline_event_to_proto(job_id: str, attempt: int, event: JobEvent, size_bytes: int = 0) -> pb.JobEvent | None:
    """Translate one event of `run_job` into the API's event; None for a kind the API does not know."""
    stage = event.stage.value if event.stage is not None else ""
    if event.kind == EventKind.stage_started:
        return event_message(job_id, attempt, stage_started=pb.StageStarted(stage=stage))
    if event.kind == EventKind.progress:
        progress = pb.Progress(stage=stage)
        if event.fraction is not None:
            progress.fraction = float(event.fraction)
        return event_message(job_id, attempt, progress=progress)
    if event.kind == EventKind.frame_scored:
        reasons = [pb.Reason(code=str(reason.get("code", "")), message=str(reason.get("message", "")))
                   for reason in event.reasons]
        scored = pb.FrameScored(frame=event.frame or "", score=float(event.score or 0.0), reasons=reasons)
        return event_message(job_id, attempt, frame_scored=scored)
    if event.kind == EventKind.variant_ready and event.variant is not None:
        variant = event.variant
        ready = pb.VariantReady(
            variant_id=variant.variant_id, recipe_json=json.dumps(variant.recipe, sort_keys=True, default=str),
            width=int(variant.width), height=int(variant.height), size_bytes=size_bytes,
            frame=str(variant.frame), score=float(variant.score),
        )
        return event_message(job_id, attempt, variant_ready=ready)
    return None


def variant_to_proto(variant: VariantRow) -> pb.Variant:
    return pb.Variant(
        variant_id=variant.variant_id, file_name=variant.path.rsplit("/", 1)[-1], recipe_json=variant.recipe_json,
        width=variant.width, height=variant.height, size_bytes=variant.size, sha256=variant.sha256,
        frame=variant.frame, score=variant.score,
    )


def job_status(job: JobRow, position: int, variants: list[VariantRow], log_path: str,
               error_message: str | None = None) -> pb.JobStatus:
    """Build the JobStatus message; `error_message` overrides the stored one (a re-translation)."""
    request = pb.JobRequest(output_dir=job.output_dir)
    for name, value in job.request.items():
        if name in _LIST_FIELDS:
            getattr(request, name).extend(str(item) for item in value)
        elif name in _SCALAR_FIELDS:
            setattr(request, name, value)
    status = pb.JobStatus(
        job_id=job.id, state=STATE_TO_PROTO[job.state], origin=job.origin, attempts=job.attempts,
        position=position, variants=[variant_to_proto(variant) for variant in variants], request=request,
    )
    for name in ("created", "started", "finished"):
        stamp = timestamp(getattr(job, name))
        if stamp is not None:
            getattr(status, name).CopyFrom(stamp)
    if job.state == FAILED:
        status.error.CopyFrom(pb.Failed(
            code=job.error_code or "", message=error_message or job.error_message or "",
            detail=job.error_detail or "", log_path=log_path, file=(job.error_params or {}).get("file") or "",
        ))
    return status


def style_to_proto(style) -> pb.Style:
    """Build a Style message from whatever the style registry returns: a dataclass, a dict or a name."""
    if dataclasses.is_dataclass(style) and not isinstance(style, type):
        record = dataclasses.asdict(style)
    elif isinstance(style, dict):
        record = dict(style)
    else:
        record = {"name": str(style)}
    return pb.Style(
        name=str(record.get("name", "")),
        kind=str(record.get("kind", "")),
        title=str(record.get("title", record.get("label", ""))),
        description=str(record.get("description", "")),
        json=json.dumps(record, sort_keys=True, default=str, ensure_ascii=False),
    )
