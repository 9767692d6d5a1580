"""Eye retouching at full resolution: whites cleared of redness and lifted, irises given local contrast without a change of hue."""

from __future__ import annotations

import numpy as np
import torch

from . import filters
from .masks import LEFT_EYE, LEFT_IRIS, RIGHT_EYE, RIGHT_IRIS, FaceGeometry, fill_polygons

WHITES_CHROMA_REDUCTION = 0.6
WHITES_LIFT = 0.06
IRIS_DETAIL_GAIN = 0.8
IRIS_LIFT = 0.06


def retouch_eyes(crop: torch.Tensor, geometry: FaceGeometry, whites: float, iris: float) -> None:
    """Retouch both eyes of one face in `crop` (3, H, W) in place; `geometry` is in the crop's pixels."""
    for contour_indices, iris_indices in ((RIGHT_EYE, RIGHT_IRIS), (LEFT_EYE, LEFT_IRIS)):
        _retouch_eye(crop, geometry, contour_indices, iris_indices, whites, iris)


def _retouch_eye(crop, geometry, contour_indices, iris_indices, whites, iris) -> None:
    # 1. The eye's box; skip an eye that is closed or outside the crop.
    contour = geometry.polygon(contour_indices)
    center, radius = geometry.iris(iris_indices)
    opening = contour[:, 1].max() - contour[:, 1].min()
    if opening < 3 or radius < 1.5:
        return
    height, width = crop.shape[-2:]
    x0 = int(max(0, np.floor(min(contour[:, 0].min(), center[0] - radius)) - 2))
    y0 = int(max(0, np.floor(min(contour[:, 1].min(), center[1] - radius)) - 2))
    x1 = int(min(width, np.ceil(max(contour[:, 0].max(), center[0] + radius)) + 3))
    y1 = int(min(height, np.ceil(max(contour[:, 1].max(), center[1] + radius)) + 3))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    patch = crop[:, y0:y1, x0:x1]
    origin = np.array([x0, y0], dtype=np.float32)
    device = crop.device

    # 2. Masks: the eye opening, and the iris disk inside it (the lids cover part of it).
    opening_mask = torch.from_numpy(fill_polygons(patch.shape[-2:], [contour - origin]).astype(np.float32))
    opening_mask = opening_mask.unsqueeze(0).to(device)
    rows = torch.arange(y0, y1, device=device, dtype=torch.float32).view(-1, 1)
    columns = torch.arange(x0, x1, device=device, dtype=torch.float32).view(1, -1)
    distance = torch.sqrt((columns - float(center[0])) ** 2 + (rows - float(center[1])) ** 2).unsqueeze(0)
    iris_disk = 1.0 - filters.smoothstep(radius - 1.0, radius + 0.5, distance)
    sclera_hard = opening_mask * (distance > 1.12 * radius + 1.0)

    ycc = filters.rgb_to_ycc(patch)
    change = torch.zeros_like(ycc)

    # 3. Whites: only the bright part of the sclera, so lashes and lid shadow stay as they are.
    if whites > 0 and bool(sclera_hard.any()):
        sclera_luma = ycc[0][sclera_hard[0] > 0]
        bright_level = float(torch.quantile(sclera_luma, 0.75))
        brightness = filters.smoothstep(0.55 * bright_level, 0.85 * bright_level, ycc[0:1])
        sclera = filters.erode(sclera_hard, 1) * brightness * whites
        sclera = filters.gaussian_blur(sclera, 0.7) * sclera_hard
        change[1:] -= WHITES_CHROMA_REDUCTION * sclera * ycc[1:]
        change[2:3] -= 0.3 * sclera * ycc[2:3].clamp_min(0.0)
        change[0:1] += WHITES_LIFT * sclera * (1.0 - ycc[0:1])

    # 4. Irises: local contrast on luma, applied as a ratio on RGB, so hue and saturation stay.
    patch_out = patch + filters.ycc_to_rgb(change)
    if iris > 0:
        iris_mask = iris_disk * filters.gaussian_blur(opening_mask, 0.7) * iris
        luma = filters.luma(patch_out)
        detail = luma - filters.gaussian_blur(luma, max(0.8, 0.25 * radius))
        new_luma = luma + IRIS_DETAIL_GAIN * detail + IRIS_LIFT * luma
        ratio = (new_luma.clamp_min(0.0) / luma.clamp_min(1e-3)).clamp(0.5, 2.0)
        patch_out = patch_out + iris_mask * (patch_out * ratio - patch_out)

    crop[:, y0:y1, x0:x1] = patch_out.clamp(0.0, 1.0)
