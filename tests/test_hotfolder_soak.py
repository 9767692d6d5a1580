"""Soak test of the hot folder: real files dropped the way exports and copies arrive, while the daemon and the bridge are killed with SIGKILL.

The default run drops 40 files and kills the daemon and the bridge once each,
with a light job runner inside the real daemon. `make soak` drops 200 files,
kills the daemon twice and the bridge once, and runs the real pipeline in the
daemon unless HEADSHOT_SOAK_RUNNER=thumbnail.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_hotfolder import REPO_ROOT, read_frame, start_bridge_process, tiff16_bytes

JUNK_FILES = {".DS_Store": b"\x00\x00\x00\x01Bud1\x00", "Thumbs.db": b"\xd0\xcf\x11\xe0thumbs", "._x.jpg": b"\x00\x05\x16\x07resource", "~$x.jpg": b"office lock"}
SETTLE_S = 1.0
SLOW_CHUNKS = 5
SLOW_PAUSE_S = 0.7  # pauses below the settle time, so only completeness checks keep a slow file waiting


@dataclass
class Drop:
    """One thing dropped into the inbox: a file, or a session folder of several frames."""

    name: str
    kind: str  # "good", "duplicate", "session", "empty", "truncated", "text", "junk"
    files: dict[str, bytes]  # relative path -> content; a single file's key is `name`
    slow: str = ""  # "open": written in chunks through one handle; "reopen": appended, closed between chunks

    @property
    def content_key(self) -> tuple[str, ...]:
        return tuple(sorted(hashlib.sha256(content).hexdigest() for content in self.files.values()))


@dataclass
class SoakPlan:
    files: int
    frames_per_session: int
    kills: tuple[str, ...]  # "daemon" or "bridge", in order
    drop_duration_s: float
    finish_timeout_s: float
    runner: str  # "thumbnail" or "pipeline"


@dataclass
class SoakResult:
    drops: list[Drop]
    elapsed_s: float
    restarts: int
    sampler_failures: list[str] = field(default_factory=list)
    sampler_decoded: int = 0


# -- what is dropped ------------------------------------------------------------------------------------------------


def base_portraits(photos: Path | None) -> list[np.ndarray]:
    """Return portraits with a long side of 400-600 pixels: the team's photos, or the astronaut where they are absent."""
    images = []
    if photos is not None:
        for name in ("biden2.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
            if (photos / name).exists():
                with Image.open(photos / name) as image:
                    images.append(image.convert("RGB"))
    if not images:
        from skimage import data

        images = [Image.fromarray(data.astronaut())]
    portraits = []
    for index, image in enumerate(images):
        long_side = 400 + (index * 50) % 201
        image.thumbnail((long_side, long_side))
        portraits.append(np.asarray(image))
    return portraits


def stamped(pixels: np.ndarray, number: int) -> np.ndarray:
    """Return a copy with `number` coded into a corner block, so every drop has its own content."""
    copy = pixels.copy()
    for bit in range(12):
        value = 255 if number >> bit & 1 else 0
        copy[0:4, bit * 4 : bit * 4 + 4] = value
    return copy


def encode_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def plan_drops(plan: SoakPlan, photos: Path | None, seed: int = 7) -> list[Drop]:
    """Make the mix of the acceptance run: good JPEGs and 16-bit TIFFs, slow writes, bad files, duplicates, junk, sessions."""
    generator = random.Random(seed)
    portraits = base_portraits(photos)
    numbers = iter(range(1, 10_000))

    def good_file(stem: str) -> tuple[str, bytes]:
        pixels = stamped(portraits[generator.randrange(len(portraits))], next(numbers))
        if generator.random() < 0.4:
            return f"{stem}.tif", tiff16_bytes(pixels)
        return f"{stem}.jpg", encode_jpeg(pixels)

    # 1. Sessions, junk and bad files take a fixed share; duplicates copy good files.
    drops: list[Drop] = []
    for session_index in range(3):
        name = f"Session {session_index + 1}"
        frames = dict(good_file(f"{name}/frame_{frame_index}") for frame_index in range(plan.frames_per_session))
        drops.append(Drop(name, "session", frames))
    drops += [Drop(name, "junk", {name: content}) for name, content in JUNK_FILES.items()]
    bad_each = max(2, plan.files * 3 // 100)
    for index in range(bad_each):
        drops.append(Drop(f"empty_{index}.jpg", "empty", {f"empty_{index}.jpg": b""}))
        cut = encode_jpeg(stamped(portraits[0], next(numbers)))
        drops.append(Drop(f"cut_{index}.jpg", "truncated", {f"cut_{index}.jpg": cut[: len(cut) * 2 // 5]}))
        drops.append(Drop(f"note_{index}.jpg", "text", {f"note_{index}.jpg": f"Retouch notes {index}: softer skin.\n".encode()}))
    duplicate_count = max(3, plan.files // 20)
    slow_count = max(3, plan.files // 20)
    good_count = plan.files - 3 * plan.frames_per_session - len(JUNK_FILES) - 3 * bad_each - duplicate_count

    # 2. Good files, some written slowly.
    good_drops = []
    for index in range(good_count):
        name, content = good_file(f"IMG_{index:04d}")
        slow = ("open", "reopen")[index % 2] if index < slow_count else ""
        good_drops.append(Drop(name, "good", {name: content}, slow=slow))
    for index in range(duplicate_count):
        original = good_drops[(index * 7) % len(good_drops)]
        name = f"copy {index} of {original.name}"
        drops.append(Drop(name, "duplicate", {name: original.files[original.name]}))
    drops += good_drops
    generator.shuffle(drops)
    return drops


def write_drop(inbox: Path, drop: Drop) -> None:
    """Write a drop under its final name, the way an export or a copy arrives (never atomically)."""
    for relative, content in drop.files.items():
        path = inbox / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if drop.slow == "open":
            step = len(content) // SLOW_CHUNKS + 1
            with open(path, "wb") as handle:
                for start in range(0, len(content), step):
                    handle.write(content[start : start + step])
                    handle.flush()
                    time.sleep(SLOW_PAUSE_S)
        elif drop.slow == "reopen":
            step = len(content) // SLOW_CHUNKS + 1
            path.write_bytes(b"")
            for start in range(0, len(content), step):
                with open(path, "ab") as handle:
                    handle.write(content[start : start + step])
                time.sleep(SLOW_PAUSE_S)
        else:
            path.write_bytes(content)
        if drop.kind == "session":
            time.sleep(0.2)  # frames of a session arrive one after another


# -- processes ------------------------------------------------------------------------------------------------------


def thumbnail_runner(request, out_dir: Path, on_event=None, should_stop=None):
    """A light job runner with run_job's contract: a 256-pixel JPEG per frame, a contact sheet and report.json."""
    from pipeline.jobs import JobCanceled, JobResult, VariantResult

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    variants, thumbnails = [], []
    for frame in request.frames:
        if should_stop is not None and should_stop():
            raise JobCanceled()
        thumbnail = read_frame(Path(frame))
        thumbnail.thumbnail((256, 256))
        path = out_dir / f"{Path(frame).stem}_headshot.jpg"
        thumbnail.save(path, "JPEG", quality=90)
        thumbnails.append(thumbnail)
        variants.append(VariantResult(variant_id=path.stem, path=path, frame=frame, recipe={"crop": "as-shot"}, width=thumbnail.width, height=thumbnail.height, score=50.0))
        time.sleep(0.1)
    sheet = Image.new("RGB", (256 * len(thumbnails), 256), "grey")
    for index, thumbnail in enumerate(thumbnails):
        sheet.paste(thumbnail, (256 * index, 0))
    sheet_path = out_dir / "contact-sheet.jpg"
    sheet.save(sheet_path, "JPEG", quality=85)
    report = {"frames": list(request.frames), "variants": [variant.variant_id for variant in variants]}
    report_path = out_dir / "report.json"
    report_path.write_text(json.dumps(report), encoding="utf-8")
    return JobResult(variants=variants, report_path=report_path, contact_sheet_path=sheet_path, report=report)


def daemon_folders(home: Path):
    from daemon.config import Folders

    return Folders(config=home / "config", data=home / "data", runtime=home / "runtime", logs=home / "logs")


def start_daemon(home: Path, runner: str, log_file: Path) -> subprocess.Popen:
    """Start the real daemon under `home` with the given runner; return once its discovery file names it."""
    from daemon.client import read_discovery

    environment = {**os.environ, "HEADSHOT_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    with open(log_file, "ab") as stream:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--daemon-child", runner], cwd=REPO_ROOT, env=environment, stdout=stream, stderr=stream)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode}; see {log_file}")
        discovery = read_discovery(daemon_folders(home))
        if discovery is not None and discovery.pid == process.pid:
            return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the daemon did not write its discovery file within 90 s")


def kill_hard(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


# -- the sampler ----------------------------------------------------------------------------------------------------


class OutputSampler(threading.Thread):
    """Decodes every file that appears in the output folder (names starting with "." excepted) and records failures."""

    def __init__(self, output: Path):
        super().__init__(name="output-sampler", daemon=True)
        self.output = output
        self.stop_requested = threading.Event()
        self.failures: list[str] = []
        self.decoded = 0
        self._checked: set[tuple[str, int, int]] = set()

    def run(self) -> None:
        while not self.stop_requested.is_set():
            self.sample_once()
            time.sleep(0.05)
        self.sample_once()

    def sample_once(self) -> None:
        for root, folders, names in os.walk(self.output):
            folders[:] = [name for name in folders if not name.startswith(".")]
            for name in names:
                if not name.startswith("."):
                    self._check(Path(root) / name)

    def _check(self, path: Path) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            self.failures.append(f"{path}: listed, then gone")
            return
        version = (str(path), stat.st_mtime_ns, stat.st_size)
        if version in self._checked:
            return
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            else:
                read_frame(path).load()
        except Exception as error:  # any decode failure is what this sampler exists to catch
            self.failures.append(f"{path} ({stat.st_size} bytes): {type(error).__name__}: {error}")
        self._checked.add(version)
        self.decoded += 1


# -- the run --------------------------------------------------------------------------------------------------------


def run_soak(plan: SoakPlan, workspace: Path, home: Path, photos: Path | None) -> SoakResult:
    """Drop everything over the drop duration while killing processes, then wait until every drop is filed."""
    inbox, output, state, logs = workspace / "Inbox", workspace / "Output", workspace / "state", workspace / "logs"
    for folder in (inbox, output, logs):
        folder.mkdir(parents=True)
    drops = plan_drops(plan, photos)
    sampler = OutputSampler(output)
    sampler.start()
    processes = {
        "daemon": start_daemon(home, plan.runner, logs / "daemon.log"),
        "bridge": start_bridge_process(inbox, output, state, settle_s=SETTLE_S, daemon_home=home, log_file=logs / "bridge.log"),
    }
    restarts = 0
    started = time.monotonic()
    try:
        # 1. Drop on a schedule; slow files and sessions get threads of their own.
        writers = []
        kill_times = [plan.drop_duration_s * (index + 1) / (len(plan.kills) + 1) for index in range(len(plan.kills))]
        kills = list(plan.kills)
        for index, drop in enumerate(drops):
            due = started + plan.drop_duration_s * index / len(drops)
            while time.monotonic() < due:
                time.sleep(0.01)
            writer = threading.Thread(target=write_drop, args=(inbox, drop))
            writer.start()
            writers.append(writer)

            # 2. Kill -9 and restart at the planned times.
            if kills and time.monotonic() - started >= kill_times[0]:
                kill_times.pop(0)
                target = kills.pop(0)
                kill_hard(processes[target])
                time.sleep(0.5)
                if target == "daemon":
                    processes["daemon"] = start_daemon(home, plan.runner, logs / "daemon.log")
                else:
                    processes["bridge"] = start_bridge_process(inbox, output, state, settle_s=SETTLE_S, daemon_home=home, log_file=logs / "bridge.log")
                restarts += 1
        for writer in writers:
            writer.join()

        # 3. Wait until nothing but junk is left in the inbox.
        junk = set(JUNK_FILES)
        deadline = time.monotonic() + plan.finish_timeout_s
        while time.monotonic() < deadline:
            waiting = [entry.name for entry in inbox.iterdir() if entry.name not in junk | {"done", "failed"}]
            if not waiting:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    finally:
        sampler.stop_requested.set()
        sampler.join(30)
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                kill_hard(process)
    return SoakResult(drops=drops, elapsed_s=elapsed, restarts=restarts, sampler_failures=sampler.failures, sampler_decoded=sampler.decoded)


def file_hashes(folder: Path, skip_suffix: str = "") -> collections.Counter:
    hashes: collections.Counter = collections.Counter()
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and not (skip_suffix and path.name.endswith(skip_suffix)):
                hashes[hashlib.sha256(path.read_bytes()).hexdigest()] += 1
    return hashes


def check_soak(result: SoakResult, workspace: Path) -> dict:
    """Assert the acceptance conditions and return the figures to print."""
    inbox, output = workspace / "Inbox", workspace / "Output"
    done, failed = inbox / "done", inbox / "failed"
    drops = result.drops

    # 1. Every good content has exactly one complete output folder, named after one of its copies.
    copies_by_content: dict[tuple, list[Drop]] = collections.defaultdict(list)
    for drop in drops:
        if drop.kind in ("good", "duplicate", "session"):
            copies_by_content[drop.content_key].append(drop)
    expected_folder_names = {}
    for content, copies in copies_by_content.items():
        for copy in copies:
            expected_folder_names[Path(copy.name).stem if copy.kind != "session" else copy.name] = content
    output_folders = sorted(path.name for path in output.iterdir() if path.is_dir())
    unexpected = [name for name in output_folders if name not in expected_folder_names]
    assert unexpected == [], f"output folders for no source, or made twice: {unexpected}"
    contents_with_output = collections.Counter(expected_folder_names[name] for name in output_folders)
    assert all(count == 1 for count in contents_with_output.values()), "a source's outputs were made in two folders"
    assert len(contents_with_output) == len(copies_by_content), f"{len(copies_by_content) - len(contents_with_output)} good sources have no outputs"
    for name in output_folders:
        files = sorted(path.name for path in (output / name).iterdir() if not path.name.startswith("."))
        assert "report.json" in files, name
        assert "contact-sheet.jpg" in files, name
        assert len(files) >= 3, f"{name} has no variant: {files}"

    # 2. Good sources sit in done/, bad ones in failed/ with a reason, junk where it was.
    done_hashes = file_hashes(done)
    for drop in drops:
        if drop.kind in ("good", "duplicate", "session"):
            for content in drop.files.values():
                assert hashlib.sha256(content).hexdigest() in done_hashes, f"{drop.name} is not in done/"
    expected_codes = {"empty": "file_empty", "truncated": "file_truncated", "text": "not_an_image"}
    for drop in drops:
        if drop.kind in expected_codes:
            assert (failed / drop.name).is_file(), f"{drop.name} is not in failed/"
            reason = (failed / f"{drop.name}.error.txt").read_text(encoding="utf-8")
            assert f"Error code: {expected_codes[drop.kind]}" in reason, f"{drop.name}: {reason}"
        if drop.kind == "junk":
            assert (inbox / drop.name).read_bytes() == drop.files[drop.name], f"junk {drop.name} was changed"

    # 3. Nothing lost, nothing duplicated: done/ + failed/ + the inbox's own files hold exactly what was dropped.
    dropped = collections.Counter(hashlib.sha256(content).hexdigest() for drop in drops for content in drop.files.values())
    found = done_hashes + file_hashes(failed, skip_suffix=".error.txt")
    for entry in inbox.iterdir():
        if entry.is_file():
            found[hashlib.sha256(entry.read_bytes()).hexdigest()] += 1
    lost = sum((dropped - found).values())
    extra = sum((found - dropped).values())
    assert lost == 0, f"{lost} dropped files are gone"
    assert extra == 0, f"{extra} files appeared twice or from nowhere"

    # 4. The sampler never met a partial output.
    assert result.sampler_failures == [], result.sampler_failures[:5]
    assert result.sampler_decoded > 0

    files = sum(len(drop.files) for drop in drops)
    return {"files": files, "files_per_minute": files / (result.elapsed_s / 60), "restarts": result.restarts, "lost": lost, "outputs_checked": result.sampler_decoded}


def soak_and_report(plan: SoakPlan, tmp_path: Path, capsys) -> None:
    photos = Path(os.environ.get("HEADSHOT_TEST_PHOTOS", REPO_ROOT.parent / "shared" / "photos"))
    home = Path(tempfile.mkdtemp(prefix="hs-soak-", dir="/tmp"))  # Unix socket paths must stay short
    try:
        result = run_soak(plan, tmp_path, home, photos if photos.is_dir() else None)
        figures = check_soak(result, tmp_path)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    with capsys.disabled():
        print(
            f"\nhot-folder soak ({plan.runner} runner): {figures['files']} files, "
            f"{figures['files_per_minute']:.0f} files per minute, {figures['restarts']} restarts survived, "
            f"{figures['lost']} files lost, {figures['outputs_checked']} output versions decoded"
        )


def test_soak_small(tmp_path, capsys):
    plan = SoakPlan(files=40, frames_per_session=2, kills=("daemon", "bridge"), drop_duration_s=12.0, finish_timeout_s=150.0, runner="thumbnail")
    soak_and_report(plan, tmp_path, capsys)


def require_pipeline(tmp_path: Path) -> None:
    """Skip unless `pipeline.process.run_job` can import all of its stages (it imports some lazily)."""
    from pipeline.process import run_job
    from pipeline.request import JobRequest

    tmp_path.mkdir(parents=True, exist_ok=True)
    frame = tmp_path / "probe.jpg"
    frame.write_bytes(encode_jpeg(base_portraits(None)[0]))
    try:
        run_job(JobRequest(frames=[str(frame)]), tmp_path / "probe-out")
    except ImportError as error:
        pytest.skip(f"the real pipeline cannot run yet ({error}); HEADSHOT_SOAK_RUNNER=thumbnail runs the soak with the light runner")


@pytest.mark.soak
def test_soak_full(tmp_path, capsys):
    runner = os.environ.get("HEADSHOT_SOAK_RUNNER", "pipeline")
    if runner == "pipeline":
        require_pipeline(tmp_path / "probe")
    plan = SoakPlan(files=200, frames_per_session=3, kills=("daemon", "bridge", "daemon"), drop_duration_s=60.0, finish_timeout_s=1800.0, runner=runner)
    soak_and_report(plan, tmp_path, capsys)


def _run_daemon_child(runner: str) -> None:
    """Entry point of `start_daemon`: the real daemon with the light runner or the real pipeline."""
    from daemon.config import load_config
    from daemon.server import Daemon, configure_logging

    config = load_config()
    configure_logging(config.folders.log_file, to_stderr=True)
    daemon = Daemon(config, runner=thumbnail_runner if runner == "thumbnail" else None)
    daemon.start()
    daemon.wait()


if __name__ == "__main__" and sys.argv[1:2] == ["--daemon-child"]:
    _run_daemon_child(sys.argv[2])
