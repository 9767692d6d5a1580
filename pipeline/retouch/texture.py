"""Fine skin texture at full resolution: after smoothing, the finest detail (pores, grain) is put back at a set share of its energy.

Smoothing at working size barely touches the finest detail of a large frame and takes
far more of it from a small face. As in frequency separation, the detail layer (below
TEXTURE_SIGMA pixels) of the original is laid over the smoothed image at a fixed
opacity instead, so the skin keeps the same share of texture at any scale.
"""

from __future__ import annotations

import math

import torch

from . import filters

# The detail layer is what a Gaussian of this sigma (full-resolution pixels) removes. Detail of
# 1–3 px (pores, grain) lies wholly inside it, so that band ends up at the set share exactly;
# on a small face the layer also contains fine blotches, which then stay a little too.
TEXTURE_SIGMA = 5.0


def keep_fine_texture(
    crop: torch.Tensor, original_luma: torch.Tensor, skin: torch.Tensor, energy_share: float
) -> None:
    """Replace the detail layer of `crop` (3, H, W, RGB, full resolution) on the skin by the original's, scaled.

    The original's layer, from `original_luma` (1, H, W), is scaled so that its energy
    is `energy_share` of what it was. `skin` (1, H, W, soft) is where this is done. Works
    in place and changes only luma, so colour stays as it is.
    """
    # 1. The box around the skin.
    inside = skin[0] > 0.01
    if not bool(inside.any()):
        return
    rows = torch.nonzero(inside.any(dim=1)).flatten()
    columns = torch.nonzero(inside.any(dim=0)).flatten()
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(columns[0]), int(columns[-1]) + 1
    patch = crop[:, top:bottom, left:right]
    skin = skin[:, top:bottom, left:right]

    # 2. Detail layers before and after. The original's replaces the new one at an opacity
    #    that falls from 1 off the skin to sqrt(energy_share) on it.
    before = original_luma[:, top:bottom, left:right]
    after = filters.luma(patch)
    detail_before = before - filters.gaussian_blur(before, TEXTURE_SIGMA)
    detail_after = after - filters.gaussian_blur(after, TEXTURE_SIGMA)
    opacity = 1.0 - skin * (1.0 - math.sqrt(energy_share))
    change = (opacity * detail_before - detail_after) * (skin > 0).float()

    # 3. Add the change to luma, equally to R, G and B.
    patch.add_(change).clamp_(0.0, 1.0)
