"""Person matte for backdrop replacement: a coarse mask from mediapipe's selfie segmentation, refined to hair detail.

The coarse mask comes from a 256-pixel model, so its edge is moved onto the picture's colour edge at a working
resolution, and a fast guided filter (He and Sun, 2015) carries the result to full resolution, so edges and
hair strands follow the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F

from .device import channel_norm
from .faces import CHIN, LEFT_FACE_EDGE, RIGHT_FACE_EDGE, Face
from .models import shared_segmenter

SEGMENTATION_LONG_SIDE = 512  # the model itself works at 256×256, so more only costs time
WORK_LONG_SIDE = 1024  # where the guided filter fits its colour model
EDGE_BAND = 0.012  # of the working long side: how far the segmentation's edge may be off
COLOUR_SEPARATION = 0.08  # RGB distance at which subject and backdrop colours count as clearly different
GUIDED_EPS = 1e-4
# The segmentation's soft edge spans several of its 256 pixels; steepening it before the guided filter keeps
# flat backdrop next to the subject from inheriting that blur as a faint halo.
COARSE_CONTRAST = 3.0
# The ear zones beside each cheek: half-axes in face widths and eye-to-chin lengths. Ear skin is within
# EAR_CHROMA_DISTANCE robust deviations of the face's chromaticity and scored EAR_MIN_SCORE by the segmentation.
# It may be as dark as EAR_MIN_BRIGHTNESS of the face, because a hollow is in shade. Stripes thinner than
# EAR_OPENING face widths are a backdrop's pattern.
EAR_WIDTH, EAR_HEIGHT = 0.14, 0.38
EAR_CHROMA_DISTANCE, EAR_MIN_BRIGHTNESS, EAR_MIN_SCORE, EAR_OPENING = 3.0, 0.35, 0.35, 0.02
EAR_EDGE = 0.02  # of the face width: the ears' rim left to the colour model
# The rim of the mesh's outline, in face widths, where pixels nearer the backdrop's colour than the skin's (by
# the factor HULL_RIM_MARGIN) are not held solid.
HULL_RIM, HULL_RIM_MARGIN = 0.06, 2.5
# Partial alpha farther than STRAY_REACH face widths from the matte's core fades to 0 over STRAY_FADE more.
STRAY_REACH, STRAY_FADE = 0.06, 0.04
SUPPORT_MARGIN = 0.035  # of the face width: how far past the coarse mask a strand of hair may reach
MIN_PART_AREA = 0.2  # a detached blob is kept when it has this fraction of the largest person's area
# Kept inside the real skull: the ellipse's half-axes as fractions of half the face width and eye-to-chin.
SKULL_WIDTH, SKULL_HEIGHT = 0.92, 0.85
# Hair: within the skull's ellipse grown by this factor, the model's sure person (score at least HAIR_SURE_SCORE) is
# kept as subject whatever its colour.
HAIR_ZONE_GROWTH, HAIR_SURE_SCORE = 1.2, 0.9
ALPHA_FLOOR, ALPHA_CEILING = 0.02, 0.98  # snapped to 0 and 1, so a replaced backdrop stays clean
BACKDROP_BAND = 0.04  # of the working long side: how far past the subject the segmentation may reach into backdrop
PALETTE_SIZE = 12  # colour clusters for the local subject and backdrop colour histograms
HISTOGRAM_GRID = 8  # the local histograms are counted on a grid with this many cells per window radius
DECONTAMINATION_REACH = 0.25  # how far a decontaminated edge colour may move from the local subject colour
DECONTAMINATION_CHROMA = 0.04  # how much more saturated than the local subject colour it may become
BAND_TILE = 8  # working pixels per side of the tiles that cover the subject's edge at full resolution

def person_matte(image: torch.Tensor, faces: list[Face] | None = None, bystanders: list[Face] | None = None) -> torch.Tensor:
    """Return the matte (1, H, W) of the people in `image` (3, H, W): 1 on the subject, 0 on the backdrop.

    `faces`, in pixels of `image`, are always foreground and decide which detached blobs are people. A blob that
    contains only `bystanders` (other people in the frame) is backdrop, and one that contains a face as well stays.
    """
    channels, height, width = image.shape
    faces = faces or []

    # 1. Coarse probability from the segmentation model, brought to the working resolution.
    work_scale = min(1.0, WORK_LONG_SIDE / max(height, width))
    work_size = (max(1, round(height * work_scale)), max(1, round(width * work_scale)))
    guide = _resize(image[:3], work_size)
    coarse = _resize(_segment(guide), work_size).clamp_(0, 1)

    # 2. Faces are foreground whatever the model scores; so is hair around the skull where the model is sure.
    face_width = _typical_face_width(faces) * work_scale
    face_masks = []
    sure_hair = torch.zeros_like(coarse)
    for face in faces:
        hull = _trimmed_hull(face, work_scale, guide, _face_mask(face, work_scale, work_size), coarse)
        solid = torch.maximum(hull, _skull_mask(face, work_scale, work_size))
        face_masks.append(torch.maximum(solid, _ear_mask(face, work_scale, guide, hull, coarse)))
        hair_zone = _skull_mask(face, work_scale, work_size, HAIR_ZONE_GROWTH)
        torch.maximum(sure_hair, hair_zone * (coarse >= HAIR_SURE_SCORE), out=sure_hair)
    for face_mask in face_masks:
        coarse = torch.maximum(coarse, face_mask.to(coarse.device))

    # 3. Keep the people and drop blobs elsewhere in the frame (a chair, a poster face).
    margin = max(2.0, SUPPORT_MARGIN * (face_width if face_width > 0 else 0.25 * min(work_size)))
    others = [_face_mask(face, work_scale, work_size) for face in bystanders or []]
    support = _subject_support(coarse, face_masks, margin, others)
    coarse = coarse * support
    if faces:
        chin_row = max(
            float(face.landmarks[CHIN, 1]) if face.landmarks is not None else face.box[1] + face.box[3]
            for face in faces + list(bystanders or [])
        )
        coarse = _drop_backdrop_colours(
            guide, coarse, faces_solid_from(face_masks, coarse), band=BACKDROP_BAND * max(work_size), last_row=round(chin_row * work_scale)
        )

    # 4. Put the edge where the colours change, then steepen what stays uncertain. Grey hair before a pale window
    #    shares the window's colours, so the colour steps would take it away; where the model was sure, it stays.
    coarse = _snap_to_colour_edges(guide, coarse, band=max(2.0, EDGE_BAND * max(work_size)))
    coarse = ((coarse - 0.5) * COARSE_CONTRAST + 0.5).clamp_(0, 1)
    torch.maximum(coarse, sure_hair * support, out=coarse)

    # 5. Fit the local colour model at working resolution. The support and the guide's centring fold into
    #    the coefficients, so applying them to a pixel is three multiply-adds.
    radius = max(2, round(max(work_size) / 128))
    slope, offset = guided_coefficients(guide - 0.5, coarse, radius, GUIDED_EPS)
    offset = offset - 0.5 * slope.sum(0, keepdim=True)
    coefficients = torch.cat([slope, offset]) * support
    faces_solid = torch.zeros_like(coarse)
    for face_mask in face_masks:
        torch.maximum(faces_solid, face_mask.to(coarse.device), out=faces_solid)
    small_matte = _apply_coefficients(coefficients, guide)
    if face_width > 0:
        coefficients = coefficients * _stray_fade(torch.maximum(small_matte, faces_solid), face_width)
        small_matte = _apply_coefficients(coefficients, guide)
    torch.maximum(small_matte, (faces_solid > 0.5).to(small_matte.dtype), out=small_matte)
    if work_scale == 1.0:
        return small_matte

    # 6. At full resolution the matte is exactly 0 or 1 away from the subject's edge; only the band where
    #    the working matte is partly transparent (grown by two working pixels) is refined from the picture.
    band = grown_mask((small_matte[0] > 0) & (small_matte[0] < 1), 2)
    matte = F.interpolate(small_matte[None], size=(height, width), mode="nearest")[0]
    rows, columns = box_pixels(band_rectangles(band, (height, width)), device=matte.device)
    refined = _apply_coefficients(sample_smooth_at(coefficients, rows, columns, (height, width)), image[:3, rows, columns])
    solid = sample_smooth_at(faces_solid, rows, columns, (height, width)) > 0.5
    matte[0, rows, columns] = torch.maximum(refined, solid.to(refined.dtype))[0]
    return matte


def _apply_coefficients(coefficients: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Return slope · colour + offset (1, h, w), clamped and snapped to 0 and 1 near the ends."""
    matte = coefficients[3:4].clone()
    for channel in range(3):
        matte.addcmul_(coefficients[channel : channel + 1], colour[channel : channel + 1])
    matte.clamp_(0, 1)
    matte.masked_fill_(matte < ALPHA_FLOOR, 0.0)
    matte.masked_fill_(matte > ALPHA_CEILING, 1.0)
    return matte


