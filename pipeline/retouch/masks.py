"""Region masks for retouching, drawn from the 478-point face mesh and refined by the subject's own skin colour.

Polygons come from the mesh (mediapipe face_mesh with refined irises). "Right" and
"left" are the subject's own, so the subject's right eye is on the image's left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import filters

# Closed mesh contours, each listed in order around the region.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
# Underside of the nose: the nostrils and the alar creases beside them.
NOSTRILS = (64, 219, 218, 237, 44, 1, 274, 457, 438, 439, 294, 327, 326, 2, 97, 98)
# The band between the lower lid and the top of the cheek, where dark circles sit.
RIGHT_UNDER_EYE = (130, 25, 110, 24, 23, 22, 26, 112, 243, 245, 128, 121, 120, 119, 118, 117, 111, 35)
LEFT_UNDER_EYE = (359, 255, 339, 254, 253, 252, 256, 341, 463, 465, 357, 350, 349, 348, 347, 346, 340, 265)
# The jaw line from ear to ear under the chin.
CHIN_LINE = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)

# Alar creases beside the nostrils: dark grooves that spot healing must leave alone.
ALAR_CREASE_POINTS = (64, 48, 294, 278)
# The nose: bridge, tip, wings and nostrils (the points of mediapipe's FACEMESH_NOSE contour).
NOSE_POINTS = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)
# Folds from the nose's wing past the mouth's corner.
NASOLABIAL_FOLDS = ((129, 203, 206, 216, 57, 43), (358, 423, 426, 436, 287, 273))

# How far spot healing keeps from each feature, in eye distances. Forehead spots sit close
# above the brows and cheek spots about a quarter eye distance below the eyes.
SPOT_MARGIN_EYES = 0.12
SPOT_MARGIN_BROWS = 0.04
SPOT_MARGIN_LIPS = 0.12
SPOT_MARGIN_NOSTRILS = 0.08
SPOT_MARGIN_NOSE = 0.04
SPOT_MARGIN_FOLDS = 0.06
SPOT_MARGIN_JAW = 0.12

# The under-eye lift keeps this far from the eye's outline, in eye distances, and fades in over 0.04 more.
# A lifted lower lid moves where the face mesh puts the lid, while dark circles lie lower. Under-eye lifting
# alone moved the landmarks 0.75 % of the eye distance on average over the shared photos, with the gap 0.44 %.
UNDER_EYE_LID_GAP = 0.12

# Mesh points whose surroundings are plain skin on nearly every face: cheek apples, cheeks, forehead.
SKIN_SAMPLE_POINTS = (50, 280, 205, 425, 108, 151, 337)
RIGHT_CHEEK_APPLE, LEFT_CHEEK_APPLE = 50, 280

RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first, then four points on the iris edge
LEFT_IRIS = (473, 474, 475, 476, 477)


@dataclass(frozen=True)
class FaceGeometry:
    """A face's mesh points in the pixels of one (possibly downsampled) crop."""

    points: np.ndarray  # (478, 2) x, y
    eye_distance: float

    def polygon(self, indices: tuple[int, ...]) -> np.ndarray:
        return self.points[list(indices)]

    def iris(self, indices: tuple[int, ...]) -> tuple[np.ndarray, float]:
        """Return an iris's centre and radius from its centre point and four edge points."""
        center = self.points[indices[0]]
        radius = float(np.mean(np.hypot(*(self.points[list(indices[1:])] - center).T)))
        return center, radius


@dataclass
class SkinMasks:
    """Masks of one face crop at working resolution, each (1, H, W) float32."""

    skin: torch.Tensor  # soft 0..1: where skin retouching is blended in
    support: torch.Tensor  # 0 or 1: the skin pixels that skin averages draw from
    blemish_zone: torch.Tensor  # 0 or 1: where a spot may be healed (skin away from features)
    spot_support: torch.Tensor  # 0 or 1: `support` with spot-sized holes filled (a dark spot is not skin-coloured)
    spot_reach: torch.Tensor  # 0 or 1: where a spot seeded in `blemish_zone` may extend to (skin off the features)
    samples: torch.Tensor  # 0 or 1: plain skin on cheeks and forehead, for reference statistics
    under_eye: torch.Tensor  # soft 0..1


