"""Light natural make-up on a face crop: a rosy lip tint and soft blush on the cheek apples."""

from __future__ import annotations

import numpy as np
import torch

from . import filters
from .masks import INNER_LIPS, LEFT_CHEEK_APPLE, OUTER_LIPS, RIGHT_CHEEK_APPLE, FaceGeometry, SkinMasks, feather, fill_polygons

# YCbCr shifts at full strength: rose is redder (Cr up) and a touch bluer (Cb up) than skin.
LIP_TINT_SHIFT = (-0.02, 0.012, 0.04)
BLUSH_SHIFT = (-0.012, 0.006, 0.028)


def apply_makeup(
    ycc: torch.Tensor, masks: SkinMasks, geometry: FaceGeometry, lip_tint: float, blush: float
) -> torch.Tensor:
    """Return the crop (YCbCr, working resolution) with lip tint and blush added."""
    result = ycc

    # 1. Lip tint between the outer and inner lip contours, feathered inwards.
    if lip_tint > 0:
        shape = ycc.shape[-2:]
        lips = fill_polygons(shape, [geometry.polygon(OUTER_LIPS)]) * (1 - fill_polygons(shape, [geometry.polygon(INNER_LIPS)]))
        lips_mask = feather(torch.from_numpy(lips.astype(np.float32)).unsqueeze(0).to(ycc.device),
                            max(0.8, 0.012 * geometry.eye_distance))
        result = result + lip_tint * lips_mask * _shift(LIP_TINT_SHIFT, ycc)

    # 2. Blush: a wide soft spot on each cheek apple, a little below and outside the mesh point.
    if blush > 0:
        height, width = ycc.shape[-2:]
        rows = torch.arange(height, device=ycc.device, dtype=torch.float32).view(-1, 1)
        columns = torch.arange(width, device=ycc.device, dtype=torch.float32).view(1, -1)
        sigma = 0.22 * geometry.eye_distance
        face_center_x = geometry.points[:, 0].mean()
        blush_mask = torch.zeros((1, height, width), device=ycc.device)
        for index in (RIGHT_CHEEK_APPLE, LEFT_CHEEK_APPLE):
            x, y = geometry.points[index]
            x = x + np.sign(x - face_center_x) * 0.08 * geometry.eye_distance
            y = y + 0.05 * geometry.eye_distance
            blob = torch.exp(-((columns - float(x)) ** 2 + (rows - float(y)) ** 2) / (2 * sigma**2))
            blush_mask = torch.maximum(blush_mask, blob.unsqueeze(0))
        result = result + blush * blush_mask * masks.skin * _shift(BLUSH_SHIFT, ycc)
    return result


def _shift(values: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(3, 1, 1)
