"""Tests of the Lightroom hot-folder bridge with real files, real inotify events and a small real processor."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import HeadshotError
from plugins.lightroom_bridge.bridge import HotFolderBridge, WatchedFolder
from plugins.lightroom_bridge.filing import file_as_failed, write_atomically
from plugins.lightroom_bridge.processors import ProcessorUnavailable, check_decodable
from plugins.lightroom_bridge.scanner import InboxEventHandler, InboxTracker, is_ignored

SETTLE_S = 0.5
REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO_ROOT / "plugins" / "lightroom_bridge"


# -- a small real processor and image makers, shared with the soak test -------------------------------


def read_frame(path: Path) -> Image.Image:
    """Decode a frame into 8-bit RGB; 16-bit TIFFs through tifffile."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        pixels = tifffile.imread(path)
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        return Image.fromarray(pixels[..., :3])
    with Image.open(path) as image:
        return image.convert("RGB")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ThumbnailProcessor:
    """Writes a 256-pixel JPEG per frame, a contact sheet and report.json (naming each frame's sha256), each atomically."""

    def __init__(self, delay_s: float = 0.0, unavailable_times: int = 0):
        self.delay_s = delay_s
        self.unavailable_times = unavailable_times
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def process(self, frames: list[Path], out_dir: Path, request_options: dict) -> None:
        with self._lock:
            if self.unavailable_times > 0:
                self.unavailable_times -= 1
                raise ProcessorUnavailable("test back end is down")
        thumbnails = []
        for frame in frames:
            thumbnail = read_frame(frame)
            thumbnail.thumbnail((256, 256))
            write_atomically(out_dir / f"{frame.stem}_headshot.jpg", lambda path, image=thumbnail: image.save(path, "JPEG", quality=90))
            thumbnails.append(thumbnail)
            time.sleep(self.delay_s)
        sheet = Image.new("RGB", (256 * len(thumbnails), 256), "grey")
        for index, thumbnail in enumerate(thumbnails):
            sheet.paste(thumbnail, (256 * index, 0))
        write_atomically(out_dir / "contact-sheet.jpg", lambda path: sheet.save(path, "JPEG", quality=85))
        report = {"frames": [{"name": frame.name, "sha256": sha256_of(frame)} for frame in frames], "options": request_options}
        write_atomically(out_dir / "report.json", json.dumps(report, indent=2).encode("utf-8"))
        with self._lock:
            self.calls.append({"frames": [frame.name for frame in frames], "out_dir": out_dir, "options": request_options})


def portrait(seed: int, size: tuple[int, int] = (96, 80)) -> np.ndarray:
    """A small RGB uint8 picture that differs for every seed."""
    generator = np.random.default_rng(seed)
    height, width = size
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    pixels = np.broadcast_to(gradient, (height, width, 3)).copy()
    pixels += generator.normal(0, 20, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def tiff16_bytes(pixels: np.ndarray) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels.astype(np.uint16) * 257, photometric="rgb")
    return buffer.getvalue()


def wait_until(condition, timeout_s: float = 15.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


# -- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path):
    inbox, output, state = tmp_path / "Inbox", tmp_path / "Output", tmp_path / "state"
    inbox.mkdir()
    return inbox, output, state


@pytest.fixture
def make_bridge(folders):
    started: list[HotFolderBridge] = []

    def make(processor=None, **options) -> HotFolderBridge:
        inbox, output, state = folders
        watched = WatchedFolder(inbox, output, polling=options.pop("polling", False), options=options.pop("request_options", {}))
        bridge = HotFolderBridge([watched], processor or ThumbnailProcessor(), state_dir=state, settle_s=SETTLE_S, rescan_s=options.pop("rescan_s", 30.0), polling_interval_s=0.2, retry_after_s=0.3, **options)
        bridge.start()
        started.append(bridge)
        return bridge

    yield make
    for bridge in started:
        bridge.stop()


def settled(bridge: HotFolderBridge) -> bool:
    status = bridge.status()
    return status.waiting == 0 and status.processing == 0


# -- ignore rules and decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ignored",
    [
        (".DS_Store", True),
        ("._IMG_1.jpg", True),
        ("Thumbs.db", True),
        ("thumbs.db", True),
        ("desktop.ini", True),
        ("~$IMG_1.jpg", True),
        (".IMG_1.jpg.1a2b3c4d.part", True),
        ("IMG_1.xmp", True),
        ("IMG_1.jpg.crdownload", True),
        ("IMG_1.jpg", False),
        ("IMG_1.tif", False),
        ("notes.txt", False),
        ("Session Jansen", False),
    ],
)
def test_ignore_rules(name, ignored):
    assert is_ignored(name) is ignored


