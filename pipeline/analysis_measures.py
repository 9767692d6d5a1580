"""Measurements a retoucher makes on one frame: focus on the face, light on the skin, pose, eyes, mouth, noise,
compression, colour cast, backdrop clutter, and a perceptual hash for spotting near-duplicate frames.

Every function here works on arrays and landmarks and returns plain numbers; judging them is `pipeline.analysis`'s job.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .faces import (
    CHIN,
    FOREHEAD_TOP,
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    LEFT_IRIS_CENTER,
    LOWER_LIP_INNER,
    MOUTH_LEFT_CORNER,
    MOUTH_RIGHT_CORNER,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
    RIGHT_IRIS_CENTER,
    UPPER_LIP_INNER,
)

# Mesh topology of the 478-point face mesh: the face outline in order, and the regions that are not skin.
FACE_OVAL = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
]
RIGHT_EYE_RING = [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7]
LEFT_EYE_RING = [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249]
RIGHT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
LEFT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
NOSTRILS = [98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115, 48, 64]

# Eyelid pairs for the eye aspect ratio: two upper/lower pairs across each eye.
RIGHT_EYE_LIDS = [(160, 144), (158, 153)]
LEFT_EYE_LIDS = [(385, 380), (387, 373)]

# Sharpness is measured on the face scaled so the eyes are this far apart (never enlarged), so a face
# photographed at 24 megapixels and the same face at 1 megapixel give the same figure.
SHARPNESS_EYE_DISTANCE = 80.0

# 98th percentile of |Laplacian| (3×3, centre -4) of uniform 8-bit rounding noise: sigma 1/sqrt(12) times the
# kernel's gain sqrt(20), times 2.33 for the 98th percentile of a normal distribution.
ROUNDING_LAPLACIAN_P98 = 2.33 * math.sqrt(20.0 / 12.0)

# Share of the distance from chin to the top forehead point (mesh point 10) that the skull rises above
# that point: a typical head measures about 23 cm chin to crown and 18 cm chin to upper forehead.
CROWN_ABOVE_FOREHEAD = 0.3


# ---------------------------------------------------------------------------------------------------------------
# Colour helpers


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Convert 0..1 sRGB-encoded values to linear light."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


_LINEAR_OF_8BIT = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0).astype(np.float32)


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """Return linear-light luminance Y (0..1) of 8-bit sRGB pixels."""
    linear = _LINEAR_OF_8BIT[rgb]
    return 0.2126 * linear[..., 0] + 0.7152 * linear[..., 1] + 0.0722 * linear[..., 2]


def lightness(luminance: np.ndarray) -> np.ndarray:
    """Return CIE L* (0..100) for linear luminance."""
    return np.where(luminance > 0.008856, 116.0 * np.cbrt(luminance) - 16.0, 903.3 * luminance)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """Return CIE Lab (L 0..100, a and b about -128..127) of 8-bit sRGB pixels, D65 white."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


# ---------------------------------------------------------------------------------------------------------------
# Face regions


def polygon_mask(shape: tuple[int, int], points: np.ndarray, convex: bool = False) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    polygon = np.round(points[:, :2]).astype(np.int32)
    if convex:
        cv2.fillConvexPoly(mask, cv2.convexHull(polygon), 1)
    else:
        cv2.fillPoly(mask, [polygon], 1)
    return mask.astype(bool)


