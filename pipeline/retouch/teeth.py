"""Teeth whitening at full resolution, only inside the inner-lip polygon and only on bright, yellowish, un-red pixels."""

from __future__ import annotations

import numpy as np
import torch

from . import filters
from .masks import INNER_LIPS, FaceGeometry, fill_polygons

YELLOW_REDUCTION = 0.7
RED_REDUCTION = 0.3
TEETH_LIFT = 0.08
# Cr above which a pixel is lip, gum or tongue rather than tooth (teeth sit near 0.02–0.06).
TISSUE_REDNESS_LOW, TISSUE_REDNESS_HIGH = 0.08, 0.12


def whiten_teeth(crop: torch.Tensor, geometry: FaceGeometry, strength: float) -> None:
    """Whiten the teeth of one face in `crop` (3, H, W) in place; nothing outside the inner lips changes."""
    # 1. The mouth opening; a closed mouth has nothing to whiten.
    polygon = geometry.polygon(INNER_LIPS)
    opening = polygon[:, 1].max() - polygon[:, 1].min()
    if strength <= 0 or opening < 0.03 * geometry.eye_distance or opening < 3:
        return
    height, width = crop.shape[-2:]
    x0, y0 = int(max(0, np.floor(polygon[:, 0].min()))), int(max(0, np.floor(polygon[:, 1].min())))
    x1 = int(min(width, np.ceil(polygon[:, 0].max()) + 1))
    y1 = int(min(height, np.ceil(polygon[:, 1].max()) + 1))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    patch = crop[:, y0:y1, x0:x1]
    inside = torch.from_numpy(fill_polygons(patch.shape[-2:], [polygon - np.array([x0, y0])]).astype(np.float32))
    inside = inside.unsqueeze(0).to(crop.device)
    if int(inside.sum()) < 9:
        return

    # 2. Teeth are the bright, un-red pixels of the opening.
    ycc = filters.rgb_to_ycc(patch)
    bright_level = float(torch.quantile(ycc[0][inside[0] > 0], 0.9))
    brightness = filters.smoothstep(0.45 * bright_level, 0.75 * bright_level, ycc[0:1])
    not_tissue = 1.0 - filters.smoothstep(TISSUE_REDNESS_LOW, TISSUE_REDNESS_HIGH, ycc[2:3])
    edge_sigma = max(0.7, 0.008 * geometry.eye_distance)
    weight = filters.gaussian_blur(brightness * not_tissue * inside, edge_sigma) * inside * strength

    # 3. Less yellow (Cb towards 0 from below), a little less red, a little lighter.
    change = torch.zeros_like(ycc)
    change[1:2] = YELLOW_REDUCTION * weight * (-ycc[1:2]).clamp_min(0.0)
    change[2:3] = -RED_REDUCTION * weight * ycc[2:3].clamp_min(0.0)
    change[0:1] = TEETH_LIFT * weight * (1.0 - ycc[0:1])
    crop[:, y0:y1, x0:x1] = (patch + filters.ycc_to_rgb(change)).clamp(0.0, 1.0)
