"""Shared pieces of the daemon tests: a private HEADSHOT_HOME, a small real job runner, frames and clients.

The runner does real file work (decodes each frame, writes a PNG variant in
slow pieces straight to its final name, then report.json and a contact sheet),
so a daemon killed mid-write would leave truncated files if it published them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import HeadshotError
from pipeline.jobs import EventKind, JobCanceled, JobEvent, JobResult, Stage, VariantResult

REPO_ROOT = Path(__file__).resolve().parent.parent


class SlowRunner:
    """A job runner with the pipeline's contract that takes `seconds_per_frame` per frame and checks should_stop."""

    def __init__(self, seconds_per_frame: float = 0.0, pieces: int = 8):
        self.seconds_per_frame = seconds_per_frame
        self.pieces = pieces
        self.started_jobs: list[list[str]] = []

    def __call__(self, request, out_dir: Path, on_event=None, should_stop=None) -> JobResult:
        emit = on_event or (lambda event: None)
        stop = should_stop or (lambda: False)
        self.started_jobs.append(list(request.frames))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

        # 1. Read and "score" every frame.
        emit(JobEvent(EventKind.stage_started, stage=Stage.reading))
        images = []
        for frame in request.frames:
            pixels = cv2.imread(frame, cv2.IMREAD_COLOR)
            if pixels is None:
                raise HeadshotError("not_an_image", frame, "OpenCV could not decode it")
            images.append(pixels)
            score = float(pixels.mean() / 2.55)
            emit(JobEvent(EventKind.frame_scored, stage=Stage.analysing, frame=frame, score=score,
                          reasons=[{"code": "mean_level", "message": f"mean level {score:.1f}"}]))

        # 2. Write one variant per frame in slow pieces, checking should_stop between them.
        emit(JobEvent(EventKind.stage_started, stage=Stage.writing))
        variants = []
        for index, (frame, pixels) in enumerate(zip(request.frames, images)):
            small = cv2.resize(pixels, (64, 64), interpolation=cv2.INTER_AREA)
            encoded = cv2.imencode(".png", small)[1].tobytes()
            path = out_dir / f"{Path(frame).stem}_{index}.png"
            step = max(1, len(encoded) // self.pieces + 1)
            with open(path, "wb") as handle:
                for start in range(0, len(encoded), step):
                    if stop():
                        raise JobCanceled()
                    handle.write(encoded[start:start + step])
                    handle.flush()
                    time.sleep(self.seconds_per_frame / self.pieces)
                    emit(JobEvent(EventKind.progress, stage=Stage.writing,
                                  fraction=(index + (start + step) / len(encoded)) / len(images)))
            variant = VariantResult(variant_id=f"{Path(frame).stem}_{index}", path=path, frame=frame,
                                    recipe={"crop": "square", "size": 64}, width=64, height=64, score=50.0)
            variants.append(variant)
            emit(JobEvent(EventKind.variant_ready, stage=Stage.writing, variant=variant))

        # 3. The report and the contact sheet.
        report = {"frames": request.frames, "variants": [variant.variant_id for variant in variants]}
        report_path = out_dir / "report.json"
        report_path.write_text(json.dumps(report), encoding="utf-8")
        sheet_path = out_dir / "contact-sheet.jpg"
        cv2.imwrite(str(sheet_path), np.hstack([cv2.resize(image, (32, 32)) for image in images]))
        return JobResult(variants=variants, report_path=report_path, contact_sheet_path=sheet_path, report=report)


@pytest.fixture
def daemon_home(monkeypatch):
    """A short private HEADSHOT_HOME (Unix socket paths must stay under about 100 bytes)."""
    home = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    monkeypatch.setenv("HEADSHOT_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def write_frames(folder: Path, count: int, size: int = 96) -> list[str]:
    """Write `count` small JPEG frames with different content; returns their absolute paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cv2.circle(pixels, (size // 2, size // 2), size // 3, (40 * index % 255, 180, 90), -1)
        path = folder / f"frame{index:02d}.jpg"
        cv2.imwrite(str(path), pixels)
        paths.append(str(path))
    return paths


def start_daemon_process(home: Path, seconds_per_frame: float, extra_env: dict | None = None):
    """Start a real daemon process (with SlowRunner) under `home`; returns the Popen once it listens."""
    import subprocess

    from daemon.client import read_discovery
    from daemon.config import default_folders

    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from test_daemon_fixtures import SlowRunner;"
        "from daemon.config import load_config; from daemon.server import Daemon, configure_logging;"
        "import signal, threading;"
        "config = load_config(); configure_logging(config.folders.log_file, to_stderr=False);"
        f"daemon = Daemon(config, runner=SlowRunner({seconds_per_frame}));"
        "stop = threading.Event(); signal.signal(signal.SIGTERM, lambda *a: stop.set());"
        "daemon.start();"
        "threading.Thread(target=lambda: (stop.wait(), daemon.stop())).start();"
        "daemon.wait()"
    )
    env = {**os.environ, "HEADSHOT_HOME": str(home), **(extra_env or {})}
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folders_env = os.environ.get("HEADSHOT_HOME")
    os.environ["HEADSHOT_HOME"] = str(home)
    try:
        folders = default_folders()
    finally:
        if folders_env is None:
            del os.environ["HEADSHOT_HOME"]
        else:
            os.environ["HEADSHOT_HOME"] = folders_env
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode}: {process.stderr.read().decode()}")
        discovery = read_discovery(folders)
        if discovery is not None and discovery.pid == process.pid:
            return process
        time.sleep(0.05)
    process.kill()
    raise AssertionError("daemon did not write its discovery file within 60 s")


@pytest.fixture
def start_daemon(daemon_home):
    """Start in-process daemons over a real Unix socket: `start_daemon(runner, **settings)` -> (daemon, client)."""
    from daemon.client import DaemonClient
    from daemon.config import load_config
    from daemon.server import Daemon

    started = []

    def start(runner=None, **settings):
        config = load_config()
        for name, value in settings.items():
            setattr(config, name, value)
        daemon = Daemon(config, runner=runner if runner is not None else SlowRunner())
        daemon.start()
        client = DaemonClient(daemon.address, daemon.token)
        started.append((daemon, client))
        return daemon, client

    yield start
    for daemon, client in started:
        client.close()
        daemon.stop(grace=0.5)


def event_kinds(events) -> list[str]:
    return [event.WhichOneof("kind") for event in events]
