"""Benchmark of the daemon's overhead: a one-variant job on a 24-megapixel JPEG through the daemon, over in-process.

Through the daemon means submit (or upload), watch until completed, and fetch
the variant's bytes, against a separate daemon process on a Unix socket.
Targets: 1.15 with the frame passed by path, 1.3 with it streamed as bytes.
Run with `python -m bench.daemon_overhead` or `make bench`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3
ONE_VARIANT = {"backdrops": ["white"], "lights": ["natural"], "crops": ["square"], "retouch": "natural"}
TARGET_BY_PATH = 1.15
TARGET_STREAMED = 1.3


def in_process_seconds(frame: Path, work: Path, attempt: int) -> float:
    """Return the seconds of one run of run_job in this process."""
    from pipeline.process import run_job
    from pipeline.request import JobRequest

    started = time.perf_counter()
    run_job(JobRequest(frames=[str(frame)], **ONE_VARIANT), work / f"in-process-{attempt}")
    return time.perf_counter() - started


def daemon_seconds(client, frame: Path, streamed: bool) -> float:
    """Return the seconds of one submit-or-upload, watch, fetch round trip."""
    from pipeline.request import JobRequest

    request = JobRequest(frames=[str(frame)], origin="bench", **ONE_VARIANT)
    started = time.perf_counter()
    handle = client.upload(request) if streamed else client.submit(request)
    final = client.wait(handle.job_id, timeout=1800)
    if final.WhichOneof("kind") != "completed":
        raise RuntimeError(f"daemon job {handle.job_id} ended with {final}")
    for variant in client.job(handle.job_id).variants:
        client.fetch_variant(handle.job_id, variant.variant_id)
    return time.perf_counter() - started


def start_daemon(home: Path) -> subprocess.Popen:
    from daemon.client import read_discovery
    from daemon.config import default_folders

    # The daemon as `headshot daemon --foreground` runs it, less the hot folders and the tray, which would
    # watch the user's own Pictures folder.
    code = (
        "import signal, threading;"
        "from daemon.config import load_config; from daemon.server import Daemon, configure_logging;"
        "config = load_config(); configure_logging(config.folders.log_file, to_stderr=False);"
        "stop = threading.Event(); signal.signal(signal.SIGTERM, lambda *a: stop.set());"
        "daemon = Daemon(config); daemon.start();"
        "threading.Thread(target=lambda: (stop.wait(), daemon.stop())).start(); daemon.wait()"
    )
    environment = {**os.environ, "HEADSHOT_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["HEADSHOT_HOME"] = str(home)
    folders = default_folders()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        discovery = read_discovery(folders)
        if discovery is not None and discovery.pid == process.pid:
            return process
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}; see {folders.log_file}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the daemon did not start within 120 s")


def main() -> None:
    from bench.process import make_frame
    from daemon.client import DaemonClient

    work = Path(tempfile.mkdtemp(prefix="hs-bench-", dir="/tmp"))
    previous_home = os.environ.get("HEADSHOT_HOME")
    process = None
    times: dict[str, list[float]] = {"in-process": [], "by path": [], "streamed": []}
    try:
        # 1. The frame, and one warm-up run in this process.
        frame = make_frame(work)
        in_process_seconds(frame, work, 0)

        # 2. A daemon process, warmed up by one job of its own; then the three ways in turn, so that a
        #    change in the machine's load (other processes) affects all three alike.
        process = start_daemon(work / "home")
        with DaemonClient.connect() as client:
            daemon_seconds(client, frame, streamed=False)
            for attempt in range(1, REPEATS + 1):
                times["in-process"].append(in_process_seconds(frame, work, attempt))
                times["by path"].append(daemon_seconds(client, frame, streamed=False))
                times["streamed"].append(daemon_seconds(client, frame, streamed=True))
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        if previous_home is None:
            os.environ.pop("HEADSHOT_HOME", None)
        else:
            os.environ["HEADSHOT_HOME"] = previous_home
        shutil.rmtree(work, ignore_errors=True)

    # 3. The figures: the fastest run of each, since other processes only ever add time.
    local, by_path, streamed = (min(times[name]) for name in ("in-process", "by path", "streamed"))
    print(f"frame: 6000x4000 JPEG, one variant; fastest of {REPEATS} interleaved runs each")
    print(f"in-process run_job:        {local:7.2f} s")
    print(f"daemon, frame by path:     {by_path:7.2f} s   ratio {by_path / local:.3f} (target {TARGET_BY_PATH})")
    print(f"daemon, frame streamed:    {streamed:7.2f} s   ratio {streamed / local:.3f} (target {TARGET_STREAMED})")


if __name__ == "__main__":
    main()