def fill_polygons(shape: tuple[int, int], polygons: list[np.ndarray], margin: int = 0) -> np.ndarray:
    """Rasterise polygons into a (H, W) uint8 mask, grown by a rounded `margin` in pixels."""
    import cv2

    mask = np.zeros(shape, dtype=np.uint8)
    shift = 4
    scaled = [np.round(polygon * (1 << shift)).astype(np.int32) for polygon in polygons]
    cv2.fillPoly(mask, scaled, 1, lineType=cv2.LINE_8, shift=shift)
    if margin > 0:
        cv2.polylines(mask, scaled, True, 1, thickness=2 * margin + 1, lineType=cv2.LINE_8, shift=shift)
    return mask


def fill_disks(shape: tuple[int, int], centers: np.ndarray, radius: float) -> np.ndarray:
    """Rasterise disks of one radius into a (H, W) uint8 mask."""
    rows, columns = np.ogrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for x, y in centers:
        mask |= (columns - x) ** 2 + (rows - y) ** 2 <= radius**2
    return mask.astype(np.uint8)


def grown_polygon(points: np.ndarray, scale_x: float, scale_y_up: float, scale_y_down: float) -> np.ndarray:
    """Scale a polygon about its centroid, with separate factors for up and down."""
    center = points.mean(axis=0)
    offset = points - center
    factors_y = np.where(offset[:, 1] < 0, scale_y_up, scale_y_down)
    return center + offset * np.stack([np.full(len(points), scale_x), factors_y], axis=1)


def feather(hard: torch.Tensor, sigma: float) -> torch.Tensor:
    """Soften a binary mask inwards: it stays 0 outside the hard mask and reaches 1 inside."""
    radius = int(round(1.5 * sigma))
    soft = filters.gaussian_blur(filters.erode(hard, radius), sigma)
    return (soft * hard).clamp(0.0, 1.0)


def skin_masks(
    ycc: torch.Tensor, geometry: FaceGeometry, matte: torch.Tensor | None = None
) -> SkinMasks:
    """Build the skin masks of one face crop from the mesh and the skin's colour statistics.

    `ycc` is the crop in YCbCr (see `filters.rgb_to_ycc`); `matte`, when given, is the
    person matte over the same crop and bounds every mask.
    """
    height, width = ycc.shape[-2:]
    shape = (height, width)
    device = ycc.device
    eye_distance = geometry.eye_distance

    def to_mask(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.float32)).unsqueeze(0).to(device)

    # 1. The face oval without eyes, brows, lips and nostrils; each feature keeps a margin.
    oval = to_mask(fill_polygons(shape, [geometry.polygon(FACE_OVAL)]))
    features = torch.zeros_like(oval)
    for polygons, margin in (
        ((RIGHT_EYE, LEFT_EYE), 0.07),
        ((RIGHT_BROW, LEFT_BROW), 0.05),
        ((OUTER_LIPS,), 0.035),
        ((NOSTRILS,), 0.025),
    ):
        drawn = fill_polygons(
            shape, [geometry.polygon(indices) for indices in polygons], max(1, round(margin * eye_distance))
        )
        features = torch.maximum(features, to_mask(drawn))
    core = oval * (1.0 - features)

    # 2. The subject's skin colour, sampled on cheeks and forehead inside the core.
    samples = to_mask(
        fill_disks(shape, geometry.polygon(SKIN_SAMPLE_POINTS), 0.12 * eye_distance)
    ) * filters.erode(core, max(1, round(0.03 * eye_distance)))
    likelihood, typical_skin = skin_likelihood(ycc, samples, eye_distance)

    # 3. Forehead above the mesh, ears and neck: only where the colour is skin.
    extension = to_mask(
        fill_polygons(
            shape,
            [
                grown_polygon(geometry.polygon(FACE_OVAL), 1.15, 1.25, 1.0),
                _neck_polygon(geometry),
            ],
        )
    ) * (1.0 - oval) * (1.0 - features)
    support = torch.maximum(core * (likelihood > 0.4), extension * (likelihood > 0.6)).float()
    if matte is not None:
        support = support * (matte > 0.5)

    # 4. Soft blend masks; the extension fades in with the likelihood.
    feather_sigma = max(1.0, 0.02 * eye_distance)
    skin = feather(support, feather_sigma) * torch.where(oval > 0, likelihood.clamp_min(0.6), likelihood)
    spot_support, blemish_zone = _spot_masks(ycc, geometry, support, samples, oval, typical_skin)
    spot_reach = spot_support * (1.0 - features)
    under_eye_hard = to_mask(
        fill_polygons(shape, [geometry.polygon(RIGHT_UNDER_EYE), geometry.polygon(LEFT_UNDER_EYE)])
    ) * support
    under_eye = filters.gaussian_blur(under_eye_hard, max(1.0, 0.05 * eye_distance)) * support
    eyes = to_mask(fill_polygons(shape, [geometry.polygon(RIGHT_EYE), geometry.polygon(LEFT_EYE)]))
    near_lid = filters.dilate(eyes, max(1, round(UNDER_EYE_LID_GAP * eye_distance)))
    under_eye = under_eye * (1.0 - filters.gaussian_blur(near_lid, max(1.0, 0.04 * eye_distance)).clamp(0, 1))
    return SkinMasks(skin=skin, support=support, blemish_zone=blemish_zone, spot_support=spot_support,
                     spot_reach=spot_reach, samples=samples * support, under_eye=under_eye)


