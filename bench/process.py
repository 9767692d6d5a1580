"""Benchmark of `run_job` on a 24-megapixel JPEG, in units of OpenCV's own decode+encode of the same file.

Targets: one complete variant (analyse, retouch, backdrop, crop, encode) within
4.0 units, and each further variant of the same frame within 1.0 unit. Peak
resident memory stays under 3 GB. Run with `python -m bench.process` or `make bench`.

Each job runs three times and the lowest time counts. Besides wall time the figures are
also given in process CPU time (all threads), in units of OpenCV's CPU time:
on a machine that other work loads, CPU time varies far less than wall time.
"""

from __future__ import annotations

import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = Path(os.environ.get("HEADSHOT_TEST_PHOTOS", REPO_ROOT.parent / "shared" / "photos"))
FRAME_SIZE = (6000, 4000)  # width, height: 24 megapixels
JPEG_QUALITY = 95
REPEATS = 3
JOB_REPEATS = 3

TARGET_FIRST_VARIANT = 4.0
TARGET_FURTHER_VARIANT = 1.0
TARGET_PEAK_GB = 3.0


def make_frame(folder: Path) -> Path:
    """Write a 6000×4000 JPEG of a real portrait: biden2.jpg when the shared photos exist, else the astronaut."""
    source = SHARED_PHOTOS / "biden2.jpg"
    if source.is_file():
        portrait = cv2.imread(str(source), cv2.IMREAD_COLOR)
    else:
        from skimage import data

        portrait = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)

    # Scale the portrait to the frame's height and extend its sides by mirroring, like a wider shot of the same set.
    width, height = FRAME_SIZE
    side = height
    portrait = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_CUBIC)
    extra = width - side
    frame = cv2.copyMakeBorder(portrait, 0, 0, extra // 2, extra - extra // 2, cv2.BORDER_REFLECT)

    # A little grain gives the encoder camera-like detail instead of smooth upscaled areas.
    grain = np.random.default_rng(7).normal(0.0, 2.0, frame.shape).astype(np.float32)
    frame = np.clip(frame.astype(np.float32) + grain, 0, 255).astype(np.uint8)
    path = folder / "bench-frame.jpg"
    cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return path


def opencv_round_trip(path: Path, folder: Path) -> tuple[float, float]:
    """Return the median wall and CPU seconds OpenCV takes to decode the JPEG and encode it again at quality 95."""
    wall_times, cpu_times = [], []
    for repeat in range(REPEATS):
        started, cpu_started = time.perf_counter(), time.process_time()
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        cv2.imwrite(str(folder / f"opencv-{repeat}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        wall_times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    return statistics.median(wall_times), statistics.median(cpu_times)


def time_job(path: Path, folder: Path, backdrops: list[str], crops: list[str]) -> tuple[float, float, int]:
    """Run one job and return its wall time, its CPU time and the number of variants it wrote."""
    from pipeline.process import run_job
    from pipeline.request import JobRequest

    request = JobRequest(frames=[str(path)], backdrops=backdrops, lights=["natural"], crops=crops)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_job(request, folder)
    return time.perf_counter() - started, time.process_time() - cpu_started, len(result.variants)


def warm_up(folder: Path) -> None:
    """Import torch and mediapipe and build the models once, outside the timed runs."""
    from skimage import data

    small = folder / "warm-up.jpg"
    cv2.imwrite(str(small), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    time_job(small, folder / "warm-up", ["studio-grey", "white"], ["square", "portrait"])


def main() -> int:
    """Print the decode+encode unit, the ratios (a) and (b), and the peak resident memory."""
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-process-") as temporary:
        folder = Path(temporary)

        # 1. The unit: OpenCV decode+encode of the same 24-megapixel JPEG, in this process, with the allocator set
        #    as run_job sets it (freed buffers reused), which makes OpenCV's own round trip faster too.
        from pipeline.memory import reuse_freed_memory

        reuse_freed_memory()
        frame = make_frame(folder)
        unit, cpu_unit = opencv_round_trip(frame, folder)

        # 2. One variant, then four variants of the same frame (two backdrops × two crops). Each job runs
        #    JOB_REPEATS times, alternating, and its lowest wall and CPU times count.
        warm_up(folder)
        one_runs, four_runs = [], []
        for attempt in range(JOB_REPEATS):
            one_runs.append(time_job(frame, folder / f"one-{attempt}", ["studio-grey"], ["square"]))
            four_runs.append(time_job(frame, folder / f"four-{attempt}", ["studio-grey", "white"], ["square", "portrait"]))
        one_time, one_cpu, one_count = (min(values) for values in zip(*one_runs))
        four_time, four_cpu, four_count = (min(values) for values in zip(*four_runs))

    further = max(1, four_count - one_count)
    first_ratio = one_time / unit
    further_ratio = (four_time - one_time) / further / unit
    first_cpu_ratio = one_cpu / cpu_unit
    further_cpu_ratio = (four_cpu - one_cpu) / further / cpu_unit
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux

    print("process: 6000x4000 JPEG, retouch natural, light natural")
    print(f"  opencv decode+encode (q{JPEG_QUALITY}): {unit:.3f} s = 1 unit ({cpu_unit:.3f} s CPU = 1 CPU unit)")
    print(f"  run_job, {one_count} variant: {one_time:.2f} s ({one_cpu:.2f} s CPU)")
    print(f"  run_job, {four_count} variants: {four_time:.2f} s ({four_cpu:.2f} s CPU)")
    print(f"  (a) first variant: {first_ratio:.2f} units, {first_cpu_ratio:.2f} CPU units (target <= {TARGET_FIRST_VARIANT})")
    print(f"  (b) each further variant: {further_ratio:.2f} units, {further_cpu_ratio:.2f} CPU units (target <= {TARGET_FURTHER_VARIANT})")
    print(f"  peak resident memory: {peak_gb:.2f} GB (target < {TARGET_PEAK_GB})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
