"""The daemon's error codes, and how a `HeadshotError` becomes a gRPC status with a rich, translated payload.

A client reads the code from the status' ErrorInfo (or the `headshot-error-bin`
trailing metadata) and shows the translated message. The detail and the log
path are for developers.
"""

from __future__ import annotations

import json

import grpc

from pipeline.errors import HeadshotError, register_messages
from pipeline.i18n import N_, SUPPORTED_LANGUAGES

ERROR_DOMAIN = "headshot.studio"
ERROR_METADATA_KEY = "headshot-error-bin"
ERROR_CODE_METADATA_KEY = "headshot-error-code"

MESSAGES = {
    "queue_full": N_("The queue is full ({limit} jobs are waiting). Wait until some have finished, or raise max_queue in the settings."),
    "job_not_found": N_("Job {job} was not found. Finished jobs are kept for {days} days."),
    "variant_not_found": N_("Job {job} has no variant {variant}."),
    "job_running": N_("Job {job} is already running, so it can no longer be canceled. Stop it with: headshot interrupt {job}"),
    "job_not_running": N_("Job {job} is not running (it is {state}), so there is nothing to interrupt."),
    "job_finished": N_("Job {job} has already finished (it is {state})."),
    "job_not_finished": N_("Job {job} has not finished yet (it is {state}). Fetch its variants once it has completed."),
    "job_crashed": N_("Job {job} was given up after the daemon stopped {attempts} times while running it. The log has the details: {log}."),
    "no_frames": N_("The job has no frames. Add at least one photo."),
    "path_not_absolute": N_("{file} is not an absolute path. The daemon needs the full path of each file."),
    "file_exists": N_("{file} already exists. Choose another name, or allow overwriting."),
    "upload_invalid": N_("The upload was rejected: {reason}. Send the photos again."),
    "upload_incomplete": N_("The upload of {file} stopped after {received} of {size} bytes. Send the photo again."),
    "upload_corrupted": N_("{file} arrived damaged (its SHA-256 checksum does not match). Send the photo again."),
    "upload_canceled": N_("The upload was canceled before it was complete. Nothing was queued."),
    "unauthenticated": N_("The daemon rejected this client: its access token is missing or wrong. Restart the client so it reads the daemon's discovery file again."),
    "daemon_not_running": N_("The Headshot Studio daemon is not running. Start it with: headshot daemon"),
    "daemon_unreachable": N_("The Headshot Studio daemon at {address} did not answer ({reason}). Restart it with: headshot daemon"),
    "daemon_stopping": N_("The daemon stopped before job {job} ended. The job waits in the queue and goes on when the daemon starts again (headshot daemon); see where it stands with: headshot jobs"),
    "socket_in_use": N_("{file} is in use by another program, so the daemon cannot listen there. Remove it or set another address in the settings."),
}
register_messages(MESSAGES)

# The gRPC status of each code; any code not listed (the pipeline's own input
# checks, new codes from other areas) is an INVALID_ARGUMENT.
STATUS_CODES: dict[str, grpc.StatusCode] = {
    "file_not_found": grpc.StatusCode.NOT_FOUND,
    "job_not_found": grpc.StatusCode.NOT_FOUND,
    "variant_not_found": grpc.StatusCode.NOT_FOUND,
    "queue_full": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "job_running": grpc.StatusCode.FAILED_PRECONDITION,
    "job_not_running": grpc.StatusCode.FAILED_PRECONDITION,
    "job_finished": grpc.StatusCode.FAILED_PRECONDITION,
    "job_not_finished": grpc.StatusCode.FAILED_PRECONDITION,
    "write_failed": grpc.StatusCode.FAILED_PRECONDITION,
    "file_exists": grpc.StatusCode.ALREADY_EXISTS,
    "upload_canceled": grpc.StatusCode.CANCELLED,
    "daemon_stopping": grpc.StatusCode.UNAVAILABLE,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "internal_error": grpc.StatusCode.INTERNAL,
    "job_crashed": grpc.StatusCode.INTERNAL,
}


def status_code_for(error: HeadshotError) -> grpc.StatusCode:
    return STATUS_CODES.get(error.code, grpc.StatusCode.INVALID_ARGUMENT)


def language_from(metadata, requested: str = "") -> str | None:
    """Pick the reply language: the request's own, else the first supported one in `accept-language`."""
    if requested in SUPPORTED_LANGUAGES:
        return requested
    for key, value in metadata or ():
        if key.lower() != "accept-language" or not isinstance(value, str):
            continue
        for part in value.split(","):
            language = part.split(";")[0].strip().split("-")[0].split("_")[0].lower()
            if language in SUPPORTED_LANGUAGES:
                return language
    return None


def error_payload(error: HeadshotError, language: str | None, log_path: str) -> dict:
    """Return the error as a client shows it: code, translated message, detail, file and log path.

    An error about one of several unusable frames adds `frames`: the code, file and message of each other frame.
    """
    error.params.setdefault("log", log_path)
    payload = {
        "code": error.code,
        "message": error.user_message(language),
        "detail": error.detail,
        "file": error.path or "",
        "log": log_path,
    }
    frame_errors = error.params.get("frame_errors") or []
    if frame_errors:
        payload["frames"] = [{"code": frame_error.code, "file": frame_error.path or "", "message": frame_error.user_message(language)}
                             for frame_error in frame_errors]
    return payload


def abort_with(context: grpc.ServicerContext, error: HeadshotError, language: str | None, log_path: str):
    """End the RPC with the error's status code, a google.rpc.Status and the JSON trailing metadata."""
    from google.protobuf import any_pb2
    from google.rpc import code_pb2, error_details_pb2, status_pb2
    from grpc_status import rpc_status

    payload = error_payload(error, language, log_path)
    code = status_code_for(error)

    error_info = error_details_pb2.ErrorInfo(
        reason=error.code,
        domain=ERROR_DOMAIN,
        metadata={"detail": payload["detail"], "file": payload["file"], "log": log_path},
    )
    localized = error_details_pb2.LocalizedMessage(locale=language or "en", message=payload["message"])
    details = []
    for message in (error_info, localized):
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=payload["message"], details=details)

    rich = rpc_status.to_status(status)
    context.set_trailing_metadata(tuple(rich.trailing_metadata) + (
        (ERROR_CODE_METADATA_KEY, error.code),
        (ERROR_METADATA_KEY, json.dumps(payload, ensure_ascii=False).encode("utf-8")),
    ))
    context.abort(rich.code, rich.details)
