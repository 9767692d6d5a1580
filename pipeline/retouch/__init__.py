"""Beauty retouching of the faces in a frame: skin, blemishes, under-eyes, eyes, teeth and optional light make-up.

Each face is retouched inside its own region only (the face, forehead, ears and neck),
so hair, clothes and backdrop keep their pixels. Skin work runs on a copy of that region
downsampled until the eyes sit 180–360 pixels apart, and its change is upsampled and added
to the full-resolution frame. At full resolution, spots too small for the working size are
healed, the finest texture is set to a fixed share of its energy, and eyes and teeth are
retouched.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from ..faces import Face
from ..jobs import JobCanceled
from . import filters
from .eyes import retouch_eyes
from .makeup import apply_makeup
from .masks import FaceGeometry, SkinMasks, skin_masks
from .presets import MAKEUP_PRESETS, RETOUCH_PRESETS, RetouchSettings
from .skin import SkinScales, even_skin, heal_blemishes
from .teeth import whiten_teeth
from .texture import keep_fine_texture

__all__ = ["MAKEUP_PRESETS", "RETOUCH_PRESETS", "RetouchSettings", "face_region", "retouch"]

log = logging.getLogger(__name__)

# Skin work is done at a size where the eyes are at least this many pixels apart (and under twice that).
# At 180 a face with its eyes 360–400 pixels apart (a head-and-shoulders crop at 2048 pixels) is halved, so
# the retouch takes half the time there. The spot, texture and landmark figures stayed as they were.
WORK_EYE_DISTANCE = 180.0

# Pore texture at full resolution, in pixels: what a spot healed there borrows from beside it.
SMALL_SPOT_TEXTURE_SIGMA = 1.5

# Share of the finest texture (1–3 px) taken away at full smoothing strength; the rest stays.
FINE_TEXTURE_SMOOTHING = 0.65

# Faces with their eyes closer than this many pixels are left as they are: their skin masks are a few pixels
# wide, and an evened under-eye or cheek showed as a flat patch (on a 240-pixel frame, eyes 24 px apart).
MIN_EYE_DISTANCE = 32.0

# The face region around the mesh, in eye distances: sides (ears), top (forehead), bottom (neck).
REGION_SIDE, REGION_TOP, REGION_BOTTOM = 0.35, 0.55, 1.0


def retouch(
    image: torch.Tensor,
    faces: list[Face],
    settings: RetouchSettings,
    person_matte: torch.Tensor | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Return `image` (3, H, W) with every face retouched; with all strengths 0, `image` itself.

    `faces` carry landmarks in the image's pixels; a face without a mesh is left as it
    is. `person_matte` (1, H, W), when given, bounds the skin masks to the person.
    Raises `JobCanceled` when `should_stop` returns True.
    """
    if settings.is_off:
        return image
    with torch.no_grad():
        return _retouch_faces(image, faces, settings, person_matte, should_stop)


def _retouch_faces(image, faces, settings, person_matte, should_stop) -> torch.Tensor:
    result = image.clone()
    for face in faces:
        if should_stop is not None and should_stop():
            raise JobCanceled()
        if face.landmarks is None:
            log.info("retouch: face at %s has no mesh, left untouched", tuple(round(v) for v in face.box))
            continue
        if face.eye_distance < MIN_EYE_DISTANCE:
            log.info("retouch: face at %s has its eyes %.0f px apart, too small to retouch, left untouched",
                     tuple(round(v) for v in face.box), face.eye_distance)
            continue
        _retouch_face(result, face, settings, person_matte, should_stop)
    return result


