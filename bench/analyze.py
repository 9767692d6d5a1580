"""Frame analysis at 24 megapixels: `analyze_file` time against a plain OpenCV decode of the same JPEG.

Target: analysis within 2× the decode time, because it works on a DCT-scaled preview and decodes full
resolution only for the blockiness crop.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

BENCH_SIZE = (6000, 4000)
JPEG_QUALITY = 92
REPEATS = 5
TARGET_RATIO = 2.0
SHARED_PHOTO = Path(__file__).resolve().parent.parent.parent / "shared" / "photos" / "obama-1080p.jpg"


def source_frame() -> tuple[np.ndarray, str]:
    """Return a BGR frame to enlarge and its name: a shared portrait, else scikit-image's astronaut."""
    photos = Path(os.environ.get("HEADSHOT_TEST_PHOTOS", SHARED_PHOTO.parent))
    photo = photos / SHARED_PHOTO.name
    if photo.is_file():
        return cv2.imread(str(photo), cv2.IMREAD_COLOR), photo.name
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1]), "astronaut"


def median_seconds(action, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    from pipeline.analysis import analyze_file

    # 1. Make the 24-megapixel JPEG from a portrait (cropped to 3:2, then enlarged).
    frame, name = source_frame()
    height, width = frame.shape[:2]
    target_ratio = BENCH_SIZE[0] / BENCH_SIZE[1]
    if width / height > target_ratio:
        crop_width = int(height * target_ratio)
        frame = frame[:, (width - crop_width) // 2 : (width + crop_width) // 2]
    else:
        crop_height = int(width / target_ratio)
        frame = frame[:crop_height]
    large = cv2.resize(frame, BENCH_SIZE, interpolation=cv2.INTER_CUBIC)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame-24mp.jpg"
        cv2.imwrite(str(path), large, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        del large

        # 2. Warm up: load the models and the decoders once.
        warm = analyze_file(path)
        cv2.imread(str(path))

        # 3. Time both, median of five.
        decode = median_seconds(lambda: cv2.imread(str(path)))
        analysis = median_seconds(lambda: analyze_file(path))

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    ratio = analysis / decode
    verdict = "ok" if ratio <= TARGET_RATIO else "over target"
    print(f"source: {name} enlarged to {BENCH_SIZE[0]}x{BENCH_SIZE[1]}, JPEG quality {JPEG_QUALITY}")
    print(f"faces found: {len(warm.faces)}, score {warm.score:.0f}, codes {','.join(warm.codes)}")
    print(f"cv2.imread:   {decode * 1000:7.1f} ms (median of {REPEATS})")
    print(f"analyze_file: {analysis * 1000:7.1f} ms (median of {REPEATS})")
    print(f"ratio:        {ratio:7.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(f"peak memory:  {peak_mib:7.0f} MiB (maxrss of the process)")


if __name__ == "__main__":
    main()
