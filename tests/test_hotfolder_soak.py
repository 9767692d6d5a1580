"""Soak test of the hot folder: real files dropped the way exports and copies arrive, processed by the real daemon and pipeline while the daemon is killed with SIGKILL.

The default run drops 40 small frames into the hot folder that runs inside
`headshot daemon` and kills the daemon twice. `make soak` drops 200 frames into
a stand-alone `headshot hotfolder` that sends its jobs to the daemon, and kills
the daemon twice and the bridge once. Both keep each job cheap through the
config's `[default_styles]`: one backdrop, one crop.
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

from protos.headshot.v1 import headshot_pb2 as pb
from test_hotfolder import REPO_ROOT, read_frame, tiff16_bytes

JUNK_FILES = {".DS_Store": b"\x00\x00\x00\x01Bud1\x00", "Thumbs.db": b"\xd0\xcf\x11\xe0thumbs", "._x.jpg": b"\x00\x05\x16\x07resource", "~$x.jpg": b"office lock"}
SLOW_CHUNKS = 5
SLOW_PAUSE_S = 0.7  # below the bridge's 2-second settle time, so only completeness checks keep a slow file waiting
# One backdrop and one crop per job, set the way a studio sets them: in the daemon config.
SOAK_STYLES = {"backdrops": ["white"], "crops": ["square"]}
VARIANT_SUFFIX = "_white_natural_square"  # backdrop, light (the default "natural") and crop end a variant's file name
GOOD_KINDS = ("good", "duplicate", "session")
FAILED_CODES = {"empty": "file_empty", "truncated": "file_truncated", "text": "not_an_image", "faceless": "frame_without_face"}
FACELESS_SESSION = "Session 3"  # its last frame shows no face; the session is still made from the others
PROCESS_START_TIMEOUT_S = 90.0


@dataclass
class Drop:
    """One thing dropped into the inbox: a file, or a session folder of several frames."""

    name: str
    kind: str  # "good", "duplicate", "session", "empty", "truncated", "text", "faceless", "junk"
    files: dict[str, bytes]  # relative path -> content; a single file's key is `name`
    slow: str = ""  # "open": written in chunks through one handle; "reopen": appended, closed between chunks
    faceless_frames: tuple[str, ...] = ()  # relative paths of a session's frames that show no face

    @property
    def content_key(self) -> tuple[str, ...]:
        return tuple(sorted(hashlib.sha256(content).hexdigest() for content in self.files.values()))


@dataclass
class SoakPlan:
    files: int
    frames_per_session: int
    kills: tuple[str, ...]  # "daemon" or "bridge", in order; "bridge" needs bridge="own_process"
    bridge: str  # "in_daemon": the hot folder of `headshot daemon`; "own_process": `headshot hotfolder --in --out`
    drop_duration_s: float
    finish_timeout_s: float


@dataclass
class SoakResult:
    drops: list[Drop]
    elapsed_s: float
    restarts: int
    kills_during_job: int  # kills that hit the daemon or the bridge while a daemon job was running
    daemon_jobs: list  # headshot.v1.JobStatus of every hot-folder job, read before the daemon stopped
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
    return [_fit(image, 400 + (index * 50) % 201) for index, image in enumerate(images)]


def faceless_picture() -> np.ndarray:
    """Return a 500-pixel picture without a person in it (scikit-image's coffee cup)."""
    from skimage import data

    return _fit(Image.fromarray(data.coffee()), 500)


def _fit(image: Image.Image, long_side: int) -> np.ndarray:
    image.thumbnail((long_side, long_side))
    return np.asarray(image)


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
    coffee = faceless_picture()
    numbers = iter(range(1, 4000))

    def good_file(stem: str, pixels: np.ndarray | None = None) -> tuple[str, bytes]:
        if pixels is None:
            pixels = portraits[generator.randrange(len(portraits))]
        pixels = stamped(pixels, next(numbers))
        if generator.random() < 0.4:
            return f"{stem}.tif", tiff16_bytes(pixels)
        return f"{stem}.jpg", encode_jpeg(pixels)

    # 1. Three sessions; the last one has a frame without a face.
    drops: list[Drop] = []
    for session_index in range(3):
        name = f"Session {session_index + 1}"
        frames = dict(good_file(f"{name}/frame_{frame_index}") for frame_index in range(plan.frames_per_session))
        faceless = ()
        if name == FACELESS_SESSION:
            relative, content = good_file(f"{name}/frame_{plan.frames_per_session}", coffee)
            frames[relative] = content
            faceless = (relative,)
        drops.append(Drop(name, "session", frames, faceless_frames=faceless))

    # 2. Junk, bad files and frames without a face take a fixed share; duplicates copy good files.
    drops += [Drop(name, "junk", {name: content}) for name, content in JUNK_FILES.items()]
    bad_each = max(2, plan.files * 3 // 100)
    for index in range(bad_each):
        drops.append(Drop(f"empty_{index}.jpg", "empty", {f"empty_{index}.jpg": b""}))
        cut = encode_jpeg(stamped(portraits[0], next(numbers)))
        drops.append(Drop(f"cut_{index}.jpg", "truncated", {f"cut_{index}.jpg": cut[: len(cut) * 2 // 5]}))
        drops.append(Drop(f"note_{index}.jpg", "text", {f"note_{index}.jpg": f"Retouch notes {index}: softer skin.\n".encode()}))
    for index in range(max(1, plan.files // 100)):
        name, content = good_file(f"backdrop_test_{index}", coffee)
        drops.append(Drop(name, "faceless", {name: content}))
    duplicate_count = max(3, plan.files // 20)
    slow_count = max(3, plan.files // 20)
    planned = sum(len(drop.files) for drop in drops)
    good_count = plan.files - planned - duplicate_count

    # 3. Good files, some written slowly.
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


def daemon_folders(home: Path):
    from daemon.config import Folders

    return Folders(config=home / "config", data=home / "data", runtime=home / "runtime", logs=home / "logs")


def write_config(home: Path, plan: SoakPlan, inbox: Path, output: Path) -> None:
    """Write the daemon config: the soak's default styles and, for the daemon's own hot folder, the inbox."""
    lines = ["[default_styles]"]
    lines += [f"{name} = {json.dumps(values)}" for name, values in SOAK_STYLES.items()]
    if plan.bridge == "in_daemon":
        lines += ["", "[[hot_folders]]", f"inbox = {json.dumps(str(inbox))}", f"output = {json.dumps(str(output))}"]
    config_file = daemon_folders(home).config_file
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def headshot_command(home: Path, arguments: list[str], log_file: Path) -> subprocess.Popen:
    """Start `headshot ARGUMENTS` with HEADSHOT_HOME set, as the user's shell would."""
    environment = {**os.environ, "HEADSHOT_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    with open(log_file, "ab") as stream:
        return subprocess.Popen([sys.executable, "-m", "daemon.cli", *arguments], cwd=REPO_ROOT, env=environment, stdout=stream, stderr=stream)


def start_daemon(home: Path, log_file: Path) -> subprocess.Popen:
    """Start `headshot daemon --foreground` (default runner, hot folders on); return once its discovery file names it."""
    from daemon.client import read_discovery

    process = headshot_command(home, ["daemon", "--foreground", "--no-tray"], log_file)
    deadline = time.monotonic() + PROCESS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited with {process.returncode}; see {log_file}")
        discovery = read_discovery(daemon_folders(home))
        if discovery is not None and discovery.pid == process.pid:
            return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the daemon did not write its discovery file within {PROCESS_START_TIMEOUT_S:.0f} s; see {log_file}")


def start_bridge(home: Path, inbox: Path, output: Path, log_file: Path) -> subprocess.Popen:
    """Start `headshot hotfolder --in INBOX --out OUTPUT`, which sends its jobs to the daemon under `home`."""
    return headshot_command(home, ["hotfolder", "--in", str(inbox), "--out", str(output)], log_file)


def kill_hard(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def hot_folder_jobs(home: Path, inbox: Path, states=()) -> list:
    """Return the daemon's jobs from this inbox's hot folder."""
    from daemon.client import DaemonClient

    with DaemonClient.connect(daemon_folders(home)) as client:
        return client.jobs(states=states, origin=f"hotfolder:{inbox}", limit=100_000)


def wait_for_running_job(home: Path, inbox: Path, timeout_s: float = 10.0) -> bool:
    """Wait until the daemon runs a job from the inbox; False when none started within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if hot_folder_jobs(home, inbox, [pb.JOB_STATE_IN_PROGRESS]):
            return True
        time.sleep(0.1)
    return False


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


def filed_count(inbox: Path) -> int:
    return sum(1 for folder in ("done", "failed") if (inbox / folder).is_dir() for entry in (inbox / folder).iterdir() if not entry.name.endswith(".error.txt"))


def run_soak(plan: SoakPlan, workspace: Path, home: Path, photos: Path | None) -> SoakResult:
    """Drop everything over the drop duration, kill -9 and restart as filing progresses, then wait until every drop is filed.

    1. Start the daemon (and the stand-alone bridge) and the output sampler.
    2. Drop on a schedule; slow files and sessions get threads of their own.
    3. Kill the next process once its share of the entries is filed, so each
       kill lands while the queue is busy, and start it again.
    4. Finish when everything is dropped, every kill is done, and nothing but junk is left in the inbox.
    """
    inbox, output, logs = workspace / "Inbox", workspace / "Output", workspace / "logs"
    for folder in (inbox, output, logs):
        folder.mkdir(parents=True)
    drops = plan_drops(plan, photos)
    entries = sum(1 for drop in drops if drop.kind != "junk")
    write_config(home, plan, inbox, output)

    # 1. Processes and sampler.
    sampler = OutputSampler(output)
    sampler.start()
    processes = {"daemon": start_daemon(home, logs / "daemon.out")}
    if plan.bridge == "own_process":
        processes["bridge"] = start_bridge(home, inbox, output, logs / "bridge.out")
    restarts = kills_during_job = 0
    daemon_jobs: list = []
    elapsed = 0.0
    started = time.monotonic()
    try:
        writers: list[threading.Thread] = []
        kills = list(plan.kills)
        junk = set(JUNK_FILES)
        deadline = started + plan.finish_timeout_s
        while time.monotonic() < deadline:
            # 2. Drops that are due.
            while len(writers) < len(drops) and time.monotonic() >= started + plan.drop_duration_s * len(writers) / len(drops):
                writer = threading.Thread(target=write_drop, args=(inbox, drops[len(writers)]))
                writer.start()
                writers.append(writer)

            # 3. The next kill, once its share of the entries is filed.
            kills_done = len(plan.kills) - len(kills)
            if kills and filed_count(inbox) >= entries * (kills_done + 1) / (len(plan.kills) + 1):
                target = kills.pop(0)
                running = wait_for_running_job(home, inbox)
                kill_hard(processes[target])
                kills_during_job += running
                time.sleep(0.5)
                if target == "daemon":
                    processes["daemon"] = start_daemon(home, logs / "daemon.out")
                else:
                    processes["bridge"] = start_bridge(home, inbox, output, logs / "bridge.out")
                restarts += 1

            # 4. The end.
            waiting = [entry.name for entry in inbox.iterdir() if entry.name not in junk | {"done", "failed"}]
            if len(writers) == len(drops) and not kills and not waiting:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        for writer in writers:
            writer.join()
        daemon_jobs = hot_folder_jobs(home, inbox)
    finally:
        sampler.stop_requested.set()
        sampler.join(30)
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                kill_hard(process)
        for log_file in (home / "logs").glob("*.log*"):
            shutil.copy(log_file, logs / log_file.name)
    return SoakResult(drops, elapsed, restarts, kills_during_job, daemon_jobs, sampler.failures, sampler.decoded)


def file_hashes(folder: Path, skip_suffix: str = "") -> collections.Counter:
    hashes: collections.Counter = collections.Counter()
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and not (skip_suffix and path.name.endswith(skip_suffix)):
                hashes[hashlib.sha256(path.read_bytes()).hexdigest()] += 1
    return hashes


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def check_output_folder(folder: Path, copies: list[Drop], inbox: Path) -> None:
    """Assert that one source's output folder holds its one variant in the configured styles, the contact sheet and report.json.

    The report must name the default styles (so they reached the job), the hot
    folder as origin, and a selected frame whose SHA-256 is one of the source's.
    """
    drop = copies[0]
    files = sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))
    variants = [name for name in files if name not in ("report.json", "contact-sheet.jpg")]
    assert "report.json" in files, folder.name
    assert "contact-sheet.jpg" in files, folder.name
    assert len(variants) == 1, f"{folder.name} should hold one variant, not {variants}"

    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["request"]["backdrops"] == SOAK_STYLES["backdrops"], folder.name
    assert report["request"]["crops"] == SOAK_STYLES["crops"], folder.name
    assert report["request"]["origin"] == f"hotfolder:{inbox}", folder.name
    selected = [frame for frame in report["frames"] if frame["selected"]]
    assert len(selected) == 1, folder.name
    assert selected[0]["sha256"] in drop.content_key, f"{folder.name} was made from a frame that is not its source"
    assert [variant["file"] for variant in report["variants"]] == variants, folder.name
    assert report["variants"][0]["recipe"]["backdrop"]["name"] == SOAK_STYLES["backdrops"][0], folder.name
    assert report["variants"][0]["recipe"]["crop"]["name"] == SOAK_STYLES["crops"][0], folder.name
    assert variants[0].endswith(f"{VARIANT_SUFFIX}{Path(selected[0]['file']).suffix}"), folder.name

    faceless_names = {Path(relative).name for relative in drop.faceless_frames}
    for frame in report["frames"]:
        if Path(frame["file"]).name in faceless_names:
            assert not frame["selected"], folder.name
            assert "no_face" in [reason["code"] for reason in frame["reasons"]], folder.name


def check_soak(result: SoakResult, workspace: Path, plan_kills: tuple[str, ...]) -> dict:
    """Assert the acceptance conditions and return the figures to print."""
    inbox, output = workspace / "Inbox", workspace / "Output"
    done, failed = inbox / "done", inbox / "failed"
    drops = result.drops

    # 1. Every good content has exactly one complete output folder, named after one of its copies.
    copies_by_content: dict[tuple, list[Drop]] = collections.defaultdict(list)
    for drop in drops:
        if drop.kind in GOOD_KINDS:
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
        check_output_folder(output / name, copies_by_content[expected_folder_names[name]], inbox)

    # 2. No output was produced twice: the daemon completed one job per output folder, and failed none for a good source.
    completed = collections.Counter(job.request.output_dir for job in result.daemon_jobs if job.state == pb.JOB_STATE_COMPLETED)
    assert sorted(completed) == sorted(str(output / name) for name in output_folders), "the daemon's completed jobs and the output folders differ"
    assert all(count == 1 for count in completed.values()), f"output folders written by more than one job: {[folder for folder, count in completed.items() if count > 1]}"

    # 3. Good sources sit in done/, bad ones in failed/ with a reason that names them, junk where it was.
    done_hashes = file_hashes(done)
    for drop in drops:
        if drop.kind in GOOD_KINDS:
            for content in drop.files.values():
                assert sha256_hex(content) in done_hashes, f"{drop.name} is not in done/"
    for drop in drops:
        if drop.kind in FAILED_CODES:
            assert (failed / drop.name).is_file(), f"{drop.name} is not in failed/"
            reason = (failed / f"{drop.name}.error.txt").read_text(encoding="utf-8")
            assert f"Error code: {FAILED_CODES[drop.kind]}" in reason, f"{drop.name}: {reason}"
            assert reason.startswith(drop.name), f"the reason should start with the file's name: {reason}"
        if drop.kind == "junk":
            assert (inbox / drop.name).read_bytes() == drop.files[drop.name], f"junk {drop.name} was changed"

    # 4. Nothing lost, nothing duplicated: done/ + failed/ + the inbox's own files hold exactly what was dropped.
    dropped = collections.Counter(sha256_hex(content) for drop in drops for content in drop.files.values())
    found = done_hashes + file_hashes(failed, skip_suffix=".error.txt")
    for entry in inbox.iterdir():
        if entry.is_file():
            found[sha256_hex(entry.read_bytes())] += 1
    lost = sum((dropped - found).values())
    extra = sum((found - dropped).values())
    assert lost == 0, f"{lost} dropped files are gone"
    assert extra == 0, f"{extra} files appeared twice or from nowhere"

    # 5. The kills met the daemon at work, and the sampler never met a partial output.
    assert result.restarts == len(plan_kills), f"{result.restarts} restarts of {len(plan_kills)} planned"
    assert result.kills_during_job >= 1, "no kill hit a running job"
    assert result.sampler_failures == [], result.sampler_failures[:5]
    assert result.sampler_decoded >= 3 * len(output_folders)

    files = sum(len(drop.files) for drop in drops)
    return {
        "files": files,
        "files_per_minute": files / (result.elapsed_s / 60),
        "restarts": result.restarts,
        "kills_during_job": result.kills_during_job,
        "lost": lost,
        "outputs_checked": result.sampler_decoded,
        "elapsed_s": result.elapsed_s,
    }


def soak_and_report(plan: SoakPlan, tmp_path: Path, capsys) -> None:
    photos = Path(os.environ.get("HEADSHOT_TEST_PHOTOS", REPO_ROOT.parent / "shared" / "photos"))
    home = Path(tempfile.mkdtemp(prefix="hs-soak-", dir="/tmp"))  # Unix socket paths must stay short
    try:
        result = run_soak(plan, tmp_path, home, photos if photos.is_dir() else None)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    figures = check_soak(result, tmp_path, plan.kills)
    with capsys.disabled():
        print(
            f"\nhot-folder soak ({plan.bridge.replace('_', ' ')} bridge, real pipeline): {figures['files']} files in "
            f"{figures['elapsed_s']:.0f} s, {figures['files_per_minute']:.0f} files per minute, "
            f"{figures['restarts']} restarts survived ({figures['kills_during_job']} killed a running job), "
            f"{figures['lost']} files lost, {figures['outputs_checked']} output versions decoded"
        )


def test_soak_small(tmp_path, capsys):
    plan = SoakPlan(files=40, frames_per_session=2, kills=("daemon", "daemon"), bridge="in_daemon", drop_duration_s=12.0, finish_timeout_s=240.0)
    soak_and_report(plan, tmp_path, capsys)


@pytest.mark.soak
def test_soak_full(tmp_path, capsys):
    plan = SoakPlan(files=200, frames_per_session=3, kills=("daemon", "bridge", "daemon"), bridge="own_process", drop_duration_s=60.0, finish_timeout_s=1800.0)
    soak_and_report(plan, tmp_path, capsys)