def face_region(face: Face, height: int, width: int, factor: int = 1) -> tuple[int, int, int, int]:
    """Return the face's working region (x0, y0, x1, y1) in frame pixels, clipped to the frame.

    The region is the mesh's bounding box grown for forehead, ears and neck; its sides
    are multiples of `factor`, so it downsamples to whole pixels.
    """
    points = face.landmarks[:, :2]
    eye_distance = face.eye_distance
    x0 = int(max(0, np.floor(points[:, 0].min() - REGION_SIDE * eye_distance)))
    x1 = int(min(width, np.ceil(points[:, 0].max() + REGION_SIDE * eye_distance)))
    y0 = int(max(0, np.floor(points[:, 1].min() - REGION_TOP * eye_distance)))
    y1 = int(min(height, np.ceil(points[:, 1].max() + REGION_BOTTOM * eye_distance)))
    x1 = x0 + max(factor, (x1 - x0) // factor * factor)
    y1 = y0 + max(factor, (y1 - y0) // factor * factor)
    if x1 > width:
        x0, x1 = max(0, x0 - (x1 - width)), width
    if y1 > height:
        y0, y1 = max(0, y0 - (y1 - height)), height
    return x0, y0, x1, y1


def _retouch_face(image, face, settings, person_matte, should_stop) -> None:
    # 1. Cut the face region and bring it to working size.
    height, width = image.shape[-2:]
    factor = max(1, int(face.eye_distance // WORK_EYE_DISTANCE))
    x0, y0, x1, y1 = face_region(face, height, width, factor)
    if (x1 - x0) % factor or (y1 - y0) % factor:
        factor = 1
    crop = image[:, y0:y1, x0:x1]
    work = filters.downsample(crop, factor)
    matte = None
    if person_matte is not None:
        matte = filters.downsample(person_matte[:, y0:y1, x0:x1].to(work.device, torch.float32), factor)

    # Pixel coordinates: landmark x is continuous (0 = left edge); pixel i's centre is at i + 0.5.
    origin = np.array([x0, y0], dtype=np.float32)
    geometry = FaceGeometry(
        points=(face.landmarks[:, :2] - origin) / factor - 0.5, eye_distance=face.eye_distance / factor
    )
    full_geometry = FaceGeometry(points=face.landmarks[:, :2] - origin - 0.5, eye_distance=face.eye_distance)

    # 2. Blemishes. Spots too small to survive the downsampling (a radius under about two
    #    working pixels) are healed at full resolution, the rest at working size.
    ycc = filters.rgb_to_ycc(work)
    masks = skin_masks(ycc, geometry, matte)
    scales = SkinScales.for_face(geometry.eye_distance)
    if settings.blemish_healing > 0:
        if factor > 1:
            _heal_small_spots(crop, masks, scales, factor, settings.blemish_healing)
            ycc = filters.rgb_to_ycc(filters.downsample(crop, factor))
        healed, _ = heal_blemishes(ycc, masks, scales, settings.blemish_healing)
        _add_upsampled(crop, filters.ycc_to_rgb(healed - ycc), factor)
        ycc = healed
    if should_stop is not None and should_stop():
        raise JobCanceled()

    # 3. Skin and make-up at working size, in YCbCr; the change is upsampled and added.
    healed_luma = filters.luma(crop)
    retouched = ycc
    if max(settings.skin_smoothing, settings.redness, settings.color_cast, settings.under_eye) > 0:
        retouched = even_skin(
            retouched, masks, scales, settings.skin_smoothing, settings.redness, settings.color_cast,
            settings.under_eye,
        )
    if max(settings.lip_tint, settings.blush) > 0:
        retouched = apply_makeup(retouched, masks, geometry, settings.lip_tint, settings.blush)
    _add_upsampled(crop, filters.ycc_to_rgb(retouched - ycc), factor)

    # 4. Whatever the working size did to the finest texture, set it to its share of the healed skin's.
    if settings.skin_smoothing > 0:
        keep_fine_texture(
            crop, healed_luma, _to_full_size(masks.skin, factor, crop.shape[-2:]),
            1.0 - FINE_TEXTURE_SMOOTHING * settings.skin_smoothing,
        )

    # 5. Eyes and teeth at full resolution.
    if settings.eye_whites > 0 or settings.iris_contrast > 0:
        retouch_eyes(crop, full_geometry, settings.eye_whites, settings.iris_contrast)
    if settings.teeth_whitening > 0:
        whiten_teeth(crop, full_geometry, settings.teeth_whitening)


def _to_full_size(mask: torch.Tensor, factor: int, size) -> torch.Tensor:
    return mask if factor == 1 else filters.upsample(mask, tuple(size))


def _heal_small_spots(crop: torch.Tensor, masks: SkinMasks, scales: SkinScales, factor: int, strength: float) -> None:
    """Heal spots of up to about two working pixels' radius in `crop` (full resolution, RGB) in place."""
    # 1. The box around the blemish zone, and the masks brought to full resolution inside it.
    zone = masks.blemish_zone[0] > 0
    if not bool(zone.any()):
        return
    rows = torch.nonzero(zone.any(dim=1)).flatten()
    columns = torch.nonzero(zone.any(dim=0)).flatten()
    top, bottom = int(rows[0]) * factor, (int(rows[-1]) + 1) * factor
    left, right = int(columns[0]) * factor, (int(columns[-1]) + 1) * factor

    def full_size(mask: torch.Tensor) -> torch.Tensor:
        box = mask[:, top // factor : bottom // factor, left // factor : right // factor]
        return (filters.upsample(box, (bottom - top, right - left)) > 0.5).float()

    full_masks = SkinMasks(
        skin=full_size(masks.skin), support=full_size(masks.support), blemish_zone=full_size(masks.blemish_zone),
        spot_support=full_size(masks.spot_support), spot_reach=full_size(masks.spot_reach),
        samples=full_size(masks.samples),
        under_eye=full_size(masks.under_eye),
    )
    full_scales = SkinScales(
        texture_sigma=SMALL_SPOT_TEXTURE_SIGMA, mid_sigma=scales.mid_sigma * factor,
        broad_sigma=scales.broad_sigma * factor, blemish_radius=2 * factor + 2,
    )

    # 2. Heal in YCbCr and put the change back.
    patch = crop[:, top:bottom, left:right]
    ycc = filters.rgb_to_ycc(patch)
    healed, _ = heal_blemishes(ycc, full_masks, full_scales, strength, searches=1)
    patch.add_(filters.ycc_to_rgb(healed - ycc)).clamp_(0.0, 1.0)


def _add_upsampled(crop: torch.Tensor, change: torch.Tensor, factor: int) -> None:
    changed = change.abs().amax(dim=0) > 0
    if not bool(changed.any()):
        return
    rows = torch.nonzero(changed.any(dim=1)).flatten()
    columns = torch.nonzero(changed.any(dim=0)).flatten()
    work_height, work_width = change.shape[-2:]
    top, bottom = max(0, int(rows[0]) - 2), min(work_height, int(rows[-1]) + 3)
    left, right = max(0, int(columns[0]) - 2), min(work_width, int(columns[-1]) + 3)
    patch = change[:, top:bottom, left:right]
    full = filters.upsample(patch, ((bottom - top) * factor, (right - left) * factor))
    target = crop[:, top * factor : bottom * factor, left * factor : right * factor]
    target.add_(full).clamp_(0.0, 1.0)