def face_masks(shape: tuple[int, int], landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (face, skin) masks: the face outline, and the same without eyes, brows, nostrils and lips."""
    face = polygon_mask(shape, landmarks[FACE_OVAL])
    not_skin = np.zeros(shape, dtype=bool)
    for region in (RIGHT_EYE_RING + RIGHT_BROW, LEFT_EYE_RING + LEFT_BROW, LIPS_OUTER, NOSTRILS):
        not_skin |= polygon_mask(shape, landmarks[region], convex=True)
    eye_distance = float(np.hypot(*(landmarks[LEFT_IRIS_CENTER, :2] - landmarks[RIGHT_IRIS_CENTER, :2])))
    margin = max(1, int(round(0.06 * eye_distance)))
    not_skin = cv2.dilate(not_skin.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0
    return face, face & ~not_skin


# ---------------------------------------------------------------------------------------------------------------
# Focus


def face_crop_box(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return the face outline's bounding box (x0, y0, x1, y1), clipped to the image."""
    height, width = shape
    x0, y0 = np.floor(landmarks[:, :2].min(axis=0)).astype(int)
    x1, y1 = np.ceil(landmarks[:, :2].max(axis=0)).astype(int)
    return max(0, x0), max(0, y0), min(width, x1 + 1), min(height, y1 + 1)


def octave_detail_ratio(gray: np.ndarray, rounding_noise: float = 1.0) -> float:
    """Return the strong detail (98th percentile of |Laplacian|) at full scale over that at half scale.

    Natural detail has about the same contrast at neighbouring scales, so a sharp crop gives about 0.5–0.7
    whatever the face and lighting. Blur removes the finest octave first, and the ratio falls towards 0.3.
    The percentile follows the strongest edges (lashes, iris rim, lip line), so film grain and sensor noise
    move it far less than a mean would. `rounding_noise` is the standard deviation of 8-bit rounding left in
    `gray`, in levels of 1/sqrt(12) (1 for a crop at its file's scale, less after averaging down). Its share is
    taken out in quadrature, because on a very blurred face it is all the fine octave contains.
    """
    gray = gray.astype(np.float32)
    fine = float(np.percentile(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), 98))
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    coarse = float(np.percentile(np.abs(cv2.Laplacian(half, cv2.CV_32F)), 98))
    fine = math.sqrt(max(0.0, fine**2 - (ROUNDING_LAPLACIAN_P98 * rounding_noise) ** 2))
    coarse = math.sqrt(max(0.0, coarse**2 - (ROUNDING_LAPLACIAN_P98 * rounding_noise / 2) ** 2))
    return fine / coarse if coarse > 1e-6 else 0.0


def face_sharpness(gray: np.ndarray, landmarks: np.ndarray, eye_distance: float) -> float:
    """Return the octave detail ratio of the face, scaled to a fixed distance between the eyes."""
    x0, y0, x1, y1 = face_crop_box(landmarks, gray.shape)
    crop = gray[y0:y1, x0:x1].astype(np.float32)  # float before resampling: 8-bit rounding would add fine "detail"
    if min(crop.shape) < 8:
        return 0.0
    factor = min(1.0, SHARPNESS_EYE_DISTANCE / max(eye_distance, 1.0))
    if factor < 1.0:
        crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return octave_detail_ratio(crop, rounding_noise=factor)


# ---------------------------------------------------------------------------------------------------------------
# Light


def exposure_measures(rgb: np.ndarray, face: np.ndarray, skin: np.ndarray) -> dict[str, float]:
    """Return the skin's median L*, the shares of the face clipped to white and crushed to black, and the face's
    highlight level (99th percentile of its linear luminance)."""
    face_rgb = rgb[face]
    skin_pixels = skin[face] if skin.sum() >= 50 else np.ones(len(face_rgb), dtype=bool)
    luminance = relative_luminance(face_rgb)
    skin_lightness = float(np.median(lightness(luminance[skin_pixels]))) if skin_pixels.any() else float("nan")
    clipped = float(np.mean(face_rgb.max(axis=1) >= 250)) if face_rgb.size else 0.0
    crushed = float(np.mean(face_rgb.max(axis=1) <= 6)) if face_rgb.size else 0.0
    return {
        "skin_lightness": skin_lightness,
        "face_clipped_pct": 100.0 * clipped,
        "face_crushed_pct": 100.0 * crushed,
        "face_highlight": float(np.percentile(luminance, 99)) if luminance.size else 0.0,
    }