def _spot_masks(
    ycc: torch.Tensor,
    geometry: FaceGeometry,
    support: torch.Tensor,
    samples: torch.Tensor,
    oval: torch.Tensor,
    typical_skin: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the skin support with spot-sized holes filled, and the zone where spots are healed.

    A planted or real spot is not skin-coloured, so the support is closed over holes up to
    a spot's size, and red pixels next to skin count as well. The zone is the face and the
    forehead above it, kept well away from the features the face mesh follows: eyes, lips,
    the nose, the folds from nose to mouth and the jaw line. A fold, the
    shadow beside the nose or a lid's shadow taken for a spot and healed changes the face's
    shape as the mesh sees it. Brows get only a narrow margin: forehead spots sit close above them.
    """
    import cv2

    shape = tuple(ycc.shape[-2:])
    eye_distance = geometry.eye_distance

    def to_mask(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.float32)).unsqueeze(0).to(ycc.device)

    # 1. Skin with spot-sized holes filled.
    spot_radius = blemish_radius(eye_distance)
    spot_support = filters.closing(support, spot_radius) * filters.dilate(support, 1)
    spot_support = torch.maximum(spot_support, filters.dilate(support, spot_radius) * _redder_than_skin(ycc, samples))

    # 2. Features and their margins, in eye distances.
    excluded = torch.zeros_like(support)
    for polygons, margin in (
        ((RIGHT_EYE, LEFT_EYE), SPOT_MARGIN_EYES),
        ((RIGHT_BROW, LEFT_BROW), SPOT_MARGIN_BROWS),
        ((OUTER_LIPS,), SPOT_MARGIN_LIPS),
        ((NOSTRILS,), SPOT_MARGIN_NOSTRILS),
    ):
        drawn = fill_polygons(
            shape, [geometry.polygon(indices) for indices in polygons], max(1, round(margin * eye_distance))
        )
        excluded = torch.maximum(excluded, to_mask(drawn))
    nose = cv2.convexHull(geometry.polygon(NOSE_POINTS).astype(np.float32))[:, 0]
    excluded = torch.maximum(excluded, to_mask(fill_polygons(shape, [nose], round(SPOT_MARGIN_NOSE * eye_distance))))
    for lines, margin in (
        ([geometry.polygon(indices) for indices in NASOLABIAL_FOLDS], SPOT_MARGIN_FOLDS),
        ([geometry.polygon(CHIN_LINE)], SPOT_MARGIN_JAW),
    ):
        excluded = torch.maximum(excluded, to_mask(draw_lines(shape, lines, margin * eye_distance)))
    excluded = torch.maximum(
        excluded, to_mask(fill_disks(shape, geometry.polygon(ALAR_CREASE_POINTS), 0.15 * eye_distance))
    )

    # 3. The zone: face and forehead, less the exclusions, a little inside the skin. Beyond the
    #    mesh's oval a fringe or sideburns may have skin's hue (blond hair), so there only skin
    #    of the samples' typical colour counts.
    # NOTE: a fringe that reaches inside the oval is not told apart from skin; a spot at its edge
    # is healed with the hair around it.
    forehead_and_face = to_mask(fill_polygons(shape, [grown_polygon(geometry.polygon(FACE_OVAL), 1.06, 1.15, 1.0)]))
    typical_skin = filters.closing((typical_skin > 0.5).float(), spot_radius)
    allowed = forehead_and_face * torch.maximum(oval, typical_skin) * (1.0 - excluded)
    blemish_zone = filters.erode(allowed, max(1, round(0.015 * eye_distance))) * spot_support
    return spot_support, blemish_zone


def draw_lines(shape: tuple[int, int], polylines: list[np.ndarray], half_width: float) -> np.ndarray:
    """Rasterise open polylines, `half_width` pixels to each side, into a (H, W) uint8 mask."""
    import cv2

    mask = np.zeros(shape, dtype=np.uint8)
    shift = 4
    thickness = max(1, int(round(2 * half_width + 1)))
    for line in polylines:
        points = np.round(line * (1 << shift)).astype(np.int32)
        cv2.polylines(mask, [points], False, 1, thickness=thickness, lineType=cv2.LINE_8, shift=shift)
    return mask


def blemish_radius(eye_distance: float) -> int:
    """Return the largest spot radius healed, in pixels: about 4.5 % of the eye distance, at least 9."""
    return max(9, round(0.045 * eye_distance))


def skin_likelihood(
    ycc: torch.Tensor, samples: torch.Tensor, eye_distance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return how much each pixel looks like the sampled skin, 0..1, loosely and strictly, each (1, H, W).

    The model is a Gaussian in (Cb, Cr) fitted to the sample pixels, so it adapts to
    every skin tone. Luma only rules out pixels far darker than the skin (hair, shadow
    under the jaw). The colour is taken from a blurred copy so that pores and small
    spots do not punch holes into the mask. The strict score accepts only skin close to
    the samples' colour and not much darker than them (a cheek turned from the light still
    counts), which keeps hair at the hairline out.
    """
    # 1. Smooth colour; small spots (up to about 0.05 eye distances) melt into the skin around them.
    smooth = filters.gaussian_blur(ycc, max(1.0, 0.05 * eye_distance))
    chosen = samples[0] > 0.5
    if int(chosen.sum()) < 16:
        return torch.ones_like(samples), torch.ones_like(samples)

    # 2. Fit the colour model, dropping the darkest and brightest tenth of the samples.
    values = smooth[:, chosen]
    low, high = torch.quantile(values[0], torch.tensor([0.1, 0.9], device=values.device))
    values = values[:, (values[0] >= low) & (values[0] <= high)]
    chroma = values[1:]
    mean = chroma.mean(dim=1, keepdim=True)
    centred = chroma - mean
    covariance = centred @ centred.T / max(1, chroma.shape[1] - 1)
    covariance = covariance + torch.eye(2, device=values.device) * 1e-5
    inverse = torch.linalg.inv(covariance)
    mean_luma = float(values[0].mean())

    # 3. Mahalanobis distance of every pixel's chroma, turned into soft 0..1 scores.
    difference = smooth[1:] - mean.view(2, 1, 1)
    distance = (
        inverse[0, 0] * difference[0] ** 2
        + 2 * inverse[0, 1] * difference[0] * difference[1]
        + inverse[1, 1] * difference[1] ** 2
    ).sqrt()
    loose = (1.0 - filters.smoothstep(3.0, 5.0, distance)) * filters.smoothstep(
        0.3 * mean_luma, 0.55 * mean_luma, smooth[0]
    )
    strict = (1.0 - filters.smoothstep(2.5, 4.0, distance)) * filters.smoothstep(
        0.45 * mean_luma, 0.65 * mean_luma, smooth[0]
    )
    return loose.unsqueeze(0), strict.unsqueeze(0)


def _redder_than_skin(ycc: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Return 1 where a pixel is at least as red as the sampled skin and not much darker: red spots, never hair.

    Hair of any colour, and the shadow beside it, is less red than the skin it borders.
    """
    chosen = samples[0] > 0.5
    if int(chosen.sum()) < 16:
        return torch.zeros_like(samples)
    skin_luma = float(ycc[0][chosen].median())
    skin_redness = float(ycc[2][chosen].median())
    smooth = filters.gaussian_blur(ycc, 1.0)
    return ((smooth[2:3] >= skin_redness) & (smooth[0:1] >= 0.3 * skin_luma)).float()


def _neck_polygon(geometry: FaceGeometry) -> np.ndarray:
    chin = geometry.polygon(CHIN_LINE)
    drop = np.array([0.0, 0.9 * geometry.eye_distance])
    return np.concatenate([chin, chin[::-1] + drop])
