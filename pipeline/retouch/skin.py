"""Skin retouching on a face crop: blemish healing, frequency separation that keeps pores, tone and redness evening, under-eye lift.

All functions take and return the crop in YCbCr (see `filters.rgb_to_ycc`) at working
resolution, where the eyes sit 200–400 pixels apart, and change only the skin masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import filters
from .masks import SkinMasks

# Share of each band removed at full smoothing strength. Texture (pores) loses little,
# the mid band (blotches, small bumps) a lot but only where its contrast is low.
TEXTURE_SOFTENING = 0.4
MID_SOFTENING = 1.0
TONE_EVENING = 0.6
# Mid-band luma contrast, in multiples of the skin's RMS mid-band contrast, above which a
# detail counts as form (a crease, the nose's edge) and is kept.
MID_EDGE_FACTOR = 2.0
# Low-band luma difference above which shading counts as the face's modelling and is kept.
SHADING_CONTRAST = 0.08

# Contrast units of a spot against the skin around it: luma darker, Cr redder. Each unit is the
# skin's own 95th-percentile contrast (its texture, freckles, stubble), kept within these bounds.
SPOT_DARKNESS_UNIT = (0.03, 0.07)
SPOT_REDNESS_UNIT = (0.012, 0.03)
# A spot's darkness and redness, in units, must add up to SPOT_SEED somewhere and to SPOT_EDGE over all of it.
SPOT_SEED, SPOT_EDGE = 2.2, 1.0
# Spots are round: a component longer than this many times its width, or filling less of its
# bounding box than this, is a crease or a patch of stubble.
SPOT_MAX_ASPECT, SPOT_MIN_FILL = 2.0, 0.4

# The vectorscope's skin-tone line (the NTSC I axis, 123° from +Cb towards +Cr), near which
# retouchers expect skin of any complexion to sit.
SKIN_TONE_ANGLE_DEGREES = 123.0
MAX_CAST_SHIFT = 0.015


@dataclass(frozen=True)
class SkinScales:
    """Filter sizes in working pixels, derived from the eye distance."""

    texture_sigma: float  # below this: pores and fine lines
    mid_sigma: float  # between texture and this: blotches, spots, small bumps
    broad_sigma: float  # tone variations across the cheek
    blemish_radius: int  # largest spot radius healed

    @classmethod
    def for_face(cls, eye_distance: float) -> "SkinScales":
        texture_sigma = max(1.2, 0.0075 * eye_distance)
        mid_sigma = max(5.0 * texture_sigma, 0.05 * eye_distance)
        return cls(
            texture_sigma=texture_sigma,
            mid_sigma=mid_sigma,
            broad_sigma=max(3.0 * mid_sigma, 0.12 * eye_distance),
            blemish_radius=max(9, round(0.045 * eye_distance)),
        )


def heal_blemishes(ycc: torch.Tensor, masks: SkinMasks, scales: SkinScales, strength: float) -> torch.Tensor:
    """Replace small dark or red spots by the skin around them, with texture borrowed from nearby."""
    # 1. Find the spots.
    spots = find_blemishes(ycc, masks, scales)
    if not bool(spots.any()):
        return ycc

    # 2. Background colour from the skin around each spot, excluding the spot itself.
    radius = scales.blemish_radius
    hole = filters.dilate(spots, 2)
    background = filters.masked_blur(ycc, masks.support * (1.0 - filters.dilate(hole, 1)), 0.8 * radius)

    # 3. Pore texture from a spot diameter beside the spot, so the patch is not smooth.
    texture = ycc - filters.masked_blur(ycc, masks.support, scales.texture_sigma)
    offset = 2 * radius + 3
    borrowed = torch.roll(texture, shifts=(0, offset), dims=(1, 2))
    borrowed_clean = torch.roll(masks.support * (1.0 - hole), shifts=(0, offset), dims=(1, 2))
    borrowed = (borrowed * borrowed_clean).clamp(-0.04, 0.04)

    # 4. Blend the healed patch in with a soft edge.
    weight = (filters.gaussian_blur(hole, 1.0).clamp(0, 1) * 1.5).clamp(max=1.0) * masks.support * strength
    return ycc + weight * (background + borrowed - ycc)


def find_blemishes(ycc: torch.Tensor, masks: SkinMasks, scales: SkinScales) -> torch.Tensor:
    """Return a (1, H, W) 0/1 mask of small spots that are darker or redder than the skin around them.

    A spot is a local outlier in every direction. Closing with a line (for dark) or
    opening with a line (for red) longer than the largest spot gives the surrounding
    skin's level along that line. A crease or wrinkle runs along one of the four lines,
    which then finds no contrast, so taking the least contrast over the four directions
    leaves creases alone, while a spot on a crease is measured against the crease.
    """
    from scipy import ndimage

    radius = scales.blemish_radius
    zone = masks.blemish_zone[0] > 0
    if int(zone.sum()) < 64:
        return torch.zeros_like(masks.support)

    # 1. Outside the skin, put in the skin's own average, so eyes or hair do not look like contrast.
    #    A slight blur keeps single-pixel pores and stubble from standing out.
    skin_average = filters.masked_blur(ycc, masks.support, scales.mid_sigma)
    filled = filters.gaussian_blur(torch.where(masks.support > 0, ycc, skin_average), 0.8)
    luma_and_redness = torch.cat([filled[0:1], -filled[2:3]])

    # 2. Darkness and red excess against the surrounding skin, the least over four directions.
    contrast = torch.stack(
        [filters.line_closing(luma_and_redness, radius, direction) - luma_and_redness
         for direction in filters.LINE_DIRECTIONS]
    ).amin(dim=0)

    # 3. Score in units of the skin's own contrast.
    zone_contrast = contrast[:, zone][:, ::4]
    typical = torch.quantile(zone_contrast, 0.95, dim=1)
    darkness_unit = float(typical[0].clamp(*SPOT_DARKNESS_UNIT))
    redness_unit = float(typical[1].clamp(*SPOT_REDNESS_UNIT))
    score = (contrast[0] / darkness_unit + contrast[1] / redness_unit) * masks.blemish_zone[0]

    # 4. Keep components no wider than a spot whose core is clearly above threshold (hysteresis).
    score_map = score.cpu().numpy()
    labels, count = ndimage.label(score_map > SPOT_EDGE)
    if count == 0:
        return torch.zeros_like(masks.support)
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(labels[score_map >= SPOT_SEED])] = True
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or not keep[index]:
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        too_large = max(height, width) > 2 * radius + 3
        elongated = max(height, width) > SPOT_MAX_ASPECT * min(height, width)
        ragged = areas[index] < SPOT_MIN_FILL * height * width
        keep[index] = not (too_large or elongated or ragged)
    keep[0] = False
    spots = keep[labels]
    return torch.from_numpy(spots.astype(np.float32)).unsqueeze(0).to(ycc.device)


def even_skin(
    ycc: torch.Tensor,
    masks: SkinMasks,
    scales: SkinScales,
    smoothing: float,
    redness: float,
    color_cast: float,
    under_eye: float,
) -> torch.Tensor:
    """Even tone, blotches and redness with frequency separation, keep pores, lift under-eye shadows."""
    # 1. Frequency separation over skin pixels only: low + mid + texture add up to the crop exactly.
    support = masks.support
    fine_base = filters.masked_blur(ycc, support, scales.texture_sigma)
    low = filters.masked_blur(ycc, support, scales.mid_sigma)
    texture = ycc - fine_base
    mid = fine_base - low

    # 2. Smoothing: soften low-contrast mid-band detail (blotches), keep creases and edges, soften pores a little.
    if smoothing > 0:
        mid_rms = float(((mid[0:1] ** 2 * support).sum() / support.sum().clamp_min(1.0)).sqrt())
        flatness = torch.exp(-((mid[0:1] / max(MID_EDGE_FACTOR * mid_rms, 1e-3)) ** 2))
        mid = mid * (1.0 - MID_SOFTENING * smoothing * flatness)
        texture = texture * (1.0 - TEXTURE_SOFTENING * smoothing)

        # Pull the low band towards a broader skin average, except across real shading.
        broad = filters.masked_blur(ycc, support, scales.broad_sigma)
        difference = broad - low
        evenness = torch.exp(-((difference[0:1] / SHADING_CONTRAST) ** 2))
        low = low + TONE_EVENING * smoothing * evenness * difference

    # 3. Reference skin colour from the cheek and forehead samples.
    reference = _sample_median(low, masks.samples)

    # 4. Redness: reduce chroma that is redder than the reference skin, in the low and mid bands.
    if redness > 0:
        red_excess = (low[2:3] - reference[2]).clamp_min(0.0)
        low = low.clone()
        low[2:3] -= 0.7 * redness * red_excess
        mid = mid.clone()
        mid[2:3] -= 0.5 * redness * mid[2:3].clamp_min(0.0)

    # 5. Colour cast: move the face's chroma towards the skin-tone line, never more than MAX_CAST_SHIFT.
    if color_cast > 0:
        low = low + _cast_correction(reference, color_cast).view(3, 1, 1)

    # 6. Under-eye: lift the low band's luma towards the cheeks', and its chroma towards theirs.
    if under_eye > 0:
        shadow = (reference[0] - low[0:1]).clamp_min(0.0)
        lift = 0.8 * under_eye * masks.under_eye
        low = low.clone()
        low[0:1] += lift * shadow
        low[1:] += 0.5 * lift * (reference[1:].view(2, 1, 1) - low[1:])

    retouched = low + mid + texture
    return ycc + masks.skin * (retouched - ycc)


def _sample_median(ycc: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    chosen = samples[0] > 0.5
    if int(chosen.sum()) < 16:
        chosen = torch.ones_like(chosen)
    return ycc[:, chosen][:, ::4].median(dim=1).values


def _cast_correction(reference: torch.Tensor, strength: float) -> torch.Tensor:
    """Return a (Y, Cb, Cr) shift that moves the skin chroma a third of the way to the skin-tone line at full strength."""
    angle = np.deg2rad(SKIN_TONE_ANGLE_DEGREES)
    direction = torch.tensor([np.cos(angle), np.sin(angle)], dtype=reference.dtype, device=reference.device)
    chroma = reference[1:]
    off_line = chroma - (chroma @ direction) * direction
    shift = -0.35 * strength * off_line
    norm = float(shift.norm())
    if norm > MAX_CAST_SHIFT:
        shift = shift * (MAX_CAST_SHIFT / norm)
    return torch.cat([torch.zeros(1, dtype=reference.dtype, device=reference.device), shift])
