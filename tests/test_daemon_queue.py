"""The daemon's queue over a real Unix socket: jobs complete, results are fetched, cancel and interrupt, limits."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import cv2
import grpc
import pytest

from daemon.client import DaemonClient, DaemonError
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb
from test_daemon_fixtures import SlowRunner, daemon_home, event_kinds, start_daemon, write_frames  # noqa: F401

ONE_VARIANT = {"backdrops": ["white"], "lights": ["natural"], "crops": ["square"]}


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met within the timeout")


def test_submitted_job_completes_with_events(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 2)

    handle = client.submit(JobRequest(frames=frames, origin="gimp", **ONE_VARIANT))
    events = list(client.watch(handle.job_id, timeout=30))

    kinds = event_kinds(events)
    assert handle.position == 1
    assert kinds[0] == "queued"
    assert kinds[1] == "started"
    assert kinds.count("frame_scored") == 2
    assert kinds.count("variant_ready") == 2
    assert kinds[-1] == "completed"
    assert events[-1].completed.variant_count == 2
    assert [event.sequence for event in events] == sorted(event.sequence for event in events)
    ready = [event.variant_ready for event in events if event.WhichOneof("kind") == "variant_ready"]
    assert all(variant.size_bytes > 0 and variant.width == 64 for variant in ready)


def test_watch_after_completion_replays_everything(start_daemon, daemon_home):
    daemon, client = start_daemon()
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    live = list(client.watch(handle.job_id, timeout=30))

    replayed = list(client.watch(handle.job_id, timeout=30))

    assert [event.sequence for event in replayed] == [event.sequence for event in live]
    assert event_kinds(replayed) == event_kinds(live)


def test_fetched_variant_equals_published_file(start_daemon, daemon_home):
    daemon, client = start_daemon()
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)
    variant = client.job(handle.job_id).variants[0]

    header, data = client.fetch_variant(handle.job_id, variant.variant_id)

    stored = daemon.jobs_dir / handle.job_id / "result" / variant.file_name
    assert data == stored.read_bytes()
    assert header.sha256 == hashlib.sha256(data).hexdigest() == variant.sha256
    assert header.total_size == len(data) == variant.size_bytes
    assert header.media_type == "image/png"
    assert cv2.imdecode(__import__("numpy").frombuffer(data, "uint8"), cv2.IMREAD_COLOR).shape == (64, 64, 3)


def test_fetch_converts_to_requested_format(start_daemon, daemon_home):
    daemon, client = start_daemon()
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)
    variant = client.job(handle.job_id).variants[0]

    header, data = client.fetch_variant(handle.job_id, variant.variant_id, file_format="jpeg")

    assert data[:3] == b"\xff\xd8\xff"
    assert header.media_type == "image/jpeg"
    assert header.file_name.endswith(".jpg")
    assert header.sha256 == hashlib.sha256(data).hexdigest()


def test_save_variant_writes_and_guards_paths(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)
    handle = client.submit(JobRequest(frames=frames, **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)
    variant = client.job(handle.job_id).variants[0]
    target = daemon_home / "saved" / "headshot.png"
    target.parent.mkdir()

    saved = client.save_variant(handle.job_id, variant.variant_id, target)

    assert saved.sha256 == variant.sha256
    assert hashlib.sha256(target.read_bytes()).hexdigest() == variant.sha256
    assert [path.name for path in target.parent.iterdir()] == ["headshot.png"]
    with pytest.raises(DaemonError) as exists:
        client.save_variant(handle.job_id, variant.variant_id, target)
    assert exists.value.status == grpc.StatusCode.ALREADY_EXISTS
    assert client.save_variant(handle.job_id, variant.variant_id, target, overwrite=True).size_bytes == variant.size_bytes
    with pytest.raises(DaemonError) as input_frame:
        client.save_variant(handle.job_id, variant.variant_id, frames[0], overwrite=True)
    assert input_frame.value.code == "would_overwrite_input"
    with pytest.raises(DaemonError) as missing_folder:
        client.save_variant(handle.job_id, variant.variant_id, daemon_home / "nowhere" / "x.png")
    assert missing_folder.value.code == "write_failed"


def test_uploaded_job_completes_and_drops_spool(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 2)

    handle = client.upload(JobRequest(frames=frames, **ONE_VARIANT), chunk_size=4096)
    final = client.wait(handle.job_id, timeout=30)

    assert final.WhichOneof("kind") == "completed"
    status = client.job(handle.job_id)
    assert [Path(frame).name for frame in status.request.frames] == ["frame00.jpg", "frame01.jpg"]
    assert not (daemon.jobs_dir / handle.job_id / "frames").exists()
    assert len(status.variants) == 2


def test_output_dir_receives_results(start_daemon, daemon_home):
    daemon, client = start_daemon()
    output_dir = daemon_home / "out" / "session"

    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT), output_dir=output_dir)
    final = client.wait(handle.job_id, timeout=30)

    assert final.completed.output_dir == str(output_dir)
    variant = client.job(handle.job_id).variants[0]
    assert sorted(path.name for path in output_dir.iterdir()) == sorted(
        ["contact-sheet.jpg", "report.json", variant.file_name])
    assert hashlib.sha256((output_dir / variant.file_name).read_bytes()).hexdigest() == variant.sha256


def test_result_named_like_input_copies_nothing(start_daemon, daemon_home):
    daemon, client = start_daemon()
    folder = daemon_home / "session"
    first = write_frames(folder, 1)[0]
    # The runner names frame00.jpg's result frame00_0.png, so this input sits where that result would go.
    clashing = folder / "frame00_0.png"
    cv2.imwrite(str(clashing), cv2.imread(first))
    before = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}

    handle = client.submit(JobRequest(frames=[first, str(clashing)], top=2, **ONE_VARIANT), output_dir=folder)
    final = client.wait(handle.job_id, timeout=30)

    assert final.WhichOneof("kind") == "failed"
    assert final.failed.code == "would_overwrite_input"
    after = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    assert after == before


def test_cancel_of_queued_job_leaves_running_one(start_daemon, daemon_home):
    runner = SlowRunner(seconds_per_frame=1.5)
    daemon, client = start_daemon(runner=runner)
    frames = write_frames(daemon_home / "in", 2)
    running = client.submit(JobRequest(frames=frames[:1], **ONE_VARIANT))
    queued = client.submit(JobRequest(frames=frames[1:], **ONE_VARIANT))
    wait_until(lambda: client.info().running_job_id == running.job_id)

    canceled = client.cancel(queued.job_id)

    assert canceled.state == pb.JOB_STATE_CANCELED
    assert client.wait(queued.job_id, timeout=5).canceled.interrupted is False
    assert client.job(running.job_id).state == pb.JOB_STATE_IN_PROGRESS
    assert client.wait(running.job_id, timeout=30).WhichOneof("kind") == "completed"
    assert runner.started_jobs == [frames[:1]]


def test_cancel_of_running_job_is_refused(start_daemon, daemon_home):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=1.0))
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    wait_until(lambda: client.info().running_job_id == handle.job_id)

    with pytest.raises(DaemonError) as refused:
        client.cancel(handle.job_id)

    assert refused.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.code == "job_running"
    assert client.wait(handle.job_id, timeout=30).WhichOneof("kind") == "completed"


def test_interrupt_stops_running_job_quickly(start_daemon, daemon_home):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=20.0, pieces=200))
    frames = write_frames(daemon_home / "in", 2)
    running = client.submit(JobRequest(frames=frames[:1], **ONE_VARIANT))
    behind = client.submit(JobRequest(frames=frames[1:], **ONE_VARIANT))
    wait_until(lambda: client.info().running_job_id == running.job_id)
    with pytest.raises(DaemonError) as not_running:
        client.interrupt(behind.job_id)

    started = time.monotonic()
    client.interrupt(running.job_id)
    final = client.wait(running.job_id, timeout=10)
    elapsed = time.monotonic() - started

    assert not_running.value.code == "job_not_running"
    assert final.canceled.interrupted is True
    assert elapsed < 2.0
    assert client.job(running.job_id).state == pb.JOB_STATE_CANCELED
    assert not list((daemon.jobs_dir / running.job_id).glob("attempt-*"))
    wait_until(lambda: client.info().running_job_id == behind.job_id)
    client.interrupt(behind.job_id)


def test_idle_worker_hands_freed_memory_back_once(start_daemon, daemon_home, monkeypatch):
    import daemon.worker as worker_module
    import pipeline.memory

    released = []
    monkeypatch.setattr(worker_module, "IDLE_RELEASE_S", 0.2)
    monkeypatch.setattr(pipeline.memory, "release_free_memory", lambda: released.append(time.monotonic()))
    daemon, client = start_daemon()
    time.sleep(1.5)
    assert released == []  # nothing is held before the first job

    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)
    wait_until(lambda: released, timeout=5)
    time.sleep(1.5)

    assert len(released) == 1


def test_full_queue_answers_resource_exhausted(start_daemon, daemon_home):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=3.0, pieces=60), max_queue=2)
    frames = write_frames(daemon_home / "in", 1)
    first = client.submit(JobRequest(frames=frames, **ONE_VARIANT))
    wait_until(lambda: client.info().running_job_id == first.job_id)
    queued = [client.submit(JobRequest(frames=frames, **ONE_VARIANT)) for _ in range(2)]

    with pytest.raises(DaemonError) as full:
        client.submit(JobRequest(frames=frames, **ONE_VARIANT))
    with pytest.raises(DaemonError) as full_upload:
        client.upload(JobRequest(frames=frames, **ONE_VARIANT))

    assert full.value.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert full.value.code == "queue_full"
    assert "2" in full.value.message
    assert full_upload.value.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [job.position for job in queued] == [1, 2]
    assert client.info().queue_length == 2
    for job in queued:
        client.cancel(job.job_id)
    client.interrupt(first.job_id)


def test_many_clients_at_once_all_complete(start_daemon, daemon_home):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=0.02, pieces=2))
    frames = write_frames(daemon_home / "in", 3, size=48)
    results: list[str] = []
    errors: list[BaseException] = []
    latencies: list[float] = []
    submitting = threading.Event()

    def one_client(index: int) -> None:
        try:
            with DaemonClient(daemon.address) as own:
                handles = [own.submit(JobRequest(frames=[frames[job]], origin=f"client-{index}", **ONE_VARIANT))
                           for job in range(3)]
                submitting.set()
                for handle in handles:
                    results.append(own.wait(handle.job_id, timeout=120).WhichOneof("kind"))
        except BaseException as error:
            errors.append(error)

    def probe() -> None:
        with DaemonClient(daemon.address) as own:
            submitting.wait(30)
            while len(results) < 60 and not errors:
                started = time.perf_counter()
                own.health()
                own.info()
                latencies.append((time.perf_counter() - started) / 2)
                time.sleep(0.01)

    threads = [threading.Thread(target=one_client, args=(index,)) for index in range(20)]
    prober = threading.Thread(target=probe)
    prober.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    prober.join(30)

    assert errors == []
    assert results == ["completed"] * 60
    assert len(client.jobs(limit=100)) == 60
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)]
    print(f"health + GetInfo under load: p95 {p95 * 1000:.1f} ms over {len(latencies)} probes")
    assert len(latencies) >= 10
    assert p95 < 0.1


def test_results_survive_restart_until_retention(start_daemon, daemon_home):
    daemon, client = start_daemon()
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    client.wait(handle.job_id, timeout=30)
    variant = client.job(handle.job_id).variants[0]
    client.close()
    daemon.stop()

    again, client = start_daemon()
    _header, data = client.fetch_variant(handle.job_id, variant.variant_id)
    assert hashlib.sha256(data).hexdigest() == variant.sha256
    client.close()
    again.stop()

    _expired, client = start_daemon(retention_days=1e-9)
    with pytest.raises(DaemonError) as gone:
        client.job(handle.job_id)
    assert gone.value.status == grpc.StatusCode.NOT_FOUND
    assert not (again.jobs_dir / handle.job_id).exists()


def test_list_jobs_filters_by_state_and_origin(start_daemon, daemon_home):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)
    done = client.submit(JobRequest(frames=frames, origin="gimp", **ONE_VARIANT))
    client.wait(done.job_id, timeout=30)
    other = client.submit(JobRequest(frames=frames, origin="hotfolder:/inbox", **ONE_VARIANT))
    client.wait(other.job_id, timeout=30)

    gimp_jobs = client.jobs(origin="gimp")
    completed = client.jobs(states=[pb.JOB_STATE_COMPLETED])
    failed = client.jobs(states=[pb.JOB_STATE_FAILED])

    assert [job.job_id for job in gimp_jobs] == [done.job_id]
    assert [job.job_id for job in completed] == [other.job_id, done.job_id]
    assert failed == []
    assert gimp_jobs[0].finished.seconds >= gimp_jobs[0].started.seconds >= gimp_jobs[0].created.seconds > 0


def test_info_styles_health_and_reflection(start_daemon, daemon_home):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    daemon, client = start_daemon()

    info = client.info()
    styles = client.styles()
    services = ProtoReflectionDescriptorDatabase(client.channel).get_services()

    assert info.version
    assert info.pid == os.getpid()
    assert info.address == daemon.address
    assert info.queue_length == 0
    assert "opencv" in info.engines
    assert client.health() == "SERVING"
    assert client.health("headshot.v1.HeadshotService") == "SERVING"
    assert "headshot.v1.HeadshotService" in services
    assert "grpc.health.v1.Health" in services
    assert {"backdrop", "light", "crop"} <= {style.kind for style in styles}
    assert any(style.name == "white" and style.title for style in styles)


def test_socket_and_discovery_are_private(start_daemon, daemon_home):
    daemon, _client = start_daemon()
    folders = daemon.folders

    socket_mode = stat.S_IMODE(os.stat(daemon.address.removeprefix("unix:")).st_mode)
    discovery_mode = stat.S_IMODE(folders.discovery_file.stat().st_mode)
    runtime_mode = stat.S_IMODE(folders.runtime.stat().st_mode)

    assert socket_mode == 0o600
    assert discovery_mode == 0o600
    assert runtime_mode == 0o700
    daemon.stop()
    assert not folders.discovery_file.exists()
    assert not Path(daemon.address.removeprefix("unix:")).exists()


def test_tcp_transport_requires_token(start_daemon, daemon_home):
    daemon, client = start_daemon(transport="tcp")

    assert daemon.address.startswith("127.0.0.1:")
    assert daemon.token
    assert client.health() == "SERVING"
    with DaemonClient(daemon.address) as stranger:
        with pytest.raises(DaemonError) as denied:
            stranger.info()
    with DaemonClient(daemon.address, token="wrong") as guesser:
        with pytest.raises(DaemonError) as wrong:
            guesser.health()
    assert denied.value.status == grpc.StatusCode.UNAUTHENTICATED
    assert denied.value.code == "unauthenticated"
    assert wrong.value.status == grpc.StatusCode.UNAUTHENTICATED


def test_second_daemon_in_same_home_is_refused(start_daemon, daemon_home):
    from daemon.config import load_config
    from daemon.server import Daemon, DaemonAlreadyRunning

    daemon, client = start_daemon()

    with pytest.raises(DaemonAlreadyRunning) as running:
        Daemon(load_config(), runner=SlowRunner()).start()

    assert running.value.pid == os.getpid()
    assert running.value.address == daemon.address
    assert client.health() == "SERVING"
    assert daemon.folders.discovery_file.exists()


def test_conversion_keeps_sixteen_bits(tmp_path):
    import numpy as np

    from daemon.service import _converted

    gradient = (np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3) * 5 % 65536).astype(np.uint16)
    source = tmp_path / "variant.png"
    cv2.imwrite(str(source), gradient)

    tiff = cv2.imdecode(np.frombuffer(_converted(source, "tiff"), np.uint8), cv2.IMREAD_UNCHANGED)
    jpeg = cv2.imdecode(np.frombuffer(_converted(source, "jpeg"), np.uint8), cv2.IMREAD_UNCHANGED)

    assert tiff.dtype == np.uint16
    assert np.array_equal(tiff, gradient)
    assert jpeg.dtype == np.uint8
    assert jpeg.shape == (64, 64, 3)


def _stop_while_watching(start_daemon, daemon_home, runner) -> dict:
    """Start a job, watch it from another thread, stop the daemon; return what the watcher got."""
    daemon, client = start_daemon(runner=runner)
    handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), **ONE_VARIANT))
    wait_until(lambda: client.info().running_job_id == handle.job_id)
    outcome = {"job_id": handle.job_id}

    def watch():
        try:
            outcome["events"] = list(client.watch(handle.job_id, timeout=30))
        except DaemonError as error:
            outcome["error"] = error

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.2)
    daemon.stop()
    thread.join(timeout=10)
    return outcome


def test_watch_during_stop_sends_job_end(start_daemon, daemon_home):
    outcome = _stop_while_watching(start_daemon, daemon_home, SlowRunner(seconds_per_frame=0.8, pieces=8))

    assert "error" not in outcome, outcome.get("error")
    assert event_kinds(outcome["events"])[-1] == "completed"


def test_watch_during_stop_reports_waiting_job(start_daemon, daemon_home):
    outcome = _stop_while_watching(start_daemon, daemon_home, SlowRunner(seconds_per_frame=30.0, pieces=300))

    assert outcome["error"].code == "daemon_stopping"
    assert outcome["job_id"] in outcome["error"].message
    assert "did not answer" not in outcome["error"].message
