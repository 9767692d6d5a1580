"""Bad input over the API gets its status code and a translated message, and the daemon keeps serving."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
import zlib

import grpc
import pytest

from daemon.client import DaemonClient, DaemonError, upload_messages
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb
from test_daemon_fixtures import SlowRunner, daemon_home, start_daemon, write_frames  # noqa: F401

ONE_VARIANT = {"backdrops": ["white"], "lights": ["natural"], "crops": ["square"]}


def png_bomb_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height pixels, with one tiny IDAT: what a decompression bomb starts with."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def bad_files(daemon_home):
    folder = daemon_home / "bad"
    folder.mkdir()
    files = {
        "garbage": folder / "garbage.jpg",
        "empty": folder / "empty.jpg",
        "bomb": folder / "bomb.png",
        "folder": folder / "a-folder.jpg",
        "fifo": folder / "pipe.jpg",
    }
    files["garbage"].write_bytes(os.urandom(4096))
    files["empty"].write_bytes(b"")
    files["bomb"].write_bytes(png_bomb_header(100_000, 100_000))
    files["folder"].mkdir()
    os.mkfifo(files["fifo"])
    return files


def assert_still_serving(client: DaemonClient, daemon_home) -> None:
    assert client.health() == "SERVING"
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "good", 1), **ONE_VARIANT))
    assert client.wait(handle.job_id, timeout=30).WhichOneof("kind") == "completed"


@pytest.mark.parametrize("name, status, code", [
    ("garbage", grpc.StatusCode.INVALID_ARGUMENT, "not_an_image"),
    ("empty", grpc.StatusCode.INVALID_ARGUMENT, "file_empty"),
    ("bomb", grpc.StatusCode.INVALID_ARGUMENT, "image_too_large"),
    ("folder", grpc.StatusCode.INVALID_ARGUMENT, "not_a_file"),
    ("fifo", grpc.StatusCode.INVALID_ARGUMENT, "not_a_file"),
])
def test_bad_frame_path_is_rejected(start_daemon, daemon_home, bad_files, name, status, code):
    daemon, client = start_daemon()

    with pytest.raises(DaemonError) as rejected:
        client.submit(JobRequest(frames=[str(bad_files[name])], **ONE_VARIANT))

    assert rejected.value.status == status
    assert rejected.value.code == code
    assert bad_files[name].name in rejected.value.message
    assert rejected.value.log_path == str(daemon.log_path)
    assert client.jobs() == []
    assert_still_serving(client, daemon_home)


def test_missing_and_relative_paths_are_rejected(start_daemon, daemon_home):
    daemon, client = start_daemon()
    stub = client.stub

    with pytest.raises(DaemonError) as missing:
        client.submit(JobRequest(frames=[str(daemon_home / "nowhere.jpg")], **ONE_VARIANT))
    with pytest.raises(grpc.RpcError) as relative:
        stub.SubmitJob(pb.JobRequest(frames=["frame.jpg"]))
    with pytest.raises(grpc.RpcError) as no_frames:
        stub.SubmitJob(pb.JobRequest())

    assert missing.value.status == grpc.StatusCode.NOT_FOUND
    assert missing.value.code == "file_not_found"
    assert relative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frame.jpg" in relative.value.details()
    assert no_frames.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_still_serving(client, daemon_home)


@pytest.mark.parametrize("options, option", [
    ({"backdrops": ["neon-unicorn"]}, "backdrop"),
    ({"lights": ["disco"]}, "light"),
    ({"crops": ["hexagon"]}, "crop"),
    ({"retouch": "plastic"}, "retouch"),
    ({"output_format": "gif"}, "output_format"),
    ({"jpeg_quality": 101}, "jpeg_quality"),
])
def test_unknown_style_or_option_is_rejected(start_daemon, daemon_home, options, option):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)

    with pytest.raises(DaemonError) as rejected:
        client.submit(JobRequest(frames=frames, **{**ONE_VARIANT, **options}))

    assert rejected.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert rejected.value.code == "invalid_option"
    assert str(list(options.values())[0]).strip("[]'") in rejected.value.message
    assert client.jobs() == []


@pytest.mark.parametrize("language, options, hint", [
    ("en", {"lights": ["rembrandt"]}, "Did you mean rembrandt-left or rembrandt-right?"),
    ("nl", {"lights": ["rembrandt"]}, "Bedoelde je rembrandt-left of rembrandt-right?"),
    ("en", {"backdrops": ["studio-gry"]}, "Did you mean studio-grey?"),
    ("nl", {"crops": ["pasport"]}, "Bedoelde je passport of us-passport?"),
])
def test_mistyped_style_gets_suggestion(start_daemon, daemon_home, language, options, hint):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)

    with DaemonClient(daemon.address, language=language) as translated:
        with pytest.raises(DaemonError) as submitted:
            translated.submit(JobRequest(frames=frames, **{**ONE_VARIANT, **options}))
        with pytest.raises(DaemonError) as uploaded:
            translated.upload(JobRequest(frames=frames, **{**ONE_VARIANT, **options}))

    for rejected in (submitted.value, uploaded.value):
        assert rejected.code == "invalid_option"
        assert rejected.message.endswith(f". {hint}")
    assert client.jobs() == []


def test_error_carries_rich_status_in_dutch(start_daemon, daemon_home):
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    daemon, _client = start_daemon()
    missing = str(daemon_home / "weg.jpg")
    with DaemonClient(daemon.address, language="nl") as dutch:
        with pytest.raises(grpc.RpcError) as raw:
            dutch.stub.SubmitJob(pb.JobRequest(frames=[missing]))
        with pytest.raises(DaemonError) as wrapped:
            dutch.submit(JobRequest(frames=[missing]))

    status = rpc_status.from_call(raw.value)
    info = error_details_pb2.ErrorInfo()
    localized = error_details_pb2.LocalizedMessage()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(localized)
    assert info.reason == "file_not_found"
    assert info.metadata["log"] == str(daemon.log_path)
    assert localized.locale == "nl"
    assert "niet gevonden" in localized.message
    trailing = dict(raw.value.trailing_metadata())
    assert trailing["headshot-error-code"] == "file_not_found"
    assert json.loads(trailing["headshot-error-bin"].decode())["message"] == localized.message
    assert wrapped.value.message == localized.message
    assert raw.value.details() == localized.message


def test_uploaded_garbage_is_rejected_and_spool_removed(start_daemon, daemon_home, bad_files):
    daemon, client = start_daemon()

    with pytest.raises(DaemonError) as rejected:
        client.upload(JobRequest(frames=[str(bad_files["garbage"])], **ONE_VARIANT))

    assert rejected.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert rejected.value.code == "not_an_image"
    assert rejected.value.file == bad_files["garbage"].name  # as sent, not the daemon's copy of it
    assert str(daemon.jobs_dir) not in rejected.value.message
    assert list(daemon.jobs_dir.iterdir()) == []
    assert client.jobs() == []


def test_upload_that_stops_half_way_is_rejected(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 2, size=256)
    messages = list(upload_messages(JobRequest(frames=frames, **ONE_VARIANT), chunk_size=1024))
    half = messages[: len(messages) // 2]

    with pytest.raises(grpc.RpcError) as stopped:
        client.stub.UploadJob(iter(half))

    assert stopped.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frame00.jpg" in stopped.value.details()
    assert dict(stopped.value.trailing_metadata())["headshot-error-code"] == "upload_incomplete"
    assert list(daemon.jobs_dir.iterdir()) == []
    assert client.jobs() == []
    assert_still_serving(client, daemon_home)


def test_upload_with_wrong_checksum_is_rejected(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)
    messages = list(upload_messages(JobRequest(frames=frames, **ONE_VARIANT)))
    messages[0].header.frames[0].sha256 = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(grpc.RpcError) as corrupted:
        client.stub.UploadJob(iter(messages))

    assert corrupted.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(corrupted.value.trailing_metadata())["headshot-error-code"] == "upload_corrupted"
    assert list(daemon.jobs_dir.iterdir()) == []


def test_upload_chunk_over_one_mebibyte_is_rejected(start_daemon, daemon_home):
    daemon, client = start_daemon()
    data = os.urandom(1024 * 1024 + 1)
    header = pb.UploadHeader(request=pb.JobRequest(), frames=[
        pb.FrameHeader(name="big.jpg", size=len(data), sha256=hashlib.sha256(data).hexdigest())])
    messages = [pb.UploadChunk(header=header), pb.UploadChunk(data=pb.FrameData(frame_index=0, data=data))]

    with pytest.raises(grpc.RpcError) as rejected:
        client.stub.UploadJob(iter(messages))

    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(rejected.value.trailing_metadata())["headshot-error-code"] == "upload_invalid"
    assert list(daemon.jobs_dir.iterdir()) == []


def test_upload_canceled_by_client_queues_nothing(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1, size=512)
    messages = list(upload_messages(JobRequest(frames=frames, **ONE_VARIANT), chunk_size=2048))
    release = threading.Event()

    def stalling_stream():
        yield from messages[:3]
        release.wait(10)

    future = client.stub.UploadJob.future(stalling_stream())
    time.sleep(0.3)
    future.cancel()
    release.set()

    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    deadline = time.monotonic() + 5
    while list(daemon.jobs_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(daemon.jobs_dir.iterdir()) == []
    assert client.jobs() == []
    assert_still_serving(client, daemon_home)


def test_client_leaving_mid_watch_leaves_job_alone(start_daemon, daemon_home):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=1.0))
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))

    with DaemonClient(daemon.address) as leaving:
        stream = leaving.stub.WatchJob(pb.JobId(job_id=handle.job_id))
        first = next(stream)
        stream.cancel()
    deadline = time.monotonic() + 5
    while daemon._hub.watcher_count(handle.job_id) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert first.WhichOneof("kind") == "queued"
    assert daemon._hub.watcher_count(handle.job_id) == 0
    assert client.wait(handle.job_id, timeout=30).WhichOneof("kind") == "completed"
    assert client.health() == "SERVING"


def test_unknown_job_and_variant_are_not_found(start_daemon, daemon_home):
    daemon, client = start_daemon()
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)

    calls = {
        "watch": lambda: list(client.watch("0123456789abcdef")),
        "get": lambda: client.job("0123456789abcdef"),
        "cancel": lambda: client.cancel("0123456789abcdef"),
        "interrupt": lambda: client.interrupt("0123456789abcdef"),
        "fetch": lambda: client.fetch_variant(handle.job_id, "no-such-variant"),
    }
    for name, call in calls.items():
        with pytest.raises(DaemonError) as missing:
            call()
        assert missing.value.status == grpc.StatusCode.NOT_FOUND, name
    with pytest.raises(DaemonError) as finished:
        client.cancel(handle.job_id)
    assert finished.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert finished.value.code == "job_finished"


def test_failing_job_reports_code_and_message(start_daemon, daemon_home):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=0.5))
    frames = write_frames(daemon_home / "in", 2)
    running = client.submit(JobRequest(frames=frames[:1], **ONE_VARIANT))
    # Valid when submitted; damaged while it waits, so the runner's own decode fails inside the job.
    doomed = client.submit(JobRequest(frames=frames[1:], language="en", **ONE_VARIANT))
    with open(frames[1], "wb") as frame:
        frame.write(os.urandom(2048))

    final = client.wait(doomed.job_id, timeout=30)
    with DaemonClient(daemon.address, language="nl") as dutch:
        dutch_final = list(dutch.watch(doomed.job_id, timeout=10))[-1]
        dutch_status = dutch.job(doomed.job_id)
    status = client.job(doomed.job_id)

    assert client.wait(running.job_id, timeout=30).WhichOneof("kind") == "completed"
    assert final.failed.code == "not_an_image"
    assert "frame01.jpg" in final.failed.message
    assert final.failed.detail
    assert final.failed.log_path == str(daemon.log_path)
    assert status.state == pb.JOB_STATE_FAILED
    assert status.error.code == "not_an_image"
    assert status.error.message == final.failed.message
    assert dutch_final.failed.message != final.failed.message
    assert "afbeelding" in dutch_final.failed.message
    assert dutch_status.error.message == dutch_final.failed.message
    assert status.variants == []
    assert not (daemon.jobs_dir / doomed.job_id / "result").exists()


def test_daemon_texts_have_dutch_translations():
    from daemon import errors, service
    from pipeline.i18n import gettext_for

    dutch = gettext_for("nl")
    texts = [*errors.MESSAGES.values(), *service.STATE_WORDS.values()]

    untranslated = [text for text in texts if dutch(text) == text]

    assert untranslated == []


def test_refusal_names_state_in_client_language(start_daemon, daemon_home):
    daemon, client = start_daemon()
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)

    with DaemonClient(daemon.address, language="nl") as dutch:
        with pytest.raises(DaemonError) as finished:
            dutch.cancel(handle.job_id)

    assert finished.value.code == "job_finished"
    assert finished.value.message == f"Taak {handle.job_id} is al afgelopen (de status is voltooid)."


@pytest.mark.parametrize(("language", "reason"), [("en", "(permission denied)"), ("nl", "(toegang geweigerd)")])
def test_read_only_output_dir_rejected_up_front(start_daemon, daemon_home, read_only_folder, language, reason):
    daemon, _client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)
    new_folder = read_only_folder / "headshots"

    with DaemonClient(daemon.address, daemon.token, language=language) as client:
        for output_dir in (read_only_folder, new_folder):
            for send in (client.submit, client.upload):
                with pytest.raises(DaemonError) as rejected:
                    send(JobRequest(frames=frames, **ONE_VARIANT), output_dir=str(output_dir))

                assert rejected.value.code == "write_failed"
                assert rejected.value.status == grpc.StatusCode.FAILED_PRECONDITION
                assert rejected.value.message.startswith(f"{output_dir} ")
                assert reason in rejected.value.message
        assert client.jobs() == []
    assert not new_folder.exists()