# Black bars (a video frame pillarboxed or letterboxed): rows or columns at the frame's edge whose pixels
# are at most BAR_LEVEL in every channel and vary by at most BAR_SPREAD (8-bit), together at least
# BAR_MIN_SHARE of the frame's side. A dark backdrop has grain and never passes.
BAR_LEVEL, BAR_SPREAD, BAR_MIN_SHARE = 24, 2.0, 0.01


def picture_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Return (x0, y0, x1, y1): the part of an 8-bit frame (H, W, 3) inside black bars, or the whole frame.

    Frame measures and crops use this box, so a pillarboxed frame gives a banner with no black strip in it.
    """
    height, width = rgb.shape[:2]
    brightest = rgb.max(axis=2)

    def bar_lines(lines: np.ndarray) -> np.ndarray:  # (count, length) → which lines are bar
        return (lines.max(axis=1) <= BAR_LEVEL) & (lines.std(axis=1) <= BAR_SPREAD)

    def run(flags: np.ndarray) -> int:
        count = int(np.argmin(flags)) if not flags.all() else len(flags)
        return count if count >= BAR_MIN_SHARE * len(flags) else 0

    columns, rows = bar_lines(brightest.T.astype(np.float32)), bar_lines(brightest.astype(np.float32))
    x0, x1 = run(columns), width - run(columns[::-1])
    y0, y1 = run(rows), height - run(rows[::-1])
    if x1 - x0 < 0.3 * width or y1 - y0 < 0.3 * height:
        return 0, 0, width, height  # a dark frame, not bars
    return x0, y0, x1, y1


def frame_exposure_measures(rgb: np.ndarray) -> dict[str, float]:
    """Return the frame's median L*, clipped and crushed shares, and highlight level, at 512 px on the long side.

    `frame_highlight` is the 99th percentile of the frame's linear luminance. A frame exposed 2 stops too dark
    has nothing above 25 % of white. A correctly exposed one nearly always has a white collar, a catchlight
    or a bright backdrop far above that, whatever the subject's skin tone.
    """
    rgb = downscale(rgb, 512)
    luminance = relative_luminance(rgb)
    peak = rgb.max(axis=2)
    return {
        "frame_lightness": float(np.median(lightness(luminance))),
        "frame_clipped_pct": 100.0 * float(np.mean(peak >= 250)),
        "frame_crushed_pct": 100.0 * float(np.mean(peak <= 6)),
        "frame_highlight": float(np.percentile(luminance, 99)),
    }


def color_cast(rgb: np.ndarray) -> tuple[float, float]:
    """Return the mean a* and b* of the frame's most neutral pixels (about 0, 0 when the white balance is right).

    Objects that are grey, white or black in the scene are the least coloured pixels of a frame, and a cast
    shifts exactly them. Taking only the tenth of mid-tone pixels with the lowest chroma leaves saturated
    subject colours (a red curtain, skin) out.
    """
    small = downscale(rgb, 256)
    lab = to_lab(small).reshape(-1, 3)
    usable = lab[(lab[:, 0] > 15) & (lab[:, 0] < 97)]
    if len(usable) < 100:
        return 0.0, 0.0
    chroma = np.hypot(usable[:, 1], usable[:, 2])
    neutral = usable[chroma <= np.percentile(chroma, 10)]
    return float(neutral[:, 1].mean()), float(neutral[:, 2].mean())


# ---------------------------------------------------------------------------------------------------------------
# Noise and compression


def noise_level(gray: np.ndarray, region: np.ndarray | None = None) -> float:
    """Return the noise standard deviation in 8-bit levels, from the flattest parts of `region`.

    The kernel below cancels any locally linear gradient, so in flat areas its output is noise alone. The median
    absolute value over the flattest third of pixels, scaled for a Gaussian, gives sigma. It reads about 0.7 of
    the true sigma, because the flattest pixels are partly those where the noise happens to be low.
    """
    if region is not None:
        gray, region = _crop_to_region(gray, region, margin=4)
    gray = gray.astype(np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = np.abs(cv2.filter2D(gray, cv2.CV_32F, kernel))
    gradient = cv2.GaussianBlur(
        np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)), (0, 0), 2.0
    )
    valid = np.zeros(gray.shape, dtype=bool)
    valid[2:-2, 2:-2] = True
    lit = (gray > 12) & (gray < 243)  # clipped areas carry no noise
    valid &= lit
    if region is not None:
        valid &= region
    if valid.sum() < 200:
        return 0.0
    flat = valid & (gradient <= np.percentile(gradient[valid], 33))
    return float(np.median(response[flat]) * 1.4826 / 6.0)


def blockiness(gray: np.ndarray) -> float:
    """Return how much more often the pixel steps peak on one 8-pixel grid phase than on the others (1 = no grid).

    JPEG codes 8×8 blocks independently, so compression leaves a step at every block edge that is larger than
    the steps beside it. In natural detail such local peaks are spread evenly over all phases. Counting peaks
    rather than summing steps keeps strong edges from drowning the grid. The strongest phase is taken in each
    direction, so a crop or an EXIF rotation does not matter, but resampling does: measure at the file's own scale.
    """
    gray = gray.astype(np.float32)
    ratios = []
    for steps in (np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0)).T):
        if steps.shape[1] < 34:
            continue
        peaks = (steps[:, 1:-1] > steps[:, :-2] + 0.5) & (steps[:, 1:-1] > steps[:, 2:] + 0.5)
        per_column = peaks.mean(axis=0)
        phases = np.array([per_column[phase::8].mean() for phase in range(8)])
        strongest = int(np.argmax(phases))
        others = np.delete(phases, strongest)
        ratios.append(float(phases[strongest] / max(np.mean(others), 1e-4)))
    return float(np.mean(ratios)) if ratios else 1.0


# ---------------------------------------------------------------------------------------------------------------
# Pose, eyes, mouth


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Return (yaw, pitch, roll) in degrees from the mesh's own 3D points.

    Roll is the angle of the line through the iris centres in the image (positive: the subject's left eye,
    on the image right, sits lower). Yaw and pitch come from the normal of the plane spanned by the eye line
    and the chin-to-forehead line in the mesh's 3D coordinates. Yaw is positive when the face turns towards
    the image right, and pitch is positive when the chin lifts. A frontal face reads a pitch of about -5°,
    because the mesh puts the forehead point slightly behind the chin.
    """
    right_eye, left_eye = landmarks[RIGHT_IRIS_CENTER], landmarks[LEFT_IRIS_CENTER]
    roll = float(np.degrees(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])))

    across = (landmarks[LEFT_EYE_OUTER] - landmarks[RIGHT_EYE_OUTER]).astype(np.float64)
    upward = (landmarks[FOREHEAD_TOP] - landmarks[CHIN]).astype(np.float64)
    normal = np.cross(across, upward)
    normal /= max(np.linalg.norm(normal), 1e-9)
    # Image axes: x right, y down, z away from the camera, so a frontal face's normal is (0, 0, -1).
    yaw = float(np.degrees(np.arctan2(normal[0], -normal[2])))
    pitch = float(np.degrees(np.arctan2(-normal[1], np.hypot(normal[0], normal[2]))))
    return yaw, pitch, roll


