"""Time one backdrop variant at 24 megapixels (6000×4000): matte, decontamination, backdrops, composite, crop.

Each step is printed in seconds and as a multiple of decoding the same frame with `cv2.imread`, so figures
from a busy machine can still be compared.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

BENCH_SIZE = (6000, 4000)  # width, height
REPEATS = 3
SHARED_PHOTO = Path(__file__).resolve().parent.parent.parent / "shared" / "photos" / "biden2.jpg"


def source_portrait() -> tuple[np.ndarray, str]:
    """Return an RGB headshot to enlarge and its name: a shared test photo, else scikit-image's astronaut."""
    photos = Path(os.environ.get("HEADSHOT_TEST_PHOTOS", SHARED_PHOTO.parent))
    photo = photos / SHARED_PHOTO.name
    if photo.is_file():
        return cv2.cvtColor(cv2.imread(str(photo), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), photo.name
    from skimage import data

    return data.astronaut(), "astronaut"


def large_frame(rgb: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Enlarge the portrait to the frame's height and centre it; return the frame, the scale and the left offset."""
    width, height = BENCH_SIZE
    scale = height / rgb.shape[0]
    enlarged = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)[:, :width]
    left = (width - enlarged.shape[1]) // 2
    frame = cv2.copyMakeBorder(enlarged, 0, 0, left, width - left - enlarged.shape[1], cv2.BORDER_REFLECT)
    return frame, scale, left


def _median_seconds(step, repeats: int = REPEATS) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    from pipeline.backdrops import composite, parse_backdrop, render_backdrop
    from pipeline.crops import apply_crop, plan_crop
    from pipeline.device import current_device, to_tensor
    from pipeline.faces import shared_finder
    from pipeline.matte import decontaminate, person_matte
    from pipeline.memory import reuse_freed_memory

    # The allocator as a job sets it (run_job does this first), so the stages are timed as they run in a job.
    reuse_freed_memory()

    # 1. A 24-megapixel JPEG with the face found on the small portrait, scaled up.
    rgb, name = source_portrait()
    face = shared_finder().find(rgb)[0]
    frame, scale, left = large_frame(rgb)
    large_face = face.scaled(scale)
    large_face.landmarks[:, 0] += left
    large_face.keypoints[:, 0] += left
    x, y, box_width, box_height = large_face.box
    large_face.box = (x + left, y, box_width, box_height)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "frame.jpg")
        cv2.imwrite(path, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        decode, _ = _median_seconds(lambda: cv2.imread(path))
    image = to_tensor(frame)
    print(f"frame {BENCH_SIZE[0]}×{BENCH_SIZE[1]} from {name}, device {current_device()}, "
          f"torch threads {torch.get_num_threads()}, cv2.imread {decode:.3f} s")

    # 2. The steps of one variant, each timed on its own.
    steps: list[tuple[str, float]] = []
    seconds, matte = _median_seconds(lambda: person_matte(image, [large_face]))
    steps.append(("person_matte", seconds))
    seconds, foreground = _median_seconds(lambda: decontaminate(image, matte))
    steps.append(("decontaminate", seconds))
    for backdrop in ("white", "studio-grey", "blur"):
        spec = parse_backdrop(backdrop)
        seconds, rendered = _median_seconds(lambda: render_backdrop(spec, image, matte, [large_face]))
        steps.append((f"render_backdrop {backdrop}", seconds))
    seconds, composed = _median_seconds(lambda: composite(foreground, matte, rendered))
    steps.append(("composite", seconds))
    seconds, plan = _median_seconds(lambda: plan_crop("square", large_face, *BENCH_SIZE, matte=matte))
    steps.append(("plan_crop square", seconds))
    seconds, _ = _median_seconds(lambda: apply_crop(composed, plan))
    steps.append(("apply_crop square", seconds))

    # 3. The table, with each step as a multiple of the decode.
    for step, seconds in steps:
        print(f"{step:28s} {seconds:6.3f} s  {seconds / decode:6.1f}× imread")
    total = sum(seconds for step, seconds in steps if not step.startswith("render_backdrop ")) + max(
        seconds for step, seconds in steps if step.startswith("render_backdrop ")
    )
    print(f"{'variant (slowest backdrop)':28s} {total:6.3f} s  {total / decode:6.1f}× imread; "
          f"square crop {plan.output_width} px, reaches past edge: {plan.reaches_past_edge}")


if __name__ == "__main__":
    main()