def test_decode_check_codes(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(portrait(1)))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg_bytes(portrait(2))[:700])
    text = tmp_path / "text.jpg"
    text.write_text("this is a note, not a photo\n")
    cut_tiff = tmp_path / "cut.tif"
    cut_tiff.write_bytes(tiff16_bytes(portrait(3))[:20000])

    check_decodable(good)
    for path, code in ((empty, "file_empty"), (cut, "file_truncated"), (text, "not_an_image"), (cut_tiff, "file_truncated")):
        with pytest.raises(HeadshotError) as caught:
            check_decodable(path)
        assert caught.value.code == code, path.name


# -- settling -----------------------------------------------------------------------------------------------------


def test_tracker_waits_for_settle(tmp_path):
    now = [100.0]
    tracker = InboxTracker(tmp_path, settle_s=2.0, clock=lambda: now[0])
    frame = tmp_path / "IMG_1.jpg"
    frame.write_bytes(b"x" * 10)
    assert tracker.scan() == 1
    assert tracker.take_ready() == []  # first look records the signature
    now[0] += 1.0
    assert tracker.take_ready() == []
    with frame.open("ab") as handle:
        handle.write(b"more")
    now[0] += 1.5
    assert tracker.take_ready() == []  # grew: settle time starts again
    now[0] += 2.1
    assert tracker.take_ready() == [frame]
    assert tracker.take_ready() == []  # held until released
    tracker.release(frame)
    assert tracker.waiting_count() == 1