def eye_openness(landmarks: np.ndarray) -> tuple[float, float]:
    """Return the eye aspect ratio (lid gap over eye width) of the subject's right and left eye.

    An open eye measures about 0.25–0.35, a closed one under 0.12.
    """

    def aspect_ratio(outer: int, inner: int, lids: list[tuple[int, int]]) -> float:
        width = np.hypot(*(landmarks[outer, :2] - landmarks[inner, :2]))
        gaps = [np.hypot(*(landmarks[upper, :2] - landmarks[lower, :2])) for upper, lower in lids]
        return float(np.mean(gaps) / width) if width > 0 else 0.0

    return (
        aspect_ratio(RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_LIDS),
        aspect_ratio(LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_LIDS),
    )


def mouth_measures(landmarks: np.ndarray) -> tuple[float, float]:
    """Return (openness, smile): the inner lip gap over the mouth width, and how far the corners rise.

    The smile measure is the height of the mouth corners above the centre of the lips, as a share of the
    mouth width. It is measured along the face's own vertical, so a tilted head does not read as a smile.
    A relaxed mouth gives about 0, a clear smile 0.1 or more.
    """
    right_corner, left_corner = landmarks[MOUTH_RIGHT_CORNER, :2], landmarks[MOUTH_LEFT_CORNER, :2]
    upper, lower = landmarks[UPPER_LIP_INNER, :2], landmarks[LOWER_LIP_INNER, :2]
    width = float(np.hypot(*(left_corner - right_corner)))
    if width <= 0:
        return 0.0, 0.0
    openness = float(np.hypot(*(lower - upper))) / width

    across = landmarks[LEFT_IRIS_CENTER, :2] - landmarks[RIGHT_IRIS_CENTER, :2]
    across = across / max(np.linalg.norm(across), 1e-9)
    down = np.array([-across[1], across[0]])
    lip_centre = (upper + lower) / 2
    corner_rise = float(np.dot(lip_centre - (right_corner + left_corner) / 2, down))
    return openness, corner_rise / width


