"""Skin retouching on a face crop: blemish healing, frequency separation that keeps pores, tone and redness evening, under-eye lift.

All functions take and return the crop in YCbCr (see `filters.rgb_to_ycc`), mostly at
working resolution, where the eyes sit 180–360 pixels apart (spot healing also runs at full
resolution for spots too small for it), and change only the skin masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import filters
from .masks import SkinMasks, blemish_radius

# Share of each band removed at full smoothing strength. Texture (pores) loses little, the mid
# band (blotches, small bumps) half and only where its contrast is low, since the face mesh
# reads the face's shape from that band too and moves when it is flattened.
TEXTURE_SOFTENING = 0.4
MID_SOFTENING = 0.5
TONE_EVENING = 0.3
# Mid-band luma contrast, in multiples of the skin's RMS mid-band contrast, above which a
# detail counts as form (a crease, the nose's edge) and is kept.
MID_EDGE_FACTOR = 2.0
# Low-band luma difference above which shading counts as the face's modelling and is kept.
SHADING_CONTRAST = 0.08

# Contrast units of a spot against the skin around it: luma darker, as a share of the skin's luma
# so that dark skin is judged as light skin is, and Cr redder. Each unit is the skin's own
# 95th-percentile contrast (its texture, freckles, stubble), kept within these bounds.
SPOT_DARKNESS_UNIT = (0.05, 0.12)
SPOT_REDNESS_UNIT = (0.012, 0.03)
# A spot's darkness and redness, in units, must add up to SPOT_SEED somewhere and to SPOT_EDGE over all of it.
SPOT_SEED, SPOT_EDGE = 2.2, 1.0
SPOT_STRONG_SEED = 4.4
# Spots are round: a component longer than this many times its width, or filling less of its
# bounding box than this, is a crease or a patch of stubble.
SPOT_MAX_ASPECT, SPOT_MIN_FILL = 2.0, 0.4
# Searches for spots, each after healing the spots found before.
SPOT_SEARCHES = 2

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
            blemish_radius=blemish_radius(eye_distance),
        )


def heal_blemishes(
    ycc: torch.Tensor,
    masks: SkinMasks,
    scales: SkinScales,
    strength: float,
    radius: int | None = None,
    searches: int = SPOT_SEARCHES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace small dark or red spots by the skin around them, with texture borrowed from nearby.

    `radius` is the largest spot radius looked for, `scales.blemish_radius` by default.
    Spots in a row hide each other from the search (each looks like part of a crease), so
    each further search runs after the spots found before are healed. Returns the healed
    crop and the (1, H, W) mask of the healed spots.
    """
    radius = scales.blemish_radius if radius is None else radius
    healed_spots = torch.zeros_like(masks.support)
    for _ in range(searches):
        spots = find_blemishes(ycc, masks, scales, radius) * (1.0 - healed_spots)
        if not bool(spots.any()):
            break
        ycc, hole = _heal_spots(ycc, spots, masks, scales, strength, radius)
        healed_spots = torch.maximum(healed_spots, hole)
    return ycc, healed_spots


def _heal_spots(ycc, spots, masks, scales, strength, radius) -> tuple[torch.Tensor, torch.Tensor]:
    """Heal `spots` tile by tile: only the boxes around them are filtered, which on a large face is a small share."""
    from scipy import ndimage

    hole = filters.dilate(spots, 2)
    texture_sigma = max(2.0 * scales.texture_sigma, 3.0)
    offset = 2 * radius + 3
    reach = int(np.ceil(2.0 * 0.8 * radius + 3.0 * texture_sigma)) + 4
    surroundings = filters.dilate(hole, reach)[0].cpu().numpy() > 0
    labels, count = ndimage.label(surroundings)
    height, width = hole.shape[-2:]
    healed = ycc.clone()
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        top, bottom = box[0].start, box[0].stop
        left, right = max(0, box[1].start - offset), box[1].stop
        tile = (slice(None), slice(top, bottom), slice(left, right))
        own = torch.from_numpy(labels[top:bottom, left:right] == index).to(ycc.device)
        patch = _healed_patch(
            ycc[tile], hole[tile], masks.support[tile], masks.spot_support[tile], texture_sigma, offset, strength,
            0.8 * radius,
        )
        healed[tile] = torch.where(own, patch, healed[tile])
    return healed, hole


def _healed_patch(ycc, hole, support, spot_support, texture_sigma, offset, strength, max_sigma) -> torch.Tensor:
    # 1. Fill each spot from its rim, as a clone brush would. Beside the hairline or a brow the
    #    rim is partly hair, and then so is the fill, or the spot would leave a light patch.
    around = 1.0 - filters.dilate(hole, 1)
    background = filters.fill_from_surroundings(ycc, around, max_sigma)

    # 2. Pore texture from a spot diameter to the left, so the patch is not smooth.
    texture = ycc - filters.masked_blur(ycc, support, texture_sigma)
    borrowed = torch.roll(texture, shifts=(0, offset), dims=(1, 2))
    borrowed_clean = torch.roll(support * (1.0 - hole), shifts=(0, offset), dims=(1, 2))
    borrowed = (borrowed * borrowed_clean).clamp(-0.04, 0.04)

    # 3. Blend the healed patch in with a soft edge.
    weight = (filters.gaussian_blur(hole, 1.0).clamp(0, 1) * 1.5).clamp(max=1.0) * spot_support * strength
    return ycc + weight * (background + borrowed - ycc)