def band_rectangles(band: torch.Tensor, full_size: tuple[int, int], tile: int = BAND_TILE) -> list[tuple[int, int, int, int]]:
    """Return disjoint full-resolution boxes (top, bottom, left, right) covering the True pixels of a small mask (h, w).

    The small mask is cut into tiles of `tile` pixels; each row of tiles gives one box per run of marked
    tiles. A full-resolution pixel belongs to the small pixel that nearest-neighbour enlarging takes it
    from, so the boxes tile the frame without overlap: work done box by box, such as adding a light wrap,
    is done once per pixel.
    """
    small_height, small_width = band.shape
    height, width = full_size
    rows_of_tiles = math.ceil(small_height / tile)
    columns_of_tiles = math.ceil(small_width / tile)
    padded = F.pad(band[None, None].float(), (0, columns_of_tiles * tile - small_width, 0, rows_of_tiles * tile - small_height))
    marked = (F.max_pool2d(padded, kernel_size=tile)[0, 0] > 0).cpu().numpy()

    def full_row(small_row: int) -> int:
        return min(height, math.ceil(min(small_row, small_height) * height / small_height))

    def full_column(small_column: int) -> int:
        return min(width, math.ceil(min(small_column, small_width) * width / small_width))

    boxes = []
    for tile_row in range(rows_of_tiles):
        columns = np.flatnonzero(marked[tile_row])
        if len(columns) == 0:
            continue
        breaks = np.flatnonzero(np.diff(columns) > 1)
        starts = np.concatenate([[columns[0]], columns[breaks + 1]])
        ends = np.concatenate([columns[breaks], [columns[-1]]]) + 1
        top, bottom = full_row(tile_row * tile), full_row((tile_row + 1) * tile)
        for start, end in zip(starts, ends):
            left, right = full_column(int(start) * tile), full_column(int(end) * tile)
            if bottom > top and right > left:
                boxes.append((top, bottom, left, right))
    return boxes