def crown_point(landmarks: np.ndarray) -> np.ndarray:
    """Return the estimated top of the skull (x, y), above the forehead along the face's own vertical."""
    forehead, chin = landmarks[FOREHEAD_TOP, :2], landmarks[CHIN, :2]
    return forehead + CROWN_ABOVE_FOREHEAD * (forehead - chin)


# ---------------------------------------------------------------------------------------------------------------
# Backdrop


def backdrop_clutter(rgb: np.ndarray, person: np.ndarray) -> float:
    """Return the share (0..1) of backdrop pixels on an edge, at 512 pixels on the long side.

    A plain or out-of-focus backdrop has almost no edges at this scale; flags, shelves and crowds do.
    The person is widened a little so the hair and shoulder outline does not count.
    """
    small = downscale(rgb, 512)
    person_small = cv2.resize(person, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5
    person_small = cv2.dilate(person_small.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    backdrop = ~person_small
    if backdrop.sum() < 0.05 * backdrop.size:
        return 0.0
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.0), 40, 100) > 0
    return float(edges[backdrop].mean())


# ---------------------------------------------------------------------------------------------------------------
# Near-duplicates


def perceptual_hash(rgb: np.ndarray) -> int:
    """Return a 64-bit DCT hash of the frame: the signs of its 8×8 lowest frequencies against their median.

    Blur, exposure, compression and scaling leave it nearly unchanged; another pose or framing does not.
    """
    gray = cv2.cvtColor(downscale(rgb, 256), cv2.COLOR_RGB2GRAY).astype(np.float32)
    thumbnail = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
    thumbnail = (thumbnail - thumbnail.mean()) / max(float(thumbnail.std()), 1e-3)
    low = cv2.dct(thumbnail)[:8, :8].flatten()[1:]
    bits = low > np.median(low)
    return int(sum(1 << index for index, bit in enumerate(bits) if bit))


def hash_distance(first: int, second: int) -> int:
    return bin(first ^ second).count("1")


def _crop_to_region(image: np.ndarray, region: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    if len(rows) == 0:
        return image, region
    y0, y1 = max(0, rows[0] - margin), min(image.shape[0], rows[-1] + margin + 1)
    x0, x1 = max(0, columns[0] - margin), min(image.shape[1], columns[-1] + margin + 1)
    return image[y0:y1, x0:x1], region[y0:y1, x0:x1]


def downscale(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Return the image reduced to `long_side` pixels on its long side, or itself when it is no larger."""
    factor = long_side / max(rgb.shape[:2])
    if factor >= 1:
        return rgb
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