def find_blemishes(ycc: torch.Tensor, masks: SkinMasks, scales: SkinScales, radius: int) -> torch.Tensor:
    """Return a (1, H, W) 0/1 mask of spots up to `radius` pixels that are darker or redder than the skin around them.

    Spots are local outliers (see `spot_contrast`), scored in units of the skin's own
    contrast and kept where round and no larger than `radius`.
    """
    from scipy import ndimage

    zone = masks.blemish_zone[0] > 0
    if int(zone.sum()) < 64:
        return torch.zeros_like(masks.support)

    # 1. Outside the skin, put in the skin's own average, so eyes or hair do not look like contrast.
    #    A slight blur keeps single-pixel pores and stubble from standing out.
    skin_average = filters.masked_blur(ycc, masks.support, scales.mid_sigma)
    filled = filters.gaussian_blur(torch.where(masks.spot_support > 0, ycc, skin_average), 0.8)
    skin_luma = max(float(skin_average[0][zone].median()), 0.05)
    luma_and_redness = torch.cat([filled[0:1] / skin_luma, -filled[2:3]])

    # 2. Darkness and red excess against the surrounding skin.
    contrast = spot_contrast(luma_and_redness, radius)

    # 3. Score in units of the skin's own contrast.
    zone_contrast = contrast[:, zone][:, ::4]
    typical = torch.quantile(zone_contrast, 0.95, dim=1)
    darkness_unit = float(typical[0].clamp(*SPOT_DARKNESS_UNIT))
    redness_unit = float(typical[1].clamp(*SPOT_REDNESS_UNIT))
    score = (contrast[0] / darkness_unit + contrast[1] / redness_unit) * masks.spot_reach[0]

    # 4. Keep components no wider than a spot whose core is clearly above threshold and lies in
    #    the blemish zone (hysteresis); their outskirts may reach past the zone's edge, but
    #    only half a spot's radius, or a spot would run out along a fold or into the hair.
    #    Where spots touch each other, or a fold, their outskirts merge into one shapeless
    #    component, so for a rejected one the strong cores are tried alone; the weaker ones
    #    would be the darker stretches of the fold itself.
    score_map = score.cpu().numpy()
    seeds = (score_map >= SPOT_SEED) & (masks.blemish_zone[0] > 0).cpu().numpy()
    if not seeds.any():
        return torch.zeros_like(masks.support)
    outskirts = ndimage.binary_dilation(seeds, iterations=max(2, radius // 2), mask=score_map > SPOT_EDGE)
    candidates = _round_components(outskirts, seeds, radius)
    spots = candidates.accepted
    if candidates.rejected.any():
        strong = score_map >= SPOT_STRONG_SEED
        cores = _round_components(strong & candidates.rejected, seeds & strong, radius).accepted
        grown = ndimage.binary_dilation(cores, iterations=2) & candidates.rejected
        spots = spots | grown
    return torch.from_numpy(spots.astype(np.float32)).unsqueeze(0).to(ycc.device)


def spot_contrast(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Return how far each pixel of `image` (C, H, W) lies below its surroundings as a spot does, per channel.

    Along each of four directions the brightest pixel within `radius` ahead and behind
    is found. A spot is darker than both sides in every direction. A crease runs along
    one direction, where both sides are as dark as the pixel, so in every direction at
    least one side must be brighter, and both sides must be in all but one direction
    (a spot beside a fold or another spot has the dark neighbour on one side only).
    """
    both_sides, either_side = [], []
    for row_step, column_step in filters.LINE_DIRECTIONS:
        ahead = filters.half_line_maximum(image, radius, (row_step, column_step))
        behind = filters.half_line_maximum(image, radius, (-row_step, -column_step))
        both_sides.append(torch.minimum(ahead, behind) - image)
        either_side.append(torch.maximum(ahead, behind) - image)
    # The second least of four: the lesser of the two pairs' larger minimum and smaller maximum.
    low_a, high_a = torch.minimum(both_sides[0], both_sides[1]), torch.maximum(both_sides[0], both_sides[1])
    low_b, high_b = torch.minimum(both_sides[2], both_sides[3]), torch.maximum(both_sides[2], both_sides[3])
    second_least_closed = torch.minimum(torch.maximum(low_a, low_b), torch.minimum(high_a, high_b))
    least_open = torch.minimum(torch.minimum(either_side[0], either_side[1]), torch.minimum(either_side[2], either_side[3]))
    return torch.minimum(second_least_closed, least_open).clamp_min(0.0)


@dataclass
class _Components:
    accepted: np.ndarray  # (H, W) bool: round components no larger than a spot
    rejected: np.ndarray  # (H, W) bool: seeded components too large, elongated or ragged


def _round_components(region: np.ndarray, seeds: np.ndarray, radius: int) -> _Components:
    """Split the seeded components of `region` into spot-like ones and the rest."""
    from scipy import ndimage

    labels, count = ndimage.label(region)
    seeded = np.zeros(count + 1, dtype=bool)
    seeded[np.unique(labels[seeds & region])] = True
    seeded[0] = False
    round_enough = np.zeros(count + 1, dtype=bool)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or not seeded[index]:
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        too_large = max(height, width) > 2 * radius + 3
        elongated = max(height, width) > SPOT_MAX_ASPECT * min(height, width)
        ragged = areas[index] < SPOT_MIN_FILL * height * width
        round_enough[index] = not (too_large or elongated or ragged)
    return _Components(accepted=round_enough[labels], rejected=(seeded & ~round_enough)[labels])


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