def box_pixels(boxes: list[tuple[int, int, int, int]], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the rows and columns (N,) of every pixel in the disjoint boxes (top, bottom, left, right), box by box.

    Work done on these pixels at once replaces a loop over the boxes: one large operation in place of hundreds of small ones.
    """
    if not boxes:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    tops, bottoms, lefts, rights = (np.array(values, dtype=np.int64) for values in zip(*boxes))
    widths, heights = rights - lefts, bottoms - tops
    counts = widths * heights
    # Each pixel's index within its box, then its row and column from the box's width.
    first = np.repeat(np.cumsum(counts) - counts, counts)
    within = np.arange(int(counts.sum()), dtype=np.int64) - first
    box_width = np.repeat(widths, counts)
    rows = np.repeat(tops, counts) + within // box_width
    columns = np.repeat(lefts, counts) + within % box_width
    return torch.from_numpy(rows).to(device), torch.from_numpy(columns).to(device)


def sample_smooth_at(small: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, full_size: tuple[int, int]) -> torch.Tensor:
    """Return `small` (C, h, w) enlarged bilinearly to `full_size`, at the pixels (rows, columns) only: (C, N).

    The values equal those of enlarging the whole with F.interpolate(mode="bilinear", align_corners=False).
    """
    height, width = full_size
    x = (columns.to(torch.float32) + 0.5) / width * 2 - 1
    y = (rows.to(torch.float32) + 0.5) / height * 2 - 1
    grid = torch.stack([x, y], dim=-1).view(1, 1, -1, 2).to(small.dtype)
    return F.grid_sample(small[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0]


@dataclass(frozen=True)
class EdgeColours:
    """The local subject and backdrop colours along a matte's edge, from `edge_colours`."""

    estimates: torch.Tensor  # (6, h, w) at working resolution: subject RGB, then backdrop RGB
    boxes: list[tuple[int, int, int, int]]  # full-resolution boxes (top, bottom, left, right) covering the edge


def edge_colours(image: torch.Tensor, matte: torch.Tensor) -> EdgeColours:
    """Estimate the subject's and the backdrop's own colours around the matte's partly transparent edge.

    Blur-fusion (Forte and Pitié, 2021): matte-weighted blurs, a wide pass and then a narrow one seeded with it.
    The colours change slowly, so they are estimated at the working resolution.
    """
    channels, height, width = image.shape
    colour = image[:3]

    # 1. Blurs are low-frequency, so they run at the working resolution.
    work_scale = min(1.0, WORK_LONG_SIDE / max(height, width))
    work_size = (max(1, round(height * work_scale)), max(1, round(width * work_scale)))
    small_colour = _resize(colour, work_size)
    small_alpha = _resize(matte, work_size).clamp(0, 1)
    long_side = max(work_size)

    # 2. A wide pass, then a narrow one seeded with the wide pass's estimates.
    foreground, background = small_colour, small_colour
    for radius in (max(3, round(long_side / 11)), max(1, round(long_side / 170))):
        foreground_blur, background_blur = _fusion_blurs(foreground, background, small_alpha, radius)
        residual = small_colour - small_alpha * foreground_blur - (1 - small_alpha) * background_blur
        foreground = (foreground_blur + small_alpha * residual).clamp(0, 1)
        background = (background_blur + (1 - small_alpha) * residual).clamp(0, 1)

    # 3. The full-resolution boxes around the edge (grown by a working pixel).
    band = (small_alpha[0] > 1e-5) & (small_alpha[0] < 1 - 1e-5)  # area averages of 0 and 1 round by ~1e-7
    band = grown_mask(band, 1)
    boxes = [(0, height, 0, width)] if work_scale == 1.0 else band_rectangles(band, (height, width))
    return EdgeColours(torch.cat([foreground_blur, background_blur]), boxes)


def decontaminate(image: torch.Tensor, matte: torch.Tensor, edge: EdgeColours | None = None) -> torch.Tensor:
    """Return the subject's own colours, with the old backdrop's colour removed from partly transparent pixels.

    Each edge pixel is moved towards the local subject colour so that, over the local backdrop colour, it
    still composes to the observed colour. `edge` may come from an earlier `edge_colours` of the same matte
    over a frame with the same backdrop, such as the frame before its retouch. Pixels with matte 0 or 1 keep
    their exact values.
    """
    height, width = image.shape[-2:]
    edge = edge if edge is not None else edge_colours(image, matte)
    result = image.clone()
    rows, columns = box_pixels(edge.boxes, device=image.device)
    alpha = matte[0, rows, columns]
    in_between = (alpha > 0) & (alpha < 1)
    rows, columns, alpha = rows[in_between], columns[in_between], alpha[in_between][None]
    sampled = sample_smooth_at(edge.estimates, rows, columns, (height, width))
    foreground_at, background_at = sampled[:3], sampled[3:]
    observed = image[:3, rows, columns]
    residual = observed - background_at - alpha * (foreground_at - background_at)
    result[:3, rows, columns] = _plausible_foreground(foreground_at + alpha * residual, foreground_at)
    return result


def grown_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Return the boolean (h, w) `mask` grown by `radius` pixels in every direction (a square dilation)."""
    import cv2

    size = 2 * radius + 1
    grown = cv2.dilate(mask.cpu().numpy().astype(np.uint8), np.ones((size, size), np.uint8))
    return torch.from_numpy(grown > 0).to(mask.device)


def _plausible_foreground(corrected: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """Keep a decontaminated colour near the local subject colour `foreground` (3, h, w), and no more saturated.

    Where the backdrop estimate is off (a gold curtain behind pale hair), removing it overshoots into the
    opposite hue: white hair turns cyan. The colour may move at most DECONTAMINATION_REACH from the local
    subject colour, and its distance from grey may exceed the subject's own by DECONTAMINATION_CHROMA only.
    """
    corrected = foreground + (corrected - foreground).clamp(-DECONTAMINATION_REACH, DECONTAMINATION_REACH)
    grey = corrected.mean(0, keepdim=True)
    chroma = corrected - grey
    allowed = channel_norm(foreground - foreground.mean(0, keepdim=True)) + DECONTAMINATION_CHROMA
    length = channel_norm(chroma)
    chroma = chroma * (allowed / length.clamp_min(1e-6)).clamp(max=1.0)
    return (grey + chroma).clamp_(0, 1)


def guided_coefficients(
    guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit source ≈ slope · guide + offset in every (2r+1)² window; return the window-averaged slope (3, H, W) and offset (1, H, W).

    Applying them to a larger copy of the guide (same offset subtracted) is the fast guided filter.
    """
    # 1. Window means and the guide's 3×3 covariance per pixel.
    mean_guide = box_mean(guide, radius)
    mean_source = box_mean(source, radius)
    covariance_gs = box_mean(guide * source, radius) - mean_guide * mean_source
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    products = torch.stack([guide[i] * guide[j] for i, j in pairs])
    variance = box_mean(products, radius) - torch.stack([mean_guide[i] * mean_guide[j] for i, j in pairs])
    rr, rg, rb, gg, gb, bb = variance
    rr, gg, bb = rr + eps, gg + eps, bb + eps

    # 2. Solve the regularised 3×3 systems in closed form (the inverse by cofactors).
    inv_rr = gg * bb - gb * gb
    inv_rg = gb * rb - rg * bb
    inv_rb = rg * gb - gg * rb
    inv_gg = rr * bb - rb * rb
    inv_gb = rb * rg - rr * gb
    inv_bb = rr * gg - rg * rg
    determinant = rr * inv_rr + rg * inv_rg + rb * inv_rb
    cov_r, cov_g, cov_b = covariance_gs
    slope = torch.stack(
        [
            inv_rr * cov_r + inv_rg * cov_g + inv_rb * cov_b,
            inv_rg * cov_r + inv_gg * cov_g + inv_gb * cov_b,
            inv_rb * cov_r + inv_gb * cov_g + inv_bb * cov_b,
        ]
    ) / determinant
    offset = mean_source - (slope * mean_guide).sum(0, keepdim=True)

    # 3. Average the coefficients of every window that covers a pixel.
    return box_mean(slope, radius), box_mean(offset, radius)


def box_mean(values: torch.Tensor, radius: int) -> torch.Tensor:
    """Return the mean over a (2r+1)² window of each pixel of (C, H, W), with the window cut at the borders.

    Cumulative sums over a zero-padded copy make the cost independent of the radius. On the CPU OpenCV's
    running-sum box filter does the same several times faster.
    """
    if values.device.type == "cpu" and values.dtype == torch.float32 and values.dim() >= 2:
        return _box_mean_opencv(values, radius)
    result = values
    for dim in (-2, -1):
        size = result.shape[dim]
        window = 2 * radius + 1
        padding = [0, 0] * (-dim - 1) + [radius + 1, radius]
        integral = torch.cumsum(F.pad(result, padding), dim=dim)
        window_sum = integral.narrow(dim, window, size) - integral.narrow(dim, 0, size)
        index = torch.arange(size, device=values.device)
        count = (index + radius + 1).clamp(max=size) - (index - radius).clamp(min=0)
        shape = [1] * result.dim()
        shape[dim] = size
        result = window_sum / count.to(values.dtype).view(shape)
    return result


def _box_mean_opencv(values: torch.Tensor, radius: int) -> torch.Tensor:
    import cv2

    # 1. Window sums with zeros past the border, plane by plane.
    height, width = values.shape[-2:]
    planes = values.detach().reshape(-1, height, width)
    sums = torch.empty(planes.shape, dtype=torch.float32)
    window = 2 * radius + 1
    for index, plane in enumerate(planes):
        cv2.boxFilter(np.ascontiguousarray(plane.numpy()), -1, (window, window), dst=sums[index].numpy(), normalize=False,
                      borderType=cv2.BORDER_CONSTANT)

    # 2. Divide by the number of pixels each window holds inside the image.
    rows, columns = torch.arange(height), torch.arange(width)
    count_y = (rows + radius + 1).clamp(max=height) - (rows - radius).clamp(min=0)
    count_x = (columns + radius + 1).clamp(max=width) - (columns - radius).clamp(min=0)
    sums.div_((count_y.view(-1, 1) * count_x.view(1, -1)).to(torch.float32))
    return sums.reshape(values.shape)


def _fusion_blurs(foreground, background, alpha, radius):
    weight_sum = box_mean(alpha, radius).clamp_min(1e-5)
    foreground_blur = box_mean(foreground * alpha, radius) / weight_sum
    background_weight = box_mean(1 - alpha, radius).clamp_min(1e-5)
    background_blur = box_mean(background * (1 - alpha), radius) / background_weight
    return foreground_blur, background_blur


def _segment(image: torch.Tensor) -> torch.Tensor:
    """Run the selfie segmentation on a small 8-bit copy; return its probability (1, h, w) on the image's device."""
    height, width = image.shape[-2:]
    scale = min(1.0, SEGMENTATION_LONG_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = _resize(image[:3], size).clamp(0, 1).mul(255).round().to(torch.uint8)
    rgb = np.ascontiguousarray(small.permute(1, 2, 0).cpu().numpy())

    probability = torch.from_numpy(shared_segmenter().person_mask(rgb))
    return probability[None].to(image.device)


def faces_solid_from(face_masks: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Return the union (1, h, w) of the face masks, zeros when there are none."""
    solid = torch.zeros_like(like)
    for face_mask in face_masks:
        torch.maximum(solid, face_mask.to(like.device), out=solid)
    return solid


def _drop_backdrop_colours(
    guide: torch.Tensor, coarse: torch.Tensor, faces_solid: torch.Tensor, band: float, last_row: int
) -> torch.Tensor:
    """Lower the coarse mask where its colour is common in the backdrop nearby and rare on the subject nearby.

    The segmentation model sees the frame at 256 pixels and often carries the subject's outline a few of
    those pixels into the backdrop: a window pane beside an ear, light behind the hair. Within `band`
    pixels of its edge, each pixel's colour cluster is looked up in local colour histograms of the sure
    subject and the sure backdrop, and the mask becomes at most the Bayesian posterior with the mask as
    prior. A colour seen on both sides leaves the mask as it was. Only the head, down to `last_row` (the
    chin), is checked: the neck in shadow shares colours with dark backdrops.
    """
    import cv2

    # 1. A small palette of the colours around the edge.
    solid = (coarse[0] > 0.5).cpu().numpy().astype(np.uint8)
    inside = cv2.distanceTransform(solid, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - solid, cv2.DIST_L2, 5)
    near_edge = (inside < 2 * band) & (outside < 2 * band)
    near_edge[max(0, last_row) :] = False
    pixels = guide.permute(1, 2, 0).cpu().numpy()
    samples = pixels[near_edge]
    if len(samples) < 4 * PALETTE_SIZE:
        return coarse
    step = max(1, len(samples) // 20000)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    cv2.setRNGSeed(7)
    _, _, centres = cv2.kmeans(np.ascontiguousarray(samples[::step]), PALETTE_SIZE, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    scores = pixels.reshape(-1, 3) @ (2 * centres.T) - (centres * centres).sum(1)
    labels = torch.from_numpy(scores.argmax(1).reshape(pixels.shape[:2]))

    # 2. Local histograms of the sure subject (deep inside the mask or on a face) and the sure backdrop.
    #    They change slowly across their wide window, so they are counted on a grid `shrink` times coarser.
    radius = max(2, round(3 * band))
    shrink = max(1, radius // HISTOGRAM_GRID)
    sure_subject = (inside > band) | (faces_solid[0].cpu().numpy() > 0.5)
    sure_backdrop = outside > 0.25 * band
    local = box_mean(_cell_histograms(labels.numpy(), sure_subject, sure_backdrop, shrink), max(1, round(radius / shrink)))

    # 3. The posterior of each pixel's own cluster near the edge, trusted only where both sides were seen.
    rows, columns = np.nonzero(near_edge)
    own = labels[rows, columns].long()
    cell_rows, cell_columns = torch.from_numpy(rows // shrink), torch.from_numpy(columns // shrink)
    subject_weight, backdrop_weight = local[0, cell_rows, cell_columns], local[1, cell_rows, cell_columns]
    subject_likelihood = local[2 + own, cell_rows, cell_columns] / subject_weight.clamp_min(1e-4) + 0.02
    backdrop_likelihood = local[2 + PALETTE_SIZE + own, cell_rows, cell_columns] / backdrop_weight.clamp_min(1e-4) + 0.02
    lowered = coarse.cpu().clone()
    mask_at = lowered[0, rows, columns]
    prior = 0.1 + 0.8 * mask_at  # the model's score near its own edge is overconfident
    posterior = subject_likelihood * prior / (subject_likelihood * prior + backdrop_likelihood * (1 - prior)).clamp_min(1e-6)
    trusted = (subject_weight > 0.02) & (backdrop_weight > 0.02) & (faces_solid[0].cpu()[rows, columns] < 0.5)
    lowered[0, rows, columns] = torch.where(trusted, torch.minimum(mask_at, posterior), mask_at)
    return lowered.to(coarse.device)


def _cell_histograms(labels: np.ndarray, subject: np.ndarray, backdrop: np.ndarray, shrink: int) -> torch.Tensor:
    """Return, per grid cell of `shrink`² pixels, the shares of sure subject and sure backdrop, then each colour
    cluster's share on either side: (2 + 2·PALETTE_SIZE, ceil(h / shrink), ceil(w / shrink)).

    A cell at the far edge is averaged over the pixels inside the image.
    """
    height, width = labels.shape
    rows, columns = -(-height // shrink), -(-width // shrink)
    cell = ((np.arange(height) // shrink)[:, None] * columns + (np.arange(width) // shrink)[None, :]).ravel()
    cells = rows * columns
    pixels = np.bincount(cell, minlength=cells).astype(np.float32)
    planes = np.empty((2 + 2 * PALETTE_SIZE, cells), dtype=np.float32)
    keyed = cell * PALETTE_SIZE + labels.ravel()
    for side, (mask, first) in enumerate(((subject.ravel(), 2), (backdrop.ravel(), 2 + PALETTE_SIZE))):
        planes[side] = np.bincount(cell[mask], minlength=cells)
        planes[first : first + PALETTE_SIZE] = np.bincount(keyed[mask], minlength=cells * PALETTE_SIZE).reshape(cells, PALETTE_SIZE).T
    planes /= pixels
    return torch.from_numpy(planes.reshape(-1, rows, columns))


def _face_mask(face: Face, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """Rasterise the face (the mesh's convex hull, else an ellipse in its box) at `scale` into a (1, h, w) mask."""
    import cv2

    mask = np.zeros(size, dtype=np.uint8)
    if face.landmarks is not None:
        hull = cv2.convexHull((face.landmarks[:, :2] * scale).astype(np.float32))
        cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    else:
        x, y, box_width, box_height = (value * scale for value in face.box)
        center = (round(x + box_width / 2), round(y + box_height / 2))
        axes = (max(1, round(0.45 * box_width)), max(1, round(0.5 * box_height)))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 1, thickness=-1)
    return torch.from_numpy(mask.astype(np.float32))[None]


def _skull_mask(face: Face, scale: float, size: tuple[int, int], growth: float = 1.0) -> torch.Tensor:
    """Rasterise the upper half of the skull, from the eye line to just below the crown, into a (1, h, w) mask.

    `growth` enlarges the ellipse's axes by that factor.

    Hair over the temples and the crown often gets a weak score from the segmentation model, although it is
    always subject. On adult heads the eye line sits about halfway between chin and crown.
    """
    import cv2

    mask = np.zeros(size, dtype=np.uint8)
    if face.landmarks is None:
        return torch.from_numpy(mask.astype(np.float32))[None]
    points = face.landmarks[:, :2] * scale
    right_eye, left_eye = (eye * scale for eye in face.eye_centers)
    eye_line = left_eye - right_eye
    roll = float(np.degrees(np.arctan2(eye_line[1], eye_line[0])))
    center = (points[RIGHT_FACE_EDGE] + points[LEFT_FACE_EDGE]) / 2
    half_width = float(np.hypot(*(points[LEFT_FACE_EDGE] - points[RIGHT_FACE_EDGE]))) / 2
    eye_to_chin = float(np.hypot(*(points[CHIN] - (right_eye + left_eye) / 2)))
    axes = (max(1, round(growth * SKULL_WIDTH * half_width)), max(1, round(growth * SKULL_HEIGHT * eye_to_chin)))
    cv2.ellipse(mask, (round(center[0]), round(center[1])), axes, roll, 180, 360, 1, thickness=-1)
    return torch.from_numpy(mask.astype(np.float32))[None]


def _stray_fade(matte: torch.Tensor, face_width: float) -> torch.Tensor:
    """Return a (1, h, w) factor that fades partial alpha out from STRAY_REACH to STRAY_REACH + STRAY_FADE face widths
    past the matte's core (alpha 0.5 or more).

    Out there a partial alpha is most often backdrop that resembles hair, such as a window pane beside grey hair.
    A replaced backdrop would show it as a grey smudge, and a retoucher would remove a stray hair that far out too.
    """
    import cv2

    core = (matte[0] >= 0.5).cpu().numpy().astype(np.uint8)
    if not core.any():
        return torch.ones_like(matte)
    distance = cv2.distanceTransform(1 - core, cv2.DIST_L2, 5)
    fade = np.clip(1.0 - (distance - STRAY_REACH * face_width) / max(STRAY_FADE * face_width, 1.0), 0.0, 1.0)
    return torch.from_numpy(fade.astype(np.float32))[None].to(matte.device)


def _ear_mask(face: Face, scale: float, guide: torch.Tensor, hull: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Return the ears (1, h, w): skin of the face's own colour beside the cheeks, joined to the mesh's `hull`.

    The mesh ends at the cheeks, and the segmentation gives an ear's thin rim and its hollows a partial score,
    so on a white backdrop ears came out washed out. Beside each cheek, from brow to mouth height, pixels of the
    face's skin colour that the model also scores as person (`coarse` at least EAR_MIN_SCORE) and that touch the
    face become foreground, with the hollows they enclose. A skin-coloured backdrop usually scores low with the model.
    """
    import cv2

    empty = torch.zeros_like(hull)
    on_face = (hull[0] > 0.5).cpu().numpy()
    if face.landmarks is None or on_face.sum() < 32:
        return empty
    height, width = on_face.shape
    points = face.landmarks[:, :2] * scale
    right_eye, left_eye = (eye * scale for eye in face.eye_centers)
    eye_line = left_eye - right_eye
    face_width = float(np.hypot(*(points[LEFT_FACE_EDGE] - points[RIGHT_FACE_EDGE])))
    eye_to_chin = float(np.hypot(*(points[CHIN] - (right_eye + left_eye) / 2)))
    if face_width < 8:
        return empty

    # 1. Skin like the face's: chromaticity within EAR_CHROMA_DISTANCE robust deviations, not much darker.
    distance, brightness = _skin_distance(guide, hull[0] > 0.5)
    skin = (distance < EAR_CHROMA_DISTANCE) & (brightness > EAR_MIN_BRIGHTNESS * float(brightness[hull[0] > 0.5].median()))
    # NOTE: a greyscale photo has no chromaticity to compare, so there only brightness and the model's score decide.
    skin = (skin & (coarse[0] >= EAR_MIN_SCORE)).cpu().numpy()

    # 2. The zones: an ellipse just outside each cheek's edge; skin in them, without thin stripes, joined to the face.
    zone = np.zeros((height, width), dtype=np.uint8)
    across = eye_line / max(float(np.hypot(*eye_line)), 1e-6)
    axes = (max(1, round(EAR_WIDTH * face_width)), max(1, round(EAR_HEIGHT * eye_to_chin)))
    roll = float(np.degrees(np.arctan2(eye_line[1], eye_line[0])))
    for edge, outward in ((points[RIGHT_FACE_EDGE], -across), (points[LEFT_FACE_EDGE], across)):
        center = edge + outward * 0.6 * axes[0]
        cv2.ellipse(zone, (round(float(center[0])), round(float(center[1]))), axes, roll, 0, 360, 1, thickness=-1)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(EAR_OPENING * face_width)) + 1,) * 2)
    ear_skin = cv2.morphologyEx(((zone > 0) & skin).astype(np.uint8), cv2.MORPH_OPEN, opening) > 0
    count, labels = cv2.connectedComponents((ear_skin | on_face).astype(np.uint8), connectivity=8)
    face_labels = np.unique(labels[on_face])
    ears = np.isin(labels, face_labels[face_labels > 0]) & (zone > 0)

    # 3. The hollows: what the ears' outline encloses, inside the zones. A ring of 0 around the frame joins every
    #    part of the outside, even where the face reaches the frame's edge and splits it.
    outline = np.pad((ears | on_face).astype(np.uint8), 1)
    cv2.floodFill(outline, np.zeros((height + 4, width + 4), np.uint8), (0, 0), 1)
    ears |= (outline[1:-1, 1:-1] == 0) & (zone > 0)

    # 4. The ears' own edge, where skin and backdrop mix, is left to the colour model: held solid it showed the old
    #    backdrop as a dark outline.
    edge = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(EAR_EDGE * face_width)) + 1,) * 2)
    ears = (cv2.erode(ears.astype(np.uint8), edge) > 0) | on_face
    return torch.from_numpy(ears.astype(np.float32))[None].to(hull.device)


def _skin_distance(guide: torch.Tensor, on_face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return each pixel's chromaticity distance (h, w) from the face's skin, in robust deviations, and its brightness.

    Chromaticity (r and g over r + g + b) stays the same in shade, so a cheek turned from the light is still near.
    """
    colour = guide[:3].clamp_min(1e-4)
    brightness = colour.sum(0)
    chroma = colour[:2] / brightness
    samples = chroma[:, on_face.to(chroma.device)]
    median = samples.median(dim=1).values
    spread = (samples - median[:, None]).abs().median(dim=1).values.clamp_min(0.004) * 1.4826
    return (((chroma - median[:, None, None]) / spread[:, None, None]) ** 2).sum(0).sqrt(), brightness


def _trimmed_hull(face: Face, scale: float, guide: torch.Tensor, hull: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Return the mesh's `hull` without the pixels of its rim that look like the backdrop beside them.

    On a turned face the mesh's outline may lie a little past the cheek, and held solid it carried a strip of the
    old backdrop along the cheek and jaw. Within HULL_RIM face widths inside the outline, a pixel nearer in colour
    to the backdrop just outside (where the model scores no person) than to the skin just inside, by the factor
    HULL_RIM_MARGIN, is left to the colour model.
    """
    import cv2

    on_face = hull[0] > 0.5
    if face.landmarks is None or int(on_face.sum()) < 32:
        return hull
    points = face.landmarks[:, :2] * scale
    face_width = float(np.hypot(*(points[LEFT_FACE_EDGE] - points[RIGHT_FACE_EDGE])))
    radius = round(HULL_RIM * face_width)
    if radius < 1:
        return hull

    # 1. The box around the outline with room for the band outside it and the colour windows; all work stays in it.
    face_mask = on_face.cpu().numpy().astype(np.uint8)
    rows, columns = np.nonzero(face_mask)
    height, width = face_mask.shape
    margin = 4 * radius + 2
    top, bottom = max(0, int(rows.min()) - margin), min(height, int(rows.max()) + margin + 1)
    left, right = max(0, int(columns.min()) - margin), min(width, int(columns.max()) + margin + 1)
    face_mask = face_mask[top:bottom, left:right]

    # 2. Sure skin inside the rim and sure backdrop in a band outside the outline, as mean colours in a window
    #    around each rim pixel (summed from integral images).
    depth = cv2.distanceTransform(face_mask, cv2.DIST_L2, 3)
    distance_outside = cv2.distanceTransform(1 - face_mask, cv2.DIST_L2, 3)
    inner = (depth > radius).astype(np.float32)
    beyond = ((distance_outside > 0) & (distance_outside <= 2 * radius)).astype(np.float32)
    beyond *= coarse[0, top:bottom, left:right].cpu().numpy() < 0.5
    colour = np.ascontiguousarray(guide[:3, top:bottom, left:right].cpu().numpy())
    rim_rows, rim_columns = np.nonzero((face_mask > 0) & (inner == 0))
    planes = [colour[0] * inner, colour[1] * inner, colour[2] * inner, inner,
              colour[0] * beyond, colour[1] * beyond, colour[2] * beyond, beyond]
    sums, area = _window_sums(planes, rim_rows, rim_columns, 2 * radius)
    skin = sums[0:3] / np.maximum(sums[3], 1e-4)
    backdrop = sums[4:7] / np.maximum(sums[7], 1e-4)
    backdrop_weight = sums[7] / area

    # 3. Rim pixels nearer the backdrop's colour, where both sides were seen, joined to the outside: a glasses'
    #    arm or a shadow within the cheek stays solid.
    rim_colour = colour[:, rim_rows, rim_columns]
    to_skin = np.linalg.norm(rim_colour - skin, axis=0)
    to_backdrop = np.linalg.norm(rim_colour - backdrop, axis=0)
    chosen = (backdrop_weight > 0.05) & (to_backdrop * HULL_RIM_MARGIN < to_skin)
    foreign = np.zeros(face_mask.shape, dtype=bool)
    foreign[rim_rows[chosen], rim_columns[chosen]] = True
    outside = face_mask == 0
    _, labels = cv2.connectedComponents((foreign | outside).astype(np.uint8), connectivity=4)
    joined = np.zeros((height, width), dtype=bool)
    joined[top:bottom, left:right] = np.isin(labels, np.unique(labels[outside])) & foreign
    return hull.masked_fill(torch.from_numpy(joined)[None].to(hull.device), 0.0)


def _window_sums(planes: list[np.ndarray], rows: np.ndarray, columns: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each plane's sum over the (2r+1)² window around the given pixels, cut at the borders, and the windows'
    areas: (K, N) and (N,)."""
    import cv2

    height, width = planes[0].shape
    top, bottom = np.clip(rows - radius, 0, height), np.clip(rows + radius + 1, 0, height)
    left, right = np.clip(columns - radius, 0, width), np.clip(columns + radius + 1, 0, width)
    sums = np.empty((len(planes), len(rows)), dtype=np.float64)
    for index, plane in enumerate(planes):
        integral = cv2.integral(np.ascontiguousarray(plane, dtype=np.float32), sdepth=cv2.CV_64F)
        sums[index] = integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]
    return sums, ((bottom - top) * (right - left)).astype(np.float64)


def _subject_support(
    coarse: torch.Tensor, face_masks: list[torch.Tensor], margin: float, bystander_masks: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """Return a soft (1, h, w) mask around the people: blobs with a face, or large enough, grown by `margin` pixels.

    Blobs that contain a bystander's face and none of `face_masks` are left out, however large.
    """
    import cv2

    # 1. Label the confident blobs.
    solid = (coarse[0] > 0.5).to("cpu").numpy().astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if count <= 1:
        return torch.zeros_like(coarse)
    areas = stats[1:, cv2.CC_STAT_AREA]

    # 2. Blobs that hold a face are people; without faces the largest is. Large detached parts stay too.
    people = set()
    for face_mask in face_masks:
        touched = np.unique(labels[face_mask[0].numpy() > 0])
        people.update(int(label) for label in touched if label > 0)
    others = set()
    for bystander_mask in bystander_masks or []:
        touched = np.unique(labels[bystander_mask[0].cpu().numpy() > 0])
        others.update(int(label) for label in touched if label > 0 and int(label) not in people)
    if not people:
        candidates = [label for label in range(1, count) if label not in others]
        if not candidates:
            return torch.zeros_like(coarse)
        people.add(max(candidates, key=lambda label: areas[label - 1]))
    threshold = MIN_PART_AREA * max(areas[label - 1] for label in people)
    people.update(int(label) + 1 for label in np.flatnonzero(areas >= threshold) if int(label) + 1 not in others)
    kept = np.isin(labels, sorted(people)).astype(np.uint8)

    # 3. Grow by the margin with a soft fall-off, so strands just past the mask survive.
    distance = cv2.distanceTransform(1 - kept, cv2.DIST_L2, 5)
    support = np.clip(2.0 - distance / max(margin / 2, 1e-3), 0.0, 1.0).astype(np.float32)
    return torch.from_numpy(support)[None].to(coarse.device)


def _typical_face_width(faces: list[Face]) -> float:
    widths = [face.box[2] for face in faces]
    return float(max(widths)) if widths else 0.0


def _resize(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (C, H, W): area averaging when shrinking, bilinear when enlarging (OpenCV on the CPU, being faster)."""
    if tuple(values.shape[-2:]) == tuple(size):
        return values
    shrinking = size[0] <= values.shape[-2] and size[1] <= values.shape[-1]
    if values.device.type == "cpu" and values.dtype == torch.float32 and values.dim() == 3:
        import cv2

        # Plane by plane, so neither the input nor the (contiguous) result needs a transposed copy.
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        resized = torch.empty((values.shape[0], *size), dtype=torch.float32)
        for plane, target in zip(values.detach().numpy(), resized.numpy()):
            cv2.resize(np.ascontiguousarray(plane), (size[1], size[0]), dst=target, interpolation=interpolation)
        return resized
    mode = "area" if shrinking else "bilinear"
    extra = {} if shrinking else {"align_corners": False}
    return F.interpolate(values[None], size=size, mode=mode, **extra)[0]


def _snap_to_colour_edges(guide: torch.Tensor, coarse: torch.Tensor, band: float) -> torch.Tensor:
    """Move the coarse edge onto the picture's colour edge within `band` pixels of it.

    Each uncertain pixel is projected onto the line between the local subject colour and the local backdrop
    colour (both averaged from the sure regions nearby). Where those two colours are alike, or the pixel lies
    far off that line (a white collar against a dark suit), the coarse value stays.
    """
    import cv2

    # 1. Sure subject and sure backdrop lie more than `band` pixels from the coarse edge.
    solid = (coarse[0] > 0.5).to("cpu").numpy().astype(np.uint8)
    inside = cv2.distanceTransform(solid, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - solid, cv2.DIST_L2, 5)
    sure_subject = torch.from_numpy((inside > band).astype(np.float32))[None].to(coarse.device)
    sure_backdrop = torch.from_numpy((outside > band).astype(np.float32))[None].to(coarse.device)
    uncertain = 1 - sure_subject - sure_backdrop

    # 2. Local mean colours of each side.
    radius = max(2, round(2.5 * band))
    subject_weight = box_mean(sure_subject, radius)
    backdrop_weight = box_mean(sure_backdrop, radius)
    subject_colour = box_mean(guide * sure_subject, radius) / subject_weight.clamp_min(1e-4)
    backdrop_colour = box_mean(guide * sure_backdrop, radius) / backdrop_weight.clamp_min(1e-4)

    # 3. Project, and trust the projection by colour separation and by how well the pixel fits the blend.
    difference = subject_colour - backdrop_colour
    separation2 = (difference * difference).sum(0, keepdim=True)
    projected = ((guide - backdrop_colour) * difference).sum(0, keepdim=True) / separation2.clamp_min(1e-6)
    projected = projected.clamp(0, 1)
    blend_error = guide - (projected * subject_colour + (1 - projected) * backdrop_colour)
    blend_error2 = (blend_error * blend_error).sum(0, keepdim=True)
    confidence = separation2 / (separation2 + COLOUR_SEPARATION**2)
    confidence = confidence * torch.exp(-blend_error2 / (0.5 * separation2).clamp_min(1e-4))
    confidence = confidence * (subject_weight > 0.01) * (backdrop_weight > 0.01)

    refined = confidence * projected + (1 - confidence) * coarse
    return sure_subject + uncertain * refined
