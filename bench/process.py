"""Benchmark of `run_job` on a 24-megapixel JPEG, in units of OpenCV's own decode+encode of the same file.

Targets: one complete variant (analyse, retouch, backdrop, crop, encode) within
4.0 units, and each further variant of the same frame within 1.0 unit. Peak
resident memory stays under 3 GB. Run with `python -m bench.process` or `make bench`.
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


def opencv_round_trip(path: Path, folder: Path) -> float:
    """Return the median seconds OpenCV takes to decode the JPEG and encode it again at quality 95."""
    times = []
    for repeat in range(REPEATS):
        started = time.perf_counter()
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        cv2.imwrite(str(folder / f"opencv-{repeat}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_job(path: Path, folder: Path, backdrops: list[str], crops: list[str]) -> tuple[float, int]:
    """Run one job and return its wall time and the number of variants it wrote."""
    from pipeline.process import run_job
    from pipeline.request import JobRequest

    request = JobRequest(frames=[str(path)], backdrops=backdrops, lights=["natural"], crops=crops)
    started = time.perf_counter()
    result = run_job(request, folder)
    return time.perf_counter() - started, len(result.variants)


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

        # 1. The unit: OpenCV decode+encode of the same 24-megapixel JPEG, in this process.
        frame = make_frame(folder)
        unit = opencv_round_trip(frame, folder)

        # 2. One variant, then four variants of the same frame (two backdrops × two crops).
        warm_up(folder)
        one_time, one_count = time_job(frame, folder / "one", ["studio-grey"], ["square"])
        four_time, four_count = time_job(frame, folder / "four", ["studio-grey", "white"], ["square", "portrait"])

    first_ratio = one_time / unit
    further_ratio = (four_time - one_time) / max(1, four_count - one_count) / unit
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux

    print("process: 6000x4000 JPEG, retouch natural, light natural")
    print(f"  opencv decode+encode (q{JPEG_QUALITY}): {unit:.3f} s = 1 unit")
    print(f"  run_job, {one_count} variant: {one_time:.2f} s")
    print(f"  run_job, {four_count} variants: {four_time:.2f} s")
    print(f"  (a) first variant: {first_ratio:.2f} units (target <= {TARGET_FIRST_VARIANT})")
    print(f"  (b) each further variant: {further_ratio:.2f} units (target <= {TARGET_FURTHER_VARIANT})")
    print(f"  peak resident memory: {peak_gb:.2f} GB (target < {TARGET_PEAK_GB})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