def test_file_held_open_not_taken(make_bridge, folders):
    inbox, output, _ = folders
    processor = ThumbnailProcessor()
    make_bridge(processor)
    content = jpeg_bytes(portrait(4, (400, 300)))
    frame = inbox / "slow.jpg"

    # Pauses longer than the settle time while the file stays open: only the close-after-write event marks it complete.
    with frame.open("wb") as handle:
        for start in range(0, len(content), len(content) // 3 + 1):
            handle.write(content[start : start + len(content) // 3 + 1])
            handle.flush()
            time.sleep(SETTLE_S * 2.5)
            assert processor.calls == []
            assert frame.exists()

    assert wait_until(lambda: (inbox / "done" / "slow.jpg").exists())
    report = json.loads((output / "slow" / "report.json").read_text())
    assert report["frames"][0]["sha256"] == hashlib.sha256(content).hexdigest()
    assert len(processor.calls) == 1


def test_file_written_twice_processed_once(make_bridge, folders):
    inbox, output, _ = folders
    processor = ThumbnailProcessor()
    make_bridge(processor)
    first, second = jpeg_bytes(portrait(5)), jpeg_bytes(portrait(6))
    frame = inbox / "twice.jpg"
    frame.write_bytes(first)
    time.sleep(SETTLE_S / 2)
    frame.write_bytes(second)

    assert wait_until(lambda: (inbox / "done" / "twice.jpg").exists())
    assert len(processor.calls) == 1
    report = json.loads((output / "twice" / "report.json").read_text())
    assert report["frames"][0]["sha256"] == hashlib.sha256(second).hexdigest()


# -- filing ----------------------------------------------------------------------------------------------------------


def test_good_file_round_trip(make_bridge, folders):
    inbox, output, _ = folders
    bridge = make_bridge(request_options={"backdrops": ["white"]})
    content = tiff16_bytes(portrait(7))
    (inbox / "IMG_1.tif").write_bytes(content)
    (inbox / "IMG_1.xmp").write_text("<x:xmpmeta/>")

    assert wait_until(lambda: (inbox / "done" / "IMG_1.tif").exists())
    assert sorted(path.name for path in (output / "IMG_1").iterdir()) == ["IMG_1_headshot.jpg", "contact-sheet.jpg", "report.json"]
    assert (inbox / "done" / "IMG_1.tif").read_bytes() == content
    assert (inbox / "done" / "IMG_1.xmp").read_text() == "<x:xmpmeta/>"
    assert not (inbox / "IMG_1.xmp").exists()
    report = json.loads((output / "IMG_1" / "report.json").read_text())
    assert report["options"]["backdrops"] == ["white"]
    assert report["options"]["origin"] == f"hotfolder:{inbox}"
    assert wait_until(lambda: bridge.status().completed == 1)


def test_bad_files_go_to_failed(make_bridge, folders):
    inbox, output, _ = folders
    make_bridge()
    (inbox / "empty.jpg").write_bytes(b"")
    (inbox / "cut.jpg").write_bytes(jpeg_bytes(portrait(8))[:600])
    (inbox / "note.jpg").write_text("not a photo")
    expected_codes = {"empty.jpg": "file_empty", "cut.jpg": "file_truncated", "note.jpg": "not_an_image"}

    failed = inbox / "failed"
    assert wait_until(lambda: all((failed / name).exists() for name in expected_codes))
    for name, code in expected_codes.items():
        reason = (failed / f"{name}.error.txt").read_text(encoding="utf-8")
        assert f"Error code: {code}" in reason, reason
        assert "put the photo back into the inbox" in reason
    assert not any(output.iterdir())  # a failure leaves no output folder behind


def test_failure_reason_in_dutch(folders):
    inbox, _, _ = folders
    frame = inbox / "leeg.jpg"
    frame.write_bytes(b"")
    error = HeadshotError("file_empty", frame.name, "0 bytes")

    target = file_as_failed(inbox, frame, error, language="nl")

    reason = Path(f"{target}.error.txt").read_text(encoding="utf-8")
    assert "leeg.jpg is leeg (0 bytes)" in reason
    assert "Foutcode: file_empty" in reason
    assert target.read_bytes() == b""


def test_junk_left_untouched(make_bridge, folders):
    inbox, _, _ = folders
    junk = {".DS_Store": b"\0\0\0\1Bud1", "Thumbs.db": b"thumbs", "._x.jpg": b"\0\5\26\7", "~$x.jpg": b"lock", "desktop.ini": b"[.ShellClassInfo]"}
    for name, content in junk.items():
        (inbox / name).write_bytes(content)
    stats_before = {name: (inbox / name).stat().st_mtime_ns for name in junk}
    bridge = make_bridge()
    (inbox / "real.jpg").write_bytes(jpeg_bytes(portrait(9)))

    assert wait_until(lambda: (inbox / "done" / "real.jpg").exists())
    time.sleep(SETTLE_S * 2)
    for name, content in junk.items():
        assert (inbox / name).read_bytes() == content
        assert (inbox / name).stat().st_mtime_ns == stats_before[name]
    assert bridge.status().waiting == 0


def test_duplicate_processed_once(make_bridge, folders):
    inbox, output, _ = folders
    processor = ThumbnailProcessor()
    make_bridge(processor)
    content = jpeg_bytes(portrait(10))
    (inbox / "a.jpg").write_bytes(content)
    assert wait_until(lambda: (inbox / "done" / "a.jpg").exists())

    (inbox / "a.jpg").write_bytes(content)  # the same export again
    (inbox / "copy of a.jpg").write_bytes(content)

    assert wait_until(lambda: (inbox / "done" / "a-2.jpg").exists())
    assert wait_until(lambda: (inbox / "done" / "copy of a.jpg").exists())
    assert len(processor.calls) == 1
    assert [path.name for path in output.iterdir()] == ["a"]


def test_same_content_new_options_processed(make_bridge, folders, tmp_path):
    inbox, output, state = folders
    processor = ThumbnailProcessor()
    bridge = make_bridge(processor)
    content = jpeg_bytes(portrait(11))
    (inbox / "b.jpg").write_bytes(content)
    assert wait_until(lambda: (inbox / "done" / "b.jpg").exists())
    bridge.stop()

    make_bridge(processor, request_options={"backdrops": ["black"]})
    (inbox / "b.jpg").write_bytes(content)

    assert wait_until(lambda: (inbox / "done" / "b-2.jpg").exists())
    assert len(processor.calls) == 2
    assert sorted(path.name for path in output.iterdir()) == ["b", "b-2"]


def test_output_name_collision_suffix(make_bridge, folders):
    inbox, output, _ = folders
    make_bridge()
    (output / "c").mkdir(parents=True)
    (output / "c" / "keep.txt").write_text("someone else's folder")
    (inbox / "c.jpg").write_bytes(jpeg_bytes(portrait(12)))

    assert wait_until(lambda: (inbox / "done" / "c.jpg").exists())
    assert (output / "c-2" / "report.json").exists()
    assert [path.name for path in (output / "c").iterdir()] == ["keep.txt"]


def test_session_folder_is_one_job(make_bridge, folders):
    inbox, output, _ = folders
    processor = ThumbnailProcessor()
    make_bridge(processor)
    session = inbox / "Session Jansen"
    session.mkdir()
    for index in range(3):
        (session / f"frame_{index}.jpg").write_bytes(jpeg_bytes(portrait(20 + index)))
        time.sleep(SETTLE_S / 2)  # frames arriving one by one keep the session unsettled
    (session / ".DS_Store").write_bytes(b"junk")

    assert wait_until(lambda: (inbox / "done" / "Session Jansen").is_dir())
    assert len(processor.calls) == 1
    assert processor.calls[0]["frames"] == ["frame_0.jpg", "frame_1.jpg", "frame_2.jpg"]
    assert (output / "Session Jansen" / "contact-sheet.jpg").exists()
    assert len(list((output / "Session Jansen").glob("*_headshot.jpg"))) == 3


def test_session_with_bad_frame_fails(make_bridge, folders):
    inbox, output, _ = folders
    make_bridge()
    session = inbox / "Session De Vries"
    session.mkdir()
    (session / "good.jpg").write_bytes(jpeg_bytes(portrait(30)))
    (session / "cut.jpg").write_bytes(jpeg_bytes(portrait(31))[:500])

    assert wait_until(lambda: (inbox / "failed" / "Session De Vries").is_dir())
    reason = (inbox / "failed" / "Session De Vries.error.txt").read_text()
    assert "cut.jpg" in reason
    assert "Error code: file_truncated" in reason


# -- missed events, restarts, back end down -----------------------------------------------------------------------


def test_startup_scan_takes_waiting_files(make_bridge, folders):
    inbox, _, _ = folders
    (inbox / "early.jpg").write_bytes(jpeg_bytes(portrait(40)))
    make_bridge()
    assert wait_until(lambda: (inbox / "done" / "early.jpg").exists())


def test_rescan_finds_file_without_events(make_bridge, folders, monkeypatch):
    inbox, _, _ = folders
    monkeypatch.setattr(InboxEventHandler, "on_any_event", lambda self, event: None)
    make_bridge(rescan_s=1.0)
    (inbox / "quiet.jpg").write_bytes(jpeg_bytes(portrait(41)))
    assert wait_until(lambda: (inbox / "done" / "quiet.jpg").exists(), timeout_s=10)


def test_polling_observer_folder(make_bridge, folders):
    inbox, output, _ = folders
    make_bridge(polling=True)
    (inbox / "share.jpg").write_bytes(jpeg_bytes(portrait(42)))
    assert wait_until(lambda: (inbox / "done" / "share.jpg").exists())
    assert (output / "share" / "report.json").exists()


def start_bridge_process(inbox: Path, output: Path, state: Path, delay_s: float = 0.0, log_file: Path | None = None) -> subprocess.Popen:
    """Run a stand-alone bridge with the ThumbnailProcessor in a child process, so a test can kill -9 it."""
    command = [sys.executable, str(Path(__file__).resolve()), "--inbox", str(inbox), "--output", str(output), "--state", str(state), "--delay", str(delay_s)]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stream = open(log_file, "ab") if log_file else subprocess.DEVNULL
    return subprocess.Popen(command, env=environment, stdout=stream, stderr=stream)


def kill_hard(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def test_killed_attempt_replaced(make_bridge, folders, tmp_path):
    inbox, output, state = folders
    session = inbox / "Session Bakker"
    session.mkdir()
    for index in range(3):
        (session / f"frame_{index}.jpg").write_bytes(jpeg_bytes(portrait(50 + index)))
    child = start_bridge_process(inbox, output, state, delay_s=2.0, log_file=tmp_path / "child.log")
    try:
        assert wait_until(lambda: (output / "Session Bakker" / "frame_0_headshot.jpg").exists(), timeout_s=30)
    finally:
        kill_hard(child)
    (output / "Session Bakker" / ".frame_1_headshot.jpg.deadbeef.part").write_bytes(b"half")  # as a kill mid-write leaves it
    assert session.is_dir()
    assert not (output / "Session Bakker" / "report.json").exists()

    processor = ThumbnailProcessor()
    make_bridge(processor)

    assert wait_until(lambda: (inbox / "done" / "Session Bakker").is_dir(), timeout_s=20)
    assert sorted(path.name for path in output.iterdir()) == ["Session Bakker"]
    names = sorted(path.name for path in (output / "Session Bakker").iterdir())
    assert names == ["contact-sheet.jpg", "frame_0_headshot.jpg", "frame_1_headshot.jpg", "frame_2_headshot.jpg", "report.json"]
    assert len(processor.calls) == 1


def test_unavailable_processor_retried(make_bridge, folders):
    inbox, _, _ = folders
    processor = ThumbnailProcessor(unavailable_times=2)
    make_bridge(processor, max_attempts=1)
    (inbox / "later.jpg").write_bytes(jpeg_bytes(portrait(44)))
    assert wait_until(lambda: (inbox / "done" / "later.jpg").exists())
    assert processor.unavailable_times == 0
    assert len(processor.calls) == 1


def test_processor_error_goes_to_failed(make_bridge, folders):
    inbox, _, _ = folders

    class NoFaceProcessor:
        def process(self, frames, out_dir, request_options):
            raise HeadshotError("invalid_option", frames[0].name, "test", option="crops", value="moon", allowed="square")

    make_bridge(NoFaceProcessor())
    (inbox / "moon.jpg").write_bytes(jpeg_bytes(portrait(45)))
    assert wait_until(lambda: (inbox / "failed" / "moon.jpg.error.txt").exists())
    assert "Invalid option crops: moon" in (inbox / "failed" / "moon.jpg.error.txt").read_text()


def test_second_bridge_same_inbox_rejected(make_bridge, folders):
    inbox, output, state = folders
    make_bridge()
    second = HotFolderBridge([WatchedFolder(inbox, output)], ThumbnailProcessor(), state_dir=state)
    with pytest.raises(HeadshotError) as caught:
        second.start()
    assert caught.value.code == "hotfolder_in_use"


def test_overlapping_folders_rejected(tmp_path):
    with pytest.raises(HeadshotError) as caught:
        HotFolderBridge([WatchedFolder(tmp_path / "Inbox", tmp_path / "Inbox" / "Output")], ThumbnailProcessor(), state_dir=tmp_path)
    assert caught.value.code == "hotfolder_overlap"


# -- tray API ---------------------------------------------------------------------------------------------------------


def test_pause_resume_and_counts(make_bridge, folders):
    inbox, _, _ = folders
    bridge = make_bridge()
    bridge.pause()
    (inbox / "held.jpg").write_bytes(jpeg_bytes(portrait(46)))
    time.sleep(SETTLE_S * 4)

    status = bridge.status()
    assert status.paused
    assert status.waiting == 1
    assert status.processing == 0
    assert (inbox / "held.jpg").exists()

    bridge.resume()
    assert wait_until(lambda: (inbox / "done" / "held.jpg").exists())
    assert wait_until(lambda: settled(bridge))
    assert bridge.status().completed == 1


# -- Lightroom preset and command line --------------------------------------------------------------------------------


def test_lightroom_preset_settings():
    preset = (PLUGIN_DIR / "Headshot Studio.lrtemplate").read_text(encoding="utf-8")
    assert preset.lstrip().startswith("s = {")
    settings = dict(re.findall(r"^\s*(\w+) = (\"[^\"]*\"|\w+),?$", preset, flags=re.MULTILINE))
    assert settings["collisionHandling"] == '"rename"'
    assert settings["format"] == '"TIFF"'
    assert settings["export_bitDepth"] == "16"
    assert settings["export_destinationType"] == '"specificFolder"'
    assert "Headshot Studio/Inbox" in settings["export_destinationPathPrefix"]
    assert settings["export_useSubfolder"] == "false"
    assert settings["renamingTokensOn"] == "false"
    assert preset.count("{") == preset.count("}")


def test_hotfolder_command_registered():
    from daemon.cli import build_parser

    arguments = build_parser().parse_args(["hotfolder", "--in", "/tmp/in", "--out", "/tmp/out", "--in-process"])
    assert arguments.inbox == "/tmp/in"
    assert arguments.output == "/tmp/out"
    assert arguments.in_process
    assert callable(arguments.handler)


def _run_bridge_process() -> None:
    """Entry point of `start_bridge_process`: watch one inbox until killed."""
    import argparse
    import logging

    parser = argparse.ArgumentParser()
    for name in ("--inbox", "--output", "--state"):
        parser.add_argument(name, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    bridge = HotFolderBridge(
        [WatchedFolder(arguments.inbox, arguments.output)],
        ThumbnailProcessor(delay_s=arguments.delay),
        state_dir=Path(arguments.state),
        settle_s=SETTLE_S,
        rescan_s=5.0,
        retry_after_s=0.5,
    )
    bridge.start()
    threading.Event().wait()


if __name__ == "__main__":
    _run_bridge_process()


def test_write_preset_command(tmp_path):
    from daemon.cli import main

    inbox = tmp_path / "My Inbox"
    status = main(["hotfolder", "--in", str(inbox), "--out", str(tmp_path / "Out"), "--write-preset", str(tmp_path / "presets")])

    assert status == 0
    preset = (tmp_path / "presets" / "Headshot Studio.lrtemplate").read_text(encoding="utf-8")
    assert f'export_destinationPathPrefix = "{inbox}",' in preset
    assert 'format = "TIFF",' in preset


def test_duplicate_of_failed_names_itself(make_bridge, folders):
    inbox, _, _ = folders
    processor = ThumbnailProcessor()
    make_bridge(processor)
    cut = jpeg_bytes(portrait(60))[:500]
    (inbox / "first.jpg").write_bytes(cut)
    assert wait_until(lambda: (inbox / "failed" / "first.jpg.error.txt").exists())
    (inbox / "second.jpg").write_bytes(cut)

    assert wait_until(lambda: (inbox / "failed" / "second.jpg.error.txt").exists())
    first_reason = (inbox / "failed" / "first.jpg.error.txt").read_text()
    second_reason = (inbox / "failed" / "second.jpg.error.txt").read_text()
    assert first_reason.startswith("first.jpg is incomplete")
    assert second_reason.startswith("second.jpg is incomplete")
    assert processor.calls == []


# -- the real pipeline and the daemon's messages ------------------------------------------------------------------


def coffee_cup() -> np.ndarray:
    """A 400-pixel picture without a person in it (scikit-image's coffee cup)."""
    from skimage import data

    image = Image.fromarray(data.coffee())
    image.thumbnail((400, 400))
    return np.asarray(image)


def real_pipeline_bridge(make_bridge):
    from plugins.lightroom_bridge.processors import InProcessProcessor

    return make_bridge(InProcessProcessor(), request_options={"backdrops": ["white"], "crops": ["square"]})


def test_frame_without_face_goes_to_failed(make_bridge, folders):
    inbox, output, _ = folders
    real_pipeline_bridge(make_bridge)
    (inbox / "coffee.jpg").write_bytes(jpeg_bytes(coffee_cup()))

    assert wait_until(lambda: (inbox / "failed" / "coffee.jpg.error.txt").exists(), timeout_s=60)
    reason = (inbox / "failed" / "coffee.jpg.error.txt").read_text(encoding="utf-8")
    assert reason.startswith("coffee.jpg shows no face"), reason
    assert "Error code: frame_without_face" in reason
    assert (inbox / "failed" / "coffee.jpg").is_file()
    assert not any(output.iterdir())


def test_session_with_faceless_frame_done(make_bridge, folders, astronaut_rgb):
    inbox, output, _ = folders
    real_pipeline_bridge(make_bridge)
    session = inbox / "Session Visser"
    session.mkdir()
    astronaut = Image.fromarray(astronaut_rgb).resize((400, 400))
    (session / "portrait.jpg").write_bytes(jpeg_bytes(np.asarray(astronaut)))
    (session / "coffee.jpg").write_bytes(jpeg_bytes(coffee_cup()))

    assert wait_until(lambda: (inbox / "done" / "Session Visser").is_dir(), timeout_s=90)
    names = sorted(path.name for path in (output / "Session Visser").iterdir())
    assert names == ["contact-sheet.jpg", "portrait_white_natural_square.jpg", "report.json"]
    report = json.loads((output / "Session Visser" / "report.json").read_text(encoding="utf-8"))
    frames = {Path(frame["file"]).name: frame for frame in report["frames"]}
    assert frames["portrait.jpg"]["selected"]
    assert not frames["coffee.jpg"]["selected"]
    assert "no_face" in [reason["code"] for reason in frames["coffee.jpg"]["reasons"]]


def test_daemon_message_names_frame_in_inbox(make_bridge, folders):
    from plugins.lightroom_bridge.processors import ReportedError

    inbox, _, _ = folders

    class DaemonFailure:
        """Fails the way DaemonProcessor does: the daemon's message is already formatted, with the frame's absolute path."""

        def process(self, frames, out_dir, request_options):
            message = f"{frames[-1]} shows no face, so no headshot can be made from it."
            raise ReportedError("frame_without_face", str(frames[-1]), "no face", message)

    make_bridge(DaemonFailure())
    session = inbox / "Session Smit"
    session.mkdir()
    (session / "a.jpg").write_bytes(jpeg_bytes(portrait(70)))
    (session / "b.jpg").write_bytes(jpeg_bytes(portrait(71)))

    assert wait_until(lambda: (inbox / "failed" / "Session Smit.error.txt").exists())
    reason = (inbox / "failed" / "Session Smit.error.txt").read_text(encoding="utf-8")
    assert reason.startswith("Session Smit/b.jpg shows no face"), reason
    assert str(inbox / "Session Smit") not in reason


def test_cli_folders_get_default_styles(tmp_path):
    from daemon.cli import build_parser
    from daemon.config import load_config
    from plugins.lightroom_bridge.commands import watched_folders

    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[default_styles]\nbackdrops = ["black"]\ncrops = ["square"]\n\n[[hot_folders]]\ninbox = "{tmp_path / "A"}"\noutput = "{tmp_path / "B"}"\n',
        encoding="utf-8",
    )
    config = load_config(config_file)
    expected = {"backdrops": ["black"], "crops": ["square"]}

    from_arguments = watched_folders(build_parser().parse_args(["hotfolder", "--in", str(tmp_path / "In"), "--out", str(tmp_path / "Out")]), config)
    from_config = watched_folders(build_parser().parse_args(["hotfolder", "--polling"]), config)

    assert [folder.inbox for folder in from_arguments] == [tmp_path / "In"]
    assert from_arguments[0].options == expected
    assert [folder.inbox for folder in from_config] == [tmp_path / "A"]
    assert from_config[0].options == expected
    assert from_config[0].polling


def test_pipeline_bug_fails_entry_once(make_bridge, folders, monkeypatch, tmp_path):
    import pipeline.process
    from plugins.lightroom_bridge.processors import InProcessProcessor

    inbox, output, _ = folders
    calls = []

    def broken_run_job(request, output_dir, **options):
        calls.append(request.frames)
        raise NameError("name '_region' is not defined")

    monkeypatch.setattr(pipeline.process, "run_job", broken_run_job)
    make_bridge(InProcessProcessor(log_path=tmp_path / "hotfolder.log"))
    (inbox / "bug.jpg").write_bytes(jpeg_bytes(portrait(72)))

    assert wait_until(lambda: (inbox / "failed" / "bug.jpg.error.txt").exists())
    reason = (inbox / "failed" / "bug.jpg.error.txt").read_text(encoding="utf-8")
    assert reason.startswith(f"Something went wrong while processing bug.jpg. The log has the details: {tmp_path / 'hotfolder.log'}."), reason
    assert "Error code: internal_error" in reason
    assert "NameError" in reason
    assert len(calls) == 1
    assert not any(output.iterdir())


def test_failed_photo_put_back_is_tried_again(make_bridge, folders):
    inbox, output, _ = folders

    class FullDiskOnce(ThumbnailProcessor):
        """Fails the first job the way a full output disk does, then works."""

        def process(self, frames, out_dir, request_options):
            if not self.calls and not getattr(self, "failed_once", False):
                self.failed_once = True
                raise HeadshotError("write_failed", str(out_dir / "report.json"), "ENOSPC", reason="No space left on device")
            super().process(frames, out_dir, request_options)

    processor = FullDiskOnce()
    make_bridge(processor)
    content = jpeg_bytes(portrait(73))
    (inbox / "full.jpg").write_bytes(content)
    assert wait_until(lambda: (inbox / "failed" / "full.jpg.error.txt").exists())
    assert "Error code: write_failed" in (inbox / "failed" / "full.jpg.error.txt").read_text(encoding="utf-8")

    os.rename(inbox / "failed" / "full.jpg", inbox / "full.jpg")  # the photographer freed space and puts it back

    assert wait_until(lambda: (inbox / "done" / "full.jpg").exists())
    assert (inbox / "done" / "full.jpg").read_bytes() == content
    assert (output / "full" / "report.json").is_file()
    assert len(processor.calls) == 1


def test_ledger_attempts_restart_after_failure(tmp_path):
    from plugins.lightroom_bridge.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    inbox, output_dir = tmp_path / "Inbox", tmp_path / "Output" / "IMG_1"
    for _ in range(3):
        ledger.start_attempt(inbox, "key", "IMG_1.jpg", output_dir)
    assert ledger.lookup(inbox, "key").attempts == 3

    ledger.mark_failed(inbox, "key", {"code": "too_many_attempts"})
    entry = ledger.start_attempt(inbox, "key", "IMG_1.jpg", output_dir)
    ledger.close()

    assert entry.attempts == 1
    assert entry.state == "in_progress"
    assert entry.output_dir == output_dir


@pytest.mark.parametrize(("language", "prefix", "hint"), [
    ("en", "Error config_invalid: The settings file {file} is invalid: default_styles.crops is \"squar\"", "Did you mean square?"),
    ("nl", "Fout config_invalid: Het instellingenbestand {file} is ongeldig: default_styles.crops is \"squar\"", "Bedoelde je square?"),
])
def test_hotfolder_rejects_mistyped_default_style(tmp_path, language, prefix, hint):
    config_file = tmp_path / "config.toml"
    config_file.write_text('[default_styles]\ncrops = ["squar"]\n', encoding="utf-8")
    inbox = tmp_path / "Inbox"
    environment = {**os.environ, "HEADSHOT_HOME": str(tmp_path / "home"), "HEADSHOT_LANG": language}

    # A process, so that a hot folder which starts despite the error is stopped by the timeout.
    finished = subprocess.run([sys.executable, "-m", "daemon.cli", "hotfolder", "--config", str(config_file), "--in", str(inbox),
                               "--out", str(tmp_path / "Out"), "--in-process"],
                              cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=30)

    error = finished.stderr.strip()
    assert finished.returncode == 1
    assert error.startswith(prefix.format(file=config_file))
    assert error.endswith(hint)
    assert not inbox.exists()


@pytest.mark.parametrize(("language", "failed_line"), [
    ("en", "notes.jpg: Error not_an_image: notes.jpg is not an image"),
    ("nl", "notes.jpg: Fout not_an_image: notes.jpg"),
])
def test_hotfolder_terminal_shows_photo_lines(tmp_path, astronaut_rgb, language, failed_line):
    home, inbox = tmp_path / "home", tmp_path / "Inbox"
    inbox.mkdir()
    environment = {**os.environ, "HEADSHOT_HOME": str(home), "HEADSHOT_LANG": language}
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "hotfolder", "--in", str(inbox), "--out", str(tmp_path / "Out"),
                                "--in-process", "--settle", str(SETTLE_S)],
                               cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log_file = home / "logs" / "hotfolder.log"

        def watching() -> bool:
            return log_file.is_file() and "watching" in log_file.read_text()

        assert wait_until(watching)
        (inbox / "notes.jpg").write_text("shopping list", encoding="utf-8")
        assert wait_until(lambda: (inbox / "failed" / "notes.jpg.error.txt").exists(), timeout_s=60)
        Image.fromarray(astronaut_rgb).save(inbox / "portrait.png")
        assert wait_until(lambda: (inbox / "done" / "portrait.png").exists(), timeout_s=120)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)

    # The terminal has a line for the person per photo, in their language; the log file has the records.
    log = (home / "logs" / "hotfolder.log").read_text(encoding="utf-8")
    lines = out.splitlines()
    assert process.returncode == 0
    assert len(lines) >= 4
    assert lines[2].startswith(failed_line)
    assert lines[2].endswith(f"{inbox / 'failed' / 'notes.jpg'}.")
    done = {"en": "portrait.png: done, the headshots are in ", "nl": "portrait.png: klaar, de headshots staan in "}[language]
    assert lines[3] == f"{done}{tmp_path / 'Out' / 'portrait'}."
    assert " INFO " not in err
    assert " WARNING " not in err
    assert f"INFO plugins.lightroom_bridge.bridge [MainThread] hot folder {inbox}: watching (events)" in log
    assert "notes.jpg failed (not_an_image" in log


def test_hotfolder_refuses_unwritable_output(tmp_path, read_only_folder):
    # Every photo would fail to write its results, so the hot folder does not start.
    inbox = tmp_path / "Inbox"
    environment = {**os.environ, "HEADSHOT_HOME": str(tmp_path / "home"), "HEADSHOT_LANG": "en"}
    finished = subprocess.run([sys.executable, "-m", "daemon.cli", "hotfolder", "--in", str(inbox), "--out", str(read_only_folder),
                               "--in-process"],
                              cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=30)
    assert finished.returncode == 1
    assert finished.stderr.strip().startswith(f"Error write_failed: {read_only_folder}")
    assert "Watching" not in finished.stdout
