"""The daemon's command-line client against real daemons over Unix sockets: submit, status, jobs, cancel, autostart."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.cli import main
from daemon.client import DaemonClient, process_exists, read_discovery
from daemon.config import default_folders
from pipeline.errors import HeadshotError
from pipeline.process import variant_notes
from pipeline.request import JobRequest
from test_daemon_fixtures import REPO_ROOT, SlowRunner, daemon_home, start_daemon, start_daemon_process, write_frames  # noqa: F401

ONE_VARIANT_OPTIONS = ["--backdrop", "white", "--light", "natural", "--crop", "square"]


def run_cli(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def decodes(path: Path) -> bool:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None


def cli_environment(home: Path, language: str = "en") -> dict:
    # HOME too, so an autostarted daemon's default hot folders (under Pictures) land in the test folder.
    return {**os.environ, "HEADSHOT_HOME": str(home), "HEADSHOT_LANG": language, "HOME": str(home / "user"),
            "XDG_CONFIG_HOME": str(home / "user" / ".config"), "PYTHONPATH": str(REPO_ROOT)}


# --- submit ------------------------------------------------------------------------------------------------


def test_submit_writes_files_to_out(start_daemon, daemon_home, capsys):
    start_daemon()
    frames = write_frames(daemon_home / "in", 2)
    out_dir = daemon_home / "results"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("the photographer's own file, not the job's")

    code, out, err = run_cli(capsys, "submit", *frames, "--out", str(out_dir), "--no-start", *ONE_VARIANT_OPTIONS)

    assert code == 0, err
    written = sorted(path.name for path in out_dir.iterdir())
    assert written == ["contact-sheet.jpg", "frame00_0.png", "frame01_1.png", "notes.txt", "report.json"]
    for name in ("frame00_0.png", "frame01_1.png", "contact-sheet.jpg"):
        assert decodes(out_dir / name), name
    assert json.loads((out_dir / "report.json").read_text())["variants"] == ["frame00_0", "frame01_1"]
    assert f"Variants written to {out_dir}: 2; contact sheet contact-sheet.jpg, report report.json." in out.splitlines()
    assert "queued at position 1" in err


def test_submit_without_out_fetches_into_job_folder(start_daemon, daemon_home, capsys, monkeypatch):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)
    monkeypatch.chdir(daemon_home)

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", *ONE_VARIANT_OPTIONS)

    assert code == 0, err
    [job] = client.jobs()
    folder = daemon_home / f"headshot-{job.job_id}"
    assert sorted(path.name for path in folder.iterdir()) == ["contact-sheet.jpg", "frame00_0.png", "report.json"]
    [variant] = client.job(job.job_id).variants
    assert hashlib.sha256((folder / "frame00_0.png").read_bytes()).hexdigest() == variant.sha256
    assert decodes(folder / "contact-sheet.jpg")
    assert f"Variants written to {folder}: 1; contact sheet contact-sheet.jpg, report report.json." in out.splitlines()


def variants_only_runner(request, out_dir, on_event=None, should_stop=None):
    result = SlowRunner()(request, out_dir, on_event, should_stop)
    result.report_path.unlink()
    result.contact_sheet_path.unlink()
    return result


@pytest.mark.parametrize("language, expected", [
    ("en", "Variants written to {folder}: 2."),
    ("nl", "Varianten geschreven naar {folder}: 2."),
])
def test_submit_summary_without_report(start_daemon, daemon_home, capsys, monkeypatch, language, expected):
    start_daemon(runner=variants_only_runner)
    frames = write_frames(daemon_home / "in", 2)
    out_dir = daemon_home / "out"
    monkeypatch.setenv("HEADSHOT_LANG", language)

    code, out, err = run_cli(capsys, "submit", *frames, "--out", str(out_dir), "--no-start", *ONE_VARIANT_OPTIONS)

    assert code == 0, err
    assert sorted(path.name for path in out_dir.iterdir()) == ["frame00_0.png", "frame01_1.png"]
    assert out.splitlines() == [expected.format(folder=out_dir)]


def test_submit_summary_in_dutch(start_daemon, daemon_home, capsys, monkeypatch):
    start_daemon()
    frames = write_frames(daemon_home / "in", 2)
    out_dir = daemon_home / "out"
    monkeypatch.setenv("HEADSHOT_LANG", "nl")

    code, out, err = run_cli(capsys, "submit", *frames, "--out", str(out_dir), "--no-start", *ONE_VARIANT_OPTIONS)

    assert code == 0, err
    expected = f"Varianten geschreven naar {out_dir}: 2; contactblad contact-sheet.jpg, rapport report.json."
    assert expected in out.splitlines()


@pytest.mark.parametrize("transfer", ["path", "stream"])
def test_submit_json_lines_end_with_completed(start_daemon, daemon_home, capsys, transfer):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 2)
    stream = ["--stream"] if transfer == "stream" else []

    code, out, err = run_cli(capsys, "submit", *frames, "--json", "--out", str(daemon_home / "out"), "--no-start",
                             *stream, *ONE_VARIANT_OPTIONS)

    assert code == 0, err
    lines = json_lines(out)
    kinds = [line["event"] for line in lines]
    assert kinds[0] == "queued"
    assert kinds[-1] == "completed"
    assert kinds.count("variant_ready") == 2
    assert "progress" in kinds
    assert len({line["job_id"] for line in lines}) == 1
    sequences = [line["sequence"] for line in lines]
    assert sequences == sorted(sequences)
    final = lines[-1]
    assert final["completed"]["variant_count"] == 2
    for line in lines:
        assert type(line["sequence"]) is int
    variants = [line["variant_ready"] for line in lines if line["event"] == "variant_ready"]
    sizes = {Path(path).name: Path(path).stat().st_size for path in final["files"]}
    for variant in variants:
        assert type(variant["size_bytes"]) is int
        assert variant["size_bytes"] > 0
        assert "recipe_json" not in variant
        assert isinstance(variant["recipe"], dict)
        assert variant["notes"] == variant_notes(variant["recipe"])
    assert sorted(variant["size_bytes"] for variant in variants) == sorted(sizes[name] for name in ("frame00_0.png", "frame01_1.png"))
    assert all(Path(path).is_file() for path in final["files"])
    assert len(final["files"]) == 4
    status = client.job(lines[0]["job_id"])
    assert status.request.backdrops == ["white"]
    assert status.request.crops == ["square"]
    uploaded = status.request.frames[0] != frames[0]
    assert uploaded == (transfer == "stream")


def test_submit_real_pipeline_on_astronaut(start_daemon, daemon_home, capsys, astronaut_rgb):
    from daemon.worker import pipeline_runner

    start_daemon(runner=pipeline_runner)
    frame = daemon_home / "in" / "astronaut.jpg"
    frame.parent.mkdir()
    cv2.imwrite(str(frame), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out_dir = daemon_home / "out"

    code, out, err = run_cli(capsys, "submit", str(frame), "--out", str(out_dir), "--json", "--no-start",
                             "--backdrop", "white", "--crop", "square")

    final = json_lines(out)[-1]
    if code != 0 and "No module named 'pipeline." in final.get("failed", {}).get("detail", ""):
        pytest.skip(f"the pipeline is not complete yet: {final['failed']['detail']}")
    assert code == 0, err
    assert final["event"] == "completed"
    assert final["completed"]["variant_count"] == 1
    variants = [Path(path) for path in final["files"] if Path(path).suffix == ".jpg" and "contact" not in path]
    assert len(variants) == 1
    pixels = cv2.imread(str(variants[0]), cv2.IMREAD_UNCHANGED)
    assert pixels is not None
    assert pixels.shape[0] == pixels.shape[1]
    assert decodes(out_dir / "contact-sheet.jpg")
    assert json.loads((out_dir / "report.json").read_text())


def test_submit_skips_an_unreadable_frame_as_process_does(start_daemon, daemon_home, capsys, astronaut_rgb):
    from daemon.worker import pipeline_runner

    start_daemon(runner=pipeline_runner)
    frame = daemon_home / "in" / "astronaut.jpg"
    frame.parent.mkdir()
    cv2.imwrite(str(frame), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    empty = daemon_home / "in" / "empty.jpg"
    empty.write_bytes(b"")

    code, out, err = run_cli(capsys, "submit", str(frame), str(empty), "--out", str(daemon_home / "out"), "--no-start",
                             "--backdrop", "white", "--crop", "square")

    assert code == 0, err
    assert f"Skipped (file_empty): {empty} is empty (0 bytes). Export the photo again." in out.splitlines()
    report = json.loads((daemon_home / "out" / "report.json").read_text())
    levelled = [note["message"] for variant in report["variants"] for note in variant["notes"] if note["code"] == "head_levelled"]
    assert levelled  # the astronaut's head is levelled
    assert out.splitlines().count(f"astronaut.jpg: {levelled[0]}") == 1  # once per frame, as headshot process prints it
    assert (daemon_home / "out" / "astronaut_white_natural_square.jpg").is_file()

    # The same batch streamed: the empty frame is skipped too, named as sent.
    code, out, err = run_cli(capsys, "submit", str(frame), str(empty), "--out", str(daemon_home / "streamed"), "--no-start",
                             "--stream", "--backdrop", "white", "--crop", "square")
    assert code == 0, err
    skipped = [line for line in out.splitlines() if line.startswith("Skipped")]
    assert skipped == ["Skipped (file_empty): empty.jpg is empty (0 bytes). Export the photo again."]
    assert (daemon_home / "streamed" / "astronaut_white_natural_square.jpg").is_file()
    streamed_report = json.loads((daemon_home / "streamed" / "report.json").read_text())
    assert streamed_report["request"]["frames"] == ["astronaut.jpg", "empty.jpg"]
    assert f"{os.sep}frames{os.sep}" not in json.dumps(streamed_report)  # no path into the daemon's copies

    # With nothing readable the job is refused up front, naming the first file.
    code, out, err = run_cli(capsys, "submit", str(empty), "--no-start")
    assert code == 1
    assert "Error file_empty: " in err
    assert "empty.jpg" in err


@pytest.mark.parametrize("stream", [False, True])
def test_submit_reports_every_unreadable_frame(start_daemon, daemon_home, capsys, stream):
    from daemon.worker import pipeline_runner

    start_daemon(runner=pipeline_runner)
    folder = daemon_home / "bad"
    folder.mkdir()
    empty, text, cut = folder / "empty.jpg", folder / "text.jpg", folder / "trunc.jpg"
    empty.write_bytes(b"")
    text.write_text("shopping list", encoding="utf-8")
    cut.write_bytes(cv2.imencode(".jpg", np.full((400, 300, 3), 128, np.uint8))[1].tobytes()[:600])
    names = [path.name for path in (empty, text, cut)] if stream else [str(path) for path in (empty, text, cut)]

    code, out, err = run_cli(capsys, "submit", str(empty), str(text), str(cut), "--no-start", *(["--stream"] if stream else []))

    lines = err.strip().splitlines()
    assert code == 1
    assert out == ""
    assert len(lines) == 4
    assert lines[0] == "None of the 3 photos could be used:"
    assert lines[1].startswith(f"Error not_an_image: {names[1]} is not an image Headshot Studio can read.")
    assert lines[2].startswith(f"Error file_truncated: {names[2]} is incomplete: the image data ends early.")
    assert lines[3] == f"Error file_empty: {names[0]} is empty (0 bytes). Export the photo again."


def frames_unreadable_runner(request, out_dir, on_event=None, should_stop=None):
    """Score every frame as unreadable, as the pipeline does for a frame that fails to decode, then fail the job."""
    from pipeline.jobs import EventKind, JobEvent, Stage

    errors = [HeadshotError("file_truncated", frame, "truncated by the test runner") for frame in request.frames]
    for frame, error in zip(request.frames, errors):
        on_event(JobEvent(EventKind.frame_scored, stage=Stage.analysing, frame=frame, score=0.0,
                          reasons=[{"code": error.code, "message": error.user_message(request.language)}]))
    raise errors[0]


@pytest.mark.parametrize(("language", "skipped", "final"), [
    ("en", "Error file_truncated: {file} is incomplete", "Error file_truncated: {file} is incomplete"),
    ("nl", "Fout file_truncated: {file} is onvolledig", "Fout file_truncated: {file} is onvolledig"),
])
def test_failed_job_lists_every_frame_problem(start_daemon, daemon_home, capsys, monkeypatch, language, skipped, final):
    start_daemon(runner=frames_unreadable_runner)
    frames = write_frames(daemon_home / "in", 3)
    monkeypatch.setenv("HEADSHOT_LANG", language)

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", "--out", str(daemon_home / "out"))

    lines = err.strip().splitlines()[-4:]
    header = {"en": "None of the 3 photos could be used:", "nl": "Geen van de 3 foto's kon worden gebruikt:"}[language]
    assert code == 1
    assert lines.pop(0) == header
    assert lines[0].startswith(skipped.format(file=frames[1]))
    assert lines[1].startswith(skipped.format(file=frames[2]))
    assert lines[2].startswith(final.format(file=frames[0]))


def failing_runner(request, out_dir, on_event=None, should_stop=None):
    raise HeadshotError("file_truncated", request.frames[0], "the test runner says so")


@pytest.mark.parametrize("language, expected", [
    ("en", "is incomplete: the image data ends early"),
    ("nl", "is onvolledig"),
])
def test_submit_failed_job_exits_1_with_translated_message(start_daemon, daemon_home, capsys, monkeypatch,
                                                           language, expected):
    start_daemon(runner=failing_runner)
    frames = write_frames(daemon_home / "in", 1)
    monkeypatch.setenv("HEADSHOT_LANG", language)

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", "--out", str(daemon_home / "out"))

    assert code == 1
    assert expected in err
    assert "frame00.jpg" in err
    assert err.strip().splitlines()[-1].startswith({"en": "Error file_truncated: ", "nl": "Fout file_truncated: "}[language])

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", "--json", "--out", str(daemon_home / "out"))
    final = json_lines(out)[-1]
    assert final["event"] == "failed"
    assert final["error"]["file"] == frames[0]
    assert final["error"]["code"] == "file_truncated"
    assert expected in final["error"]["message"]


def test_submit_invalid_option_exits_2(start_daemon, daemon_home, capsys):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)

    code, _out, err = run_cli(capsys, "submit", *frames, "--no-start", "--crop", "bogus")
    assert code == 2
    assert "Invalid option --crop: bogus" in err

    code, _out, err = run_cli(capsys, "submit", *frames, "--no-start", "--top", "two")
    assert code == 2
    assert "Invalid option --top: two" in err
    assert client.jobs() == []


@pytest.mark.parametrize("language, expected", [
    ("en", "Error invalid_option: Invalid option --light: rembrandt. Allowed: "),
    ("nl", "Fout invalid_option: Ongeldige optie --light: rembrandt. Toegestaan: "),
])
def test_submit_suggests_light_names(start_daemon, daemon_home, capsys, monkeypatch, language, expected):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 1)
    monkeypatch.setenv("HEADSHOT_LANG", language)

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", "--json", "--light", "rembrandt")

    hint = {"en": "Did you mean rembrandt-left or rembrandt-right?",
            "nl": "Bedoelde je rembrandt-left of rembrandt-right?"}[language]
    assert code == 2
    assert err.strip().startswith(expected)
    assert err.strip().endswith(f"rim-right. {hint}")
    assert json_lines(out)[-1]["error"]["message"].endswith(f". {hint}")
    assert client.jobs() == []


def test_submit_stream_of_missing_file_exits_1(daemon_home, capsys):
    code, _out, err = run_cli(capsys, "submit", str(daemon_home / "absent.jpg"), "--stream", "--no-start")

    assert code == 1
    assert "absent.jpg was not found" in err


def test_submit_wrong_option_reported_before_daemon_lookup(daemon_home, capsys):
    frames = write_frames(daemon_home / "in", 1)

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", "--json", "--format", "gif", "--backdrop", "white")

    assert code == 2
    assert "Invalid option --format: gif" in err
    error = json_lines(out)[-1]["error"]
    assert (error["code"], error["file"]) == ("invalid_option", None)
    assert "daemon" not in err
    assert read_discovery() is None


def test_submit_no_start_without_daemon(daemon_home, capsys):
    frames = write_frames(daemon_home / "in", 1)

    code, out, err = run_cli(capsys, "submit", *frames, "--no-start", "--json")

    assert code == 1
    assert "The Headshot Studio daemon is not running. Start it with: headshot daemon" in err
    assert json_lines(out)[-1]["error"]["code"] == "daemon_not_running"
    assert read_discovery() is None


def test_ctrl_c_stops_watching_not_the_job(daemon_home):
    # 1. A slow daemon in its own process, and the client in another that we interrupt.
    daemon = start_daemon_process(daemon_home, seconds_per_frame=1.5)
    try:
        frames = write_frames(daemon_home / "in", 2)
        client_process = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "submit", *frames, "--json", "--no-start", "--out", str(daemon_home / "out")],
            cwd=REPO_ROOT, env=cli_environment(daemon_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = json.loads(client_process.stdout.readline())
        assert first["event"] == "queued"
        for line in client_process.stdout:
            if json.loads(line)["event"] == "stage_started":
                break
        client_process.send_signal(signal.SIGINT)
        _out, err = client_process.communicate(timeout=30)

        # 2. The client says how to stop the job; the job runs on to completion.
        assert client_process.returncode == 130
        assert f"headshot interrupt {first['job_id']}" in err
        assert str(daemon_home / "out") in err
        with DaemonClient(read_discovery().address) as client:
            final = client.wait(first["job_id"], timeout=60)
        assert final.WhichOneof("kind") == "completed"
        assert decodes(daemon_home / "out" / "frame01_1.png")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


def test_stop_requeues_running_job(daemon_home, capsys, monkeypatch):
    monkeypatch.setenv("HEADSHOT_HOME", str(daemon_home))
    daemon = start_daemon_process(daemon_home, seconds_per_frame=20.0)
    reaper = threading.Thread(target=daemon.wait, daemon=True)  # so the ended process does not linger as a zombie
    reaper.start()
    try:
        with DaemonClient(read_discovery().address) as client:
            handle = client.submit(JobRequest(frames=write_frames(daemon_home / "in", 1), backdrops=["white"], lights=["natural"], crops=["square"]))
            deadline = time.monotonic() + 10
            while client.info().running_job_id != handle.job_id and time.monotonic() < deadline:
                time.sleep(0.05)

        code, out, err = run_cli(capsys, "stop", "--json")

        assert code == 0, err
        values = json_lines(out)[-1]
        assert values["stopped"] is True
        assert values["pid"] == daemon.pid
        reaper.join(timeout=5)
        assert daemon.returncode is not None
        from daemon.server import DATABASE_NAME
        from daemon.store import JobStore

        store = JobStore(default_folders().data / DATABASE_NAME)
        try:
            assert store.get_job(handle.job_id).state == "pending"
        finally:
            store.close()
    finally:
        if daemon.poll() is None:
            daemon.kill()

    code, out, err = run_cli(capsys, "stop")
    assert code == 1
    assert "Error daemon_not_running: " in err


# --- status, jobs, cancel, interrupt ---------------------------------------------------------------------------


def test_status_of_running_daemon(start_daemon, capsys):
    daemon, _client = start_daemon()

    code, out, _err = run_cli(capsys, "status")
    assert code == 0
    assert "The Headshot Studio daemon" in out
    assert daemon.address in out
    assert str(os.getpid()) in out
    assert "0 waiting (at most 100)" in out

    code, out, _err = run_cli(capsys, "status", "--json")
    values = json.loads(out)
    assert values["running"] is True
    assert values["address"] == daemon.address
    assert values["pid"] == os.getpid()


@pytest.mark.parametrize("language, expected", [
    ("en", "The Headshot Studio daemon is not running. Start it with: headshot daemon"),
    ("nl", "De achtergronddienst van Headshot Studio draait niet. Start hem met: headshot daemon"),
])
def test_status_without_daemon(daemon_home, capsys, monkeypatch, language, expected):
    monkeypatch.setenv("HEADSHOT_LANG", language)

    code, out, err = run_cli(capsys, "status")

    assert code == 1
    assert out == ""
    assert expected in err

    code, out, err = run_cli(capsys, "status", "--json")
    assert code == 1
    values = json.loads(out)
    assert values["running"] is False
    # The same error keys as process --json and the submit event lines.
    assert sorted(values["error"]) == ["code", "detail", "file", "message"]
    assert values["error"]["code"] == "daemon_not_running"
    assert expected in values["error"]["message"]


def test_jobs_lists_state_origin_and_times(start_daemon, daemon_home, capsys):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 2)
    first = client.submit(JobRequest(frames=frames[:1], origin="gimp", backdrops=["white"], crops=["square"]))
    client.wait(first.job_id, timeout=30)
    second = client.submit(JobRequest(frames=frames[1:], backdrops=["white"], crops=["square"]))
    client.wait(second.job_id, timeout=30)

    code, out, _err = run_cli(capsys, "jobs", "--no-start")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["Job", "State", "Origin", "Queued", "Started", "Finished"]
    assert rows[0].startswith(second.job_id)
    assert "completed  cli" in rows[0]
    assert rows[1].startswith(first.job_id)
    assert "completed  gimp" in rows[1]

    code, out, _err = run_cli(capsys, "jobs", "--json", "--no-start")
    listed = json.loads(out)
    assert [job["job_id"] for job in listed] == [second.job_id, first.job_id]
    for job in listed:
        assert job["state"] == "completed"
        assert job["created"] <= job["started"] <= job["finished"]
        assert job["finished"].endswith("Z")


def test_jobs_names_uploaded_frames_as_sent(start_daemon, daemon_home, capsys):
    daemon, client = start_daemon()
    frames = write_frames(daemon_home / "in", 2)
    code, _out, err = run_cli(capsys, "submit", *frames, "--stream", "--no-start", "--out", str(daemon_home / "streamed"),
                              *ONE_VARIANT_OPTIONS)
    assert code == 0, err
    code, _out, err = run_cli(capsys, "submit", *frames[:1], "--no-start", "--out", str(daemon_home / "by-path"),
                              *ONE_VARIANT_OPTIONS)
    assert code == 0, err

    code, out, err = run_cli(capsys, "jobs", "--json", "--no-start")

    assert code == 0, err
    by_path, streamed = json.loads(out)
    assert streamed["frames"] == ["frame00.jpg", "frame01.jpg"]
    assert by_path["frames"] == frames[:1]
    assert client.job(streamed["job_id"]).request.frames == ["frame00.jpg", "frame01.jpg"]
    assert str(daemon.jobs_dir) not in out


def test_cancel_queued_and_interrupt_running(start_daemon, daemon_home, capsys):
    daemon, client = start_daemon(runner=SlowRunner(seconds_per_frame=20.0, pieces=40))
    frames = write_frames(daemon_home / "in", 2)
    running = client.submit(JobRequest(frames=frames[:1]))
    queued = client.submit(JobRequest(frames=frames[1:]))
    for event in client.watch(running.job_id, timeout=30):
        if event.WhichOneof("kind") == "stage_started":
            break

    code, _out, err = run_cli(capsys, "cancel", running.job_id)
    assert code == 1
    assert f"Job {running.job_id} is already running, so it can no longer be canceled. Stop it with: headshot interrupt {running.job_id}" in err

    code, out, _err = run_cli(capsys, "cancel", queued.job_id)
    assert code == 0
    assert f"Job {queued.job_id} was canceled." in out
    assert client.wait(queued.job_id, timeout=10).canceled.interrupted is False

    code, out, _err = run_cli(capsys, "interrupt", running.job_id)
    assert code == 0
    assert client.wait(running.job_id, timeout=10).canceled.interrupted is True

    code, _out, err = run_cli(capsys, "interrupt", running.job_id)
    assert code == 1
    assert f"Job {running.job_id} has already finished (it is canceled)." in err


@pytest.mark.parametrize("language, expected", [
    ("en", "Error job_not_found: Job 0123456789abcdef was not found. Finished jobs are kept for 14 days."),
    ("nl", "Fout job_not_found: Taak 0123456789abcdef is niet gevonden. Afgeronde taken worden 14 dagen bewaard."),
])
def test_cancel_unknown_job_is_not_found(start_daemon, capsys, monkeypatch, language, expected):
    start_daemon()
    monkeypatch.setenv("HEADSHOT_LANG", language)

    code, _out, err = run_cli(capsys, "cancel", "0123456789abcdef")

    assert code == 1
    assert err.strip() == expected


# --- autostart ------------------------------------------------------------------------------------------------


def test_autostart_starts_a_daemon_when_none_runs(daemon_home):
    result = subprocess.run([sys.executable, "-m", "daemon.cli", "jobs"], cwd=REPO_ROOT, env=cli_environment(daemon_home),
                            capture_output=True, text=True, timeout=90)
    discovery = read_discovery()
    try:
        assert result.returncode == 0, result.stderr
        assert "No jobs yet." in result.stdout
        assert "Starting the Headshot Studio daemon in the background" in result.stderr
        assert discovery is not None
        assert f"The daemon is running (process {discovery.pid})" in result.stderr
        assert process_exists(discovery.pid)
        with DaemonClient(discovery.address, discovery.token) as client:
            assert client.health() == "SERVING"
        assert (default_folders().logs / "daemon-output.log").is_file()

        # A second client uses the daemon that runs instead of starting another.
        again = subprocess.run([sys.executable, "-m", "daemon.cli", "jobs"], cwd=REPO_ROOT,
                               env=cli_environment(daemon_home), capture_output=True, text=True, timeout=60)
        assert again.returncode == 0
        assert "Starting" not in again.stderr
        assert read_discovery().pid == discovery.pid
    finally:
        if discovery is not None:
            os.kill(discovery.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while read_discovery() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_exists(discovery.pid) and read_discovery() is not None:
                os.kill(discovery.pid, signal.SIGKILL)
    assert read_discovery() is None


def test_autostart_reports_a_daemon_that_fails_to_start(daemon_home):
    from daemon.autostart import ensure_daemon
    from daemon.client import DaemonError

    # An invalid settings file makes the daemon exit with status 2 before it listens.
    config_file = default_folders().config_file
    config_file.parent.mkdir(parents=True)
    config_file.write_text("transport = 'carrier-pigeon'\n")
    progress = []

    with pytest.raises(DaemonError) as failed:
        ensure_daemon(timeout=60, on_progress=progress.append)

    assert failed.value.code == "daemon_start_failed"
    assert "exit status 2" in failed.value.message
    assert str(default_folders().logs / "daemon-output.log") in failed.value.message
    assert "transport" in (default_folders().logs / "daemon-output.log").read_text()
    assert read_discovery() is None
