"""Headshot crops framed from the face mesh and the matte: head levelled, consistent headroom, and the
passport formats' head-size rules; applied as one rotate-crop-resize resampling, or as a resize or a slice
where the crop is already upright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import HeadshotError
from .faces import CHIN, Face
from .i18n import N_

CROPS: dict[str, str] = {
    "original": N_("Original framing"),
    "square": N_("Square (1:1, LinkedIn)"),
    "portrait": N_("Portrait (4:5)"),
    "classic": N_("Classic (2:3)"),
    "banner": N_("Banner (16:9)"),
    "passport": N_("Passport photo (35×45 mm)"),
    "us-passport": N_("US passport photo (2×2 in)"),
}

MIN_OUTPUT = 400  # shorter side of a social crop, in pixels
EXTEND_LONG_SIDE = 512  # the smooth extension past the frame's edge is computed at this size
SHOULDER_SLOPE = 0.4  # how far the body's top falls per pixel outwards beside the frame
STRETCH_BLUR_GROWTH = 0.15  # σ of the stretched body's blur per pixel of distance past the frame's edge

# The crown over the eye line, in eye-to-chin distances. It is the matte's top edge above the face, kept
# between a short-haired skull and a full head of hair. Without a matte the middle value is used.
CROWN_RANGE = (0.75, 1.2)
CROWN_WITHOUT_MATTE = 0.95


@dataclass(frozen=True)
class _Framing:
    """The framings a headshot photographer accepts for one crop format, from the loose end to the tight end."""

    aspect: float  # width / height
    head_range: tuple[float, float]  # chin-to-crown height as a fraction of the crop height: loosest, tightest
    eye_range: tuple[float, float]  # eye line from the top, as fractions of the height
    crown_range: tuple[float, float]  # crown from the top, as fractions of the height; 0 touches the edge
    prefer_crown: bool  # centre the crown in its range (passports), else the eye line
    face_x: float  # face centre from the left, as a fraction of the width
    horizontal_slack: float  # how far the face centre may move, as a fraction of the width
    output: tuple[int, int] | None = None  # fixed output size (width, height)


# Social formats: the loose end is a classic head-and-shoulders headshot, the tight end a close headshot
# with the hair 4 % of the height below the top. Where a tightly shot frame has less room above the hair,
# the crop reaches past the top and the picture continues there as backdrop. Eye and face ranges keep a margin
# inside the published rules (square for LinkedIn: eyes 35–45 % from the top, face centred within 5 %), because
# landmarks found again on the output move by a fraction of a percent.
FRAMINGS: dict[str, _Framing] = {
    "square": _Framing(1.0, (0.50, 0.70), (0.36, 0.44), (0.04, 0.20), False, 0.5, 0.03),
    "portrait": _Framing(4 / 5, (0.42, 0.64), (0.32, 0.42), (0.04, 0.20), False, 0.5, 0.03),
    "classic": _Framing(2 / 3, (0.36, 0.52), (0.30, 0.40), (0.04, 0.22), False, 0.5, 0.03),
    "banner": _Framing(16 / 9, (0.50, 0.72), (0.34, 0.45), (0.04, 0.22), False, 2 / 3, 1 / 6),
    # ICAO 9303: chin to crown 70–80 % of the height; eyes 50–70 % of the height from the bottom.
    "passport": _Framing(827 / 1063, (0.73, 0.77), (0.31, 0.49), (0.07, 0.11), True, 0.5, 0.02, output=(827, 1063)),
    # US Department of State: head 50–69 % of the height, eyes 56–69 % of the height from the bottom.
    "us-passport": _Framing(1.0, (0.55, 0.64), (0.32, 0.43), (0.08, 0.13), True, 0.5, 0.02, output=(600, 600)),
}
# The print resolution of the crops with a print size (pixels per inch): 35×45 mm at 600 dpi, 2×2 in at 300 dpi.
PRINT_DPI = {"passport": 600, "us-passport": 300}
HEAD_STEPS = 25  # framings tried between the loose and the tight end
# Before a social crop reaches past the frame, the head may fill up to this many times its tightest share.
CLOSER_LIMIT = 1.25
CUT_HEAD_EYE_MIN = 0.15
# A face whose mesh reaches past the frame's side by more than SIDE_CUT_SHARE of its width is cut by the frame.
# Its crops may then place the face anywhere across (SIDE_CUT_SLACK crop widths), so they stay inside the frame.
SIDE_CUT_SHARE, SIDE_CUT_SLACK = 0.02, 10.0  # eye line from the top when a social crop cuts the head where the frame does
ASPECT_UNITS = {"square": (1, 1), "portrait": (4, 5), "classic": (2, 3), "banner": (16, 9)}


@dataclass
class CropPlan:
    """A crop in source pixels: a rectangle of width × height centred at (center_x, center_y), rotated by
    angle_degrees (the head's roll, clockwise on screen), resampled to output_width × output_height."""

    name: str
    center_x: float
    center_y: float
    angle_degrees: float
    width: float
    height: float
    output_width: int
    output_height: int
    reaches_past_edge: bool


def plan_crop(
    name: str,
    face: Face,
    image_width: int,
    image_height: int,
    matte: torch.Tensor | None = None,
    min_output: int | None = None,
) -> CropPlan:
    """Frame the crop `name` around `face`; raise HeadshotError invalid_option for an unknown name.

    `matte` (1, h, w) of the same image, at its size or smaller, finds the top of the hair. The crop shrinks or shifts within its
    framing rules to stay inside the frame; if it still cannot, `reaches_past_edge` is True.
    """
    if name == "original":
        return CropPlan(name, image_width / 2, image_height / 2, 0.0, float(image_width), float(image_height),
                        image_width, image_height, False)
    if name not in FRAMINGS:
        raise HeadshotError("invalid_option", detail=f"unknown crop: {name!r}", option="crop", value=name,
                            allowed=", ".join(CROPS))
    framing = FRAMINGS[name]

    # 1. The head in a levelled frame: origin between the eyes, x along the eye line, y down.
    head = _head_geometry(face, matte, image_width, image_height)

    # 2. The loosest accepted framing that fits inside the frame; when even the tightest does not fit,
    #    the tightest, placed where it reaches least past the edge.
    plan = None
    for head_fraction in np.linspace(*framing.head_range, HEAD_STEPS):
        height = head.height / head_fraction
        plan = _fit_inside(framing, head, height, height * framing.aspect, image_width, image_height)
        if plan is not None:
            break
    if plan is None and head.crown_cut and not framing.prefer_crown:
        # The frame cuts the head, so no hair can be made up above it: cut the head as the frame does,
        # from the loosest height down to one where eye line to chin fills 40 % of the height.
        tightest = head.chin / 0.40
        for height in np.linspace(head.height / framing.head_range[0], tightest, 2 * HEAD_STEPS):
            plan = _fit_inside(framing, head, height, height * framing.aspect, image_width, image_height, cut_head=True)
            if plan is not None:
                break
    if plan is None and head.side_cut:
        # The frame cuts the face at its side: rather than extend the frame beside half a face, take the largest
        # crop of this aspect that fits across the frame, down to half that, placed as the framing allows.
        widest = min(head.height / framing.head_range[1], 0.999 * image_width / framing.aspect, 0.999 * image_height)
        for height in np.linspace(widest, 0.5 * widest, HEAD_STEPS):
            plan = _fit_inside(framing, head, height, height * framing.aspect, image_width, image_height, cut_head=True)
            if plan is not None:
                break
    if plan is None and not framing.prefer_crown:
        # A social crop that does not fit even at its tightest would show a made-up body below the frame, and that
        # body stretches into streaks. A somewhat closer headshot that fits is the better picture.
        tightest = head.height / framing.head_range[1]
        for height in np.linspace(tightest, tightest / CLOSER_LIMIT, HEAD_STEPS)[1:]:
            plan = _fit_inside(framing, head, height, height * framing.aspect, image_width, image_height)
            if plan is not None:
                break
    if plan is None:
        height = head.height / framing.head_range[1]
        plan = _least_overflow(framing, head, height, height * framing.aspect, image_width, image_height)
    center_x, center_y, width, height = plan

    # 3. Output size: the source's own resolution, enlarged only to reach the minimum.
    output_width, output_height = _output_size(name, framing, width, height, min_output)
    reaches = _overflow(center_x, center_y, width, height, head.angle, image_width, image_height) > 0.5
    return CropPlan(name, center_x, center_y, math.degrees(head.angle), width, height, output_width, output_height,
                    reaches)


def apply_crop(image: torch.Tensor, plan: CropPlan, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate, crop and resize `image` (C, H, W) in one resampling; "original" returns `image` itself.

    An upright crop inside the image is a slice of it, resized where the sizes differ (its corner then rounds
    to a whole pixel). Where the crop reaches past the frame, `fill` is used: a tensor of the output's size
    (C, h, w), or a colour (C, 1, 1). Without it the colours at the frame's edge are carried on smoothly.
    """
    channels, height, width = image.shape
    if plan.name == "original":
        return image
    window = _upright_window(plan, width, height)
    if window is not None and (image.device.type == "cpu" or window[2:] == (plan.output_width, plan.output_height)):
        return _resize_window(image, window, plan)

    # 1. Cut the part of the frame the crop covers, with a margin for the interpolation kernel.
    angle = math.radians(plan.angle_degrees)
    corners = _corners(plan.center_x, plan.center_y, plan.width, plan.height, angle)
    x0 = max(0, int(math.floor(corners[:, 0].min())) - 4)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - 4)
    x1 = min(width, int(math.ceil(corners[:, 0].max())) + 4)
    y1 = min(height, int(math.ceil(corners[:, 1].max())) + 4)
    if x1 - x0 < 2 or y1 - y0 < 2:
        x0, y0, x1, y1 = 0, 0, width, height
    region = image[:, y0:y1, x0:x1]

    # 2. The affine map from an output pixel (column i, row j) to the region's coordinates, in units of the
    #    averaging block used when shrinking a lot (so fine detail does not alias).
    source_per_output = plan.width / plan.output_width
    block = max(1, int(source_per_output))
    step_x, step_y = plan.width / plan.output_width, plan.height / plan.output_height
    cos, sin = math.cos(angle), math.sin(angle)
    start_x = 0.5 * step_x - plan.width / 2
    start_y = 0.5 * step_y - plan.height / 2
    affine = np.array(
        [
            [step_x * cos, -step_y * sin, plan.center_x - x0 + start_x * cos - start_y * sin],
            [step_x * sin, step_y * cos, plan.center_y - y0 + start_x * sin + start_y * cos],
        ]
    ) / block
    size = (plan.output_height, plan.output_width)

    # 3. One resampling: OpenCV on the CPU, where it is several times faster than grid_sample; torch elsewhere.
    if image.device.type == "cpu":
        sampled = _resample_opencv(region, block, affine, size)
    else:
        sampled = _resample_torch(region, block, affine, size)
    sampled = sampled.clamp_(0, 1)
    if not plan.reaches_past_edge:
        return sampled

    # 4. Past the frame: the given fill, or the frame carried on as `extend_frame` does without a matte,
    #    with one pixel of blend at the seam.
    columns = torch.arange(plan.output_width, device=image.device, dtype=torch.float32).view(1, -1)
    rows = torch.arange(plan.output_height, device=image.device, dtype=torch.float32).view(-1, 1)
    source = block * torch.from_numpy(affine.astype(np.float32)).to(image.device)
    source_x = source[0, 0] * columns + source[0, 1] * rows + (source[0, 2] + x0)
    source_y = source[1, 0] * columns + source[1, 1] * rows + (source[1, 2] + y0)
    distance_inside = torch.minimum(
        torch.minimum(source_x, width - source_x), torch.minimum(source_y, height - source_y)
    )
    inside = distance_inside.add_(1).clamp_(0, 1)[None]
    if fill is None:
        fill = _extended_fill(image, plan, corners)
    fill = fill.to(device=sampled.device, dtype=sampled.dtype).expand_as(sampled)
    return torch.lerp(fill, sampled, inside)


def _upright_window(plan: CropPlan, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Return (x0, y0, width, height) in whole pixels for an upright crop inside the image, else None.

    The window is the crop's rectangle rounded to whole pixels: it moves the crop by half a pixel at most.
    """
    if plan.angle_degrees != 0.0 or plan.reaches_past_edge:
        return None
    x0, y0 = round(plan.center_x - plan.width / 2), round(plan.center_y - plan.height / 2)
    window_width, window_height = max(1, round(plan.width)), max(1, round(plan.height))
    if x0 < 0 or y0 < 0 or x0 + window_width > width or y0 + window_height > height:
        return None
    return x0, y0, window_width, window_height


def _resize_window(image: torch.Tensor, window: tuple[int, int, int, int], plan: CropPlan) -> torch.Tensor:
    """Return the upright crop: the window itself at the output's size, else the window resized (CPU only).

    A resize is separable and takes a fifth of the time of a rotating resampling. It averages areas where
    the crop shrinks to half or less, as `apply_crop` does, and is cubic otherwise.
    """
    import cv2

    x0, y0, window_width, window_height = window
    part = image[:, y0 : y0 + window_height, x0 : x0 + window_width]
    if (window_width, window_height) == (plan.output_width, plan.output_height):
        return part.clamp(0, 1)
    interpolation = cv2.INTER_AREA if window_width >= 2 * plan.output_width else cv2.INTER_CUBIC
    output = torch.empty((image.shape[0], plan.output_height, plan.output_width), dtype=torch.float32)
    for channel, plane in enumerate(part.float().numpy()):
        cv2.resize(plane, (plan.output_width, plan.output_height), dst=output[channel].numpy(), interpolation=interpolation)
    return output.clamp_(0, 1)


def extend_frame(
    image: torch.Tensor,
    matte: torch.Tensor | None,
    window: tuple[int, int, int, int],
    faces: list[Face] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Carry a frame on past its edges; return the canvas image (C, H, W) and matte (1, H, W), both new tensors.

    `window` (x0, y0, x1, y1) is where the frame lies on the canvas; values outside it are ignored. Below
    the frame, and beside it from the chin down, the subject continues: the last rows (columns) are
    stretched outwards with a blur that grows with the distance, and the matte keeps the edge's values, so
    a body cut by the frame stays solid. Above the frame, and beside the head, the matte is 0 (backdrop) and
    the colours continue the background alone, smoothly, so no hair or skin colour smears into them.
    """
    channels, height, width = image.shape
    x0, y0, x1, y1 = window
    image = image.clone()
    matte = None if matte is None else matte.clone()
    if (x0, y0, x1, y1) == (0, 0, width, height):
        return image, matte

    # 1. The background alone, continued smoothly at reduced resolution.
    background = _continued_background(image, matte, window)

    # 2. Beside the frame: the body from the chin down, its top falling away like a shoulder, and the
    #    background above it.
    body_top = y0
    if faces:
        body_top = min(y1, max(y0, round(max(_chin_row(face) for face in faces))))
    for side, (start, stop) in (("left", (0, x0)), ("right", (x1, width))):
        if stop <= start:
            continue
        edge_column = x0 if side == "left" else x1 - 1
        rows = torch.arange(y0, y1, device=image.device).view(-1, 1)
        distance = torch.arange(stop - start, 0, -1) if side == "left" else torch.arange(1, stop - start + 1)
        source_rows = rows - (SHOULDER_SLOPE * distance.to(image.device).view(1, -1)).round().long()
        on_body = source_rows >= body_top
        source_rows = source_rows.clamp(min=body_top, max=y1 - 1) - body_top
        stretched = _stretched(image[:, body_top:y1, edge_column], stop - start, reverse=(side == "left"))
        columns = torch.arange(stop - start, device=image.device).view(1, -1).expand_as(source_rows)
        body = stretched[:, source_rows, columns]
        image[:, y0:y1, start:stop] = torch.where(on_body, body, background(y0, y1, start, stop))
        if matte is not None:
            edge_matte = matte[0, body_top:y1, edge_column]
            matte[0, y0:y1, start:stop] = torch.where(on_body, edge_matte[source_rows], torch.zeros_like(body[0]))

    # 3. Below the frame, across the whole canvas width: the last row stretched downwards.
    if y1 < height:
        edge = image[:, y1 - 1, :]
        image[:, y1:, :] = _stretched(edge, height - y1, reverse=False).transpose(1, 2)
        if matte is not None:
            matte[:, y1:, :] = matte[:, y1 - 1 : y1, :]

    # 4. Above the frame: the background only.
    if y0 > 0:
        image[:, :y0, :] = background(0, y0, 0, width)
        if matte is not None:
            matte[:, :y0, :] = 0.0
    return image, matte


def _chin_row(face: Face) -> float:
    if face.landmarks is not None:
        return float(face.landmarks[CHIN, 1])
    return float(face.box[1] + face.box[3])


def _stretched(edge: torch.Tensor, length: int, reverse: bool) -> torch.Tensor:
    """Stretch an edge line (C, N) into a (C, N, length) strip whose blur along N grows with the distance.

    Column 0 of the strip lies next to the edge (the last column when `reverse`, for strips left of it).
    """
    import cv2

    # 1. The line blurred at a few strengths, σ doubling from one level to the next.
    channels, count = edge.shape
    line = np.ascontiguousarray(edge.detach().to("cpu", torch.float32).numpy().T[None])  # (1, N, C)
    sigmas = [0.0]
    while sigmas[-1] < STRETCH_BLUR_GROWTH * length and sigmas[-1] < count:
        sigmas.append(max(1.0, 2 * sigmas[-1]))
    levels = [line[0]]
    for sigma in sigmas[1:]:
        blurred = cv2.GaussianBlur(line, (0, 0), sigmaX=sigma, sigmaY=1e-3, borderType=cv2.BORDER_REFLECT)
        levels.append(blurred.reshape(count, channels))
    stack = torch.from_numpy(np.stack(levels)).permute(0, 2, 1).to(edge.device)  # (levels, C, N)

    # 2. Each step outwards takes the level for its σ, blending the two nearest.
    distance = torch.arange(1, length + 1, dtype=torch.float32, device=edge.device)
    wanted = (STRETCH_BLUR_GROWTH * distance).clamp(max=sigmas[-1])
    position = torch.from_numpy(np.interp(wanted.cpu().numpy(), sigmas, np.arange(len(sigmas)))).float()
    lower = position.floor().long().clamp(max=len(sigmas) - 1)
    upper = (lower + 1).clamp(max=len(sigmas) - 1)
    fraction = (position - lower).to(edge.device).view(1, 1, -1)
    strip = stack[lower.to(edge.device)].permute(1, 2, 0) * (1 - fraction) + stack[upper.to(edge.device)].permute(1, 2, 0) * fraction
    return strip.flip(-1) if reverse else strip


def _continued_background(image: torch.Tensor, matte: torch.Tensor | None, window):
    """Return a function (top, bottom, left, right) -> (C, h, w) sampling a smooth continuation of the frame's background.

    Only pixels inside the window with matte 0 (all of them without a matte) feed it, pushed and pulled
    over a pyramid at reduced resolution.
    """
    # 1. The known background at reduced resolution.
    channels, height, width = image.shape
    x0, y0, x1, y1 = window
    known = torch.zeros((1, height, width), dtype=image.dtype, device=image.device)
    known[:, y0:y1, x0:x1] = 1.0
    if matte is not None:
        known[:, y0:y1, x0:x1] = (matte[:, y0:y1, x0:x1] <= 0.0).to(image.dtype)
    filled = _smooth_background(image, known)

    # 2. Sampling a part of the canvas lines up with upsampling the whole (bilinear, pixel centres).
    def sample(top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        if bottom <= top or right <= left:
            return image.new_zeros((channels, max(0, bottom - top), max(0, right - left)))
        columns = (torch.arange(left, right, device=image.device, dtype=torch.float32) + 0.5) / width * 2 - 1
        rows = (torch.arange(top, bottom, device=image.device, dtype=torch.float32) + 0.5) / height * 2 - 1
        grid = torch.stack(torch.broadcast_tensors(columns.view(1, -1), rows.view(-1, 1)), dim=-1)[None]
        return F.grid_sample(filled[None], grid.to(filled.dtype), mode="bilinear", padding_mode="border",
                             align_corners=False)[0]

    return sample


def _smooth_background(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Return the colours of `image` where `known` (1, H, W) is 1 and the rest filled smoothly, at EXTEND_LONG_SIDE
    pixels at most. A coarse pixel counts as known only when all of it is."""
    from .backdrops import fill_holes

    height, width = image.shape[-2:]
    scale = min(1.0, EXTEND_LONG_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small_known = F.interpolate(known[None], size=size, mode="area")[0]
    small_colour = F.interpolate((image * known)[None], size=size, mode="area")[0] / small_known.clamp_min(1e-6)
    return fill_holes(small_colour, (small_known > 0.999).to(image.dtype))


def fill_past_picture(
    image: torch.Tensor, matte: torch.Tensor, inside: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Fill the pixels of `image` (C, H, W) outside the picture (`inside` (1, H, W) is 0 there) with the frame's
    background continued smoothly, as `extend_frame` does above a frame, and set the matte there to 0.

    Returns the filled image and matte, and a function that fills another image of the same region (a retouched
    copy) with the same colours.
    """
    from .matte import sample_smooth_at

    # 1. The known background (inside the picture, matte 0) at reduced resolution, its holes filled smoothly.
    height, width = image.shape[-2:]
    filled = _smooth_background(image, inside * (matte <= 0.0).to(image.dtype))

    # 2. Its colours at the pixels outside the picture only.
    rows, columns = torch.nonzero(inside[0] < 0.5, as_tuple=True)
    colours = sample_smooth_at(filled, rows, columns, (height, width))

    def fill(target: torch.Tensor) -> torch.Tensor:
        target = target.clone()
        target[:, rows, columns] = colours.to(target.dtype)
        return target

    filled_matte = matte.clone()
    filled_matte[0, rows, columns] = 0.0
    return fill(image), filled_matte, fill


def _extended_fill(image: torch.Tensor, plan: CropPlan, corners: np.ndarray) -> torch.Tensor:
    """Return the output-sized fill for a crop past the frame: the frame carried on by `extend_frame`, resampled."""
    channels, height, width = image.shape

    # 1. A canvas around the crop's bounding box, at the output's resolution.
    left = min(0, int(math.floor(corners[:, 0].min())) - 4)
    top = min(0, int(math.floor(corners[:, 1].min())) - 4)
    right = max(width, int(math.ceil(corners[:, 0].max())) + 4)
    bottom = max(height, int(math.ceil(corners[:, 1].max())) + 4)
    scale = min(1.0, plan.output_width / plan.width)
    size = (max(2, round((bottom - top) * scale)), max(2, round((right - left) * scale)))
    window = (round(-left * scale), round(-top * scale), round((width - left) * scale), round((height - top) * scale))
    window = (window[0], window[1], max(window[0] + 1, min(size[1], window[2])), max(window[1] + 1, min(size[0], window[3])))
    canvas = image.new_zeros((channels, *size))
    canvas[:, window[1] : window[3], window[0] : window[2]] = F.interpolate(
        image[None], size=(window[3] - window[1], window[2] - window[0]), mode="area" if scale < 1 else "bilinear"
    )[0]
    extended, _ = extend_frame(canvas, None, window)

    # 2. The crop of the canvas, resampled as the plan says.
    canvas_plan = CropPlan(plan.name, (plan.center_x - left) * scale, (plan.center_y - top) * scale, plan.angle_degrees,
                           plan.width * scale, plan.height * scale, plan.output_width, plan.output_height, False)
    return apply_crop(extended, canvas_plan)


def _resample_opencv(region: torch.Tensor, block: int, affine: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    import cv2

    # OpenCV puts a source pixel's centre on its index; the affine map's coordinates put it half a pixel on.
    inverse = affine.copy()
    inverse[:, 2] -= 0.5
    interpolation = (cv2.INTER_CUBIC if block == 1 else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    output = torch.empty((region.shape[0], *size), dtype=torch.float32)
    for channel, plane in enumerate(region.float().numpy()):
        if block > 1:
            shrunk = (math.ceil(plane.shape[1] / block), math.ceil(plane.shape[0] / block))
            plane = cv2.resize(plane, shrunk, interpolation=cv2.INTER_AREA)
        cv2.warpAffine(plane, inverse, (size[1], size[0]), dst=output[channel].numpy(), flags=interpolation,
                       borderMode=cv2.BORDER_REFLECT_101)
    return output


def _resample_torch(region: torch.Tensor, block: int, affine: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    if block > 1:
        region = F.avg_pool2d(region[None], kernel_size=block, stride=block, ceil_mode=True)[0]
    region_height, region_width = region.shape[-2:]
    columns = torch.arange(size[1], device=region.device, dtype=torch.float32).view(1, -1)
    rows = torch.arange(size[0], device=region.device, dtype=torch.float32).view(-1, 1)
    x = affine[0, 0] * columns + affine[0, 1] * rows + float(affine[0, 2])
    y = affine[1, 0] * columns + affine[1, 1] * rows + float(affine[1, 2])
    grid = torch.stack([x / region_width * 2 - 1, y / region_height * 2 - 1], dim=-1)[None]
    mode = "bicubic" if block == 1 else "bilinear"
    return F.grid_sample(region[None], grid, mode=mode, padding_mode="reflection", align_corners=False)[0]


@dataclass
class _Head:
    angle: float  # roll in radians: the eye line's direction in the source, clockwise on screen
    eye_mid: np.ndarray  # between the eyes, source pixels
    face_center_x: float  # across the face, in the levelled frame
    crown: float  # above the eye line (negative y) in the levelled frame
    chin: float  # below the eye line
    gaze: float  # -1 turned to the image's left, +1 to its right, 0 frontal
    crown_cut: bool = False  # the frame's edge cuts the top of the head
    side_cut: bool = False  # the frame's left or right edge cuts the face

    @property
    def height(self) -> float:
        return self.chin - self.crown


def _head_geometry(face: Face, matte: torch.Tensor | None, image_width: int, image_height: int) -> _Head:
    right_eye, left_eye = (np.asarray(eye, dtype=np.float64) for eye in face.eye_centers)
    eye_mid = (right_eye + left_eye) / 2
    angle = math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])

    # 1. Chin and face extent in the levelled frame.
    if face.landmarks is not None:
        points = _levelled(face.landmarks[:, :2].astype(np.float64), eye_mid, angle)
        chin = float(points[CHIN, 1])
        face_center_x = float((points[:, 0].min() + points[:, 0].max()) / 2)
        nose_offset = float(points[1, 0] - face_center_x)
        face_width = float(points[:, 0].max() - points[:, 0].min())
    else:
        corners = np.array([[face.box[0], face.box[1]], [face.box[0] + face.box[2], face.box[1] + face.box[3]]])
        points = _levelled(corners, eye_mid, angle)
        chin = float(points[1, 1])
        face_center_x = float(points[:, 0].mean())
        nose_offset = 0.0
        face_width = float(face.box[2])
    chin = max(chin, 0.5 * face.eye_distance)

    # 2. The crown: the matte's top edge above the face, kept within head proportions.
    crown, crown_cut = CROWN_WITHOUT_MATTE * chin, False
    if matte is not None:
        top, crown_cut = _matte_top(matte, (image_width, image_height), eye_mid, angle, face_center_x, face_width, 1.6 * chin)
        crown = float(np.clip(top, CROWN_RANGE[0] * chin, CROWN_RANGE[1] * chin))
    gaze = float(np.clip(nose_offset / max(0.08 * face_width, 1e-6), -1, 1)) if abs(nose_offset) > 0.04 * face_width else 0.0

    # 3. A face the frame's side cuts off (the mesh runs on past the edge) cannot be made whole by extending the
    #    frame: that would show half a face beside a made-up backdrop.
    side_cut = False
    if face.landmarks is not None:
        margin = SIDE_CUT_SHARE * face_width
        side_cut = bool(face.landmarks[:, 0].min() < -margin or face.landmarks[:, 0].max() > image_width + margin)
    return _Head(angle, eye_mid, face_center_x, -crown, chin, gaze, crown_cut, side_cut)


def _matte_top(matte, image_size, eye_mid, angle, face_center_x, face_width, reach) -> tuple[float, bool]:
    """Return how far above the eye line the matte stays solid, the highest over a few columns across the face,
    and whether the head runs on past the frame's edge there (in most of the columns).

    A matte smaller than the image (width, height) is sampled as its nearest-neighbour enlargement would be.
    """
    alpha = matte[0].detach().to("cpu").float().numpy() if matte.dim() == 3 else matte.detach().cpu().numpy()
    width, height = image_size
    matte_height, matte_width = alpha.shape
    cos, sin = math.cos(angle), math.sin(angle)
    steps = np.linspace(0, reach, max(8, int(reach)))
    highest, rays_off_edge = None, 0
    for offset in np.linspace(-0.2, 0.2, 5) * face_width:
        x_levelled = face_center_x + offset
        xs = eye_mid[0] + x_levelled * cos + steps * sin
        ys = eye_mid[1] + x_levelled * sin - steps * cos
        inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
        values = np.zeros_like(steps)
        rows = np.minimum((ys[inside].astype(int) * matte_height) // height, matte_height - 1)
        columns = np.minimum((xs[inside].astype(int) * matte_width) // width, matte_width - 1)
        values[inside] = alpha[rows, columns]
        if not inside[-1]:
            values[~inside] = 1.0  # past the frame's edge the head may go on
        gaps = np.flatnonzero(values < 0.5)
        top = steps[gaps[0]] if len(gaps) else reach
        rays_off_edge += int(not inside[-1] and (not len(gaps) or not inside[gaps[0]]))
        highest = top if highest is None else max(highest, top)
    return highest, rays_off_edge >= 3


def _levelled(points: np.ndarray, origin: np.ndarray, angle: float) -> np.ndarray:
    cos, sin = math.cos(angle), math.sin(angle)
    shifted = points - origin
    return np.stack([shifted[:, 0] * cos + shifted[:, 1] * sin, -shifted[:, 0] * sin + shifted[:, 1] * cos], axis=1)


def _to_source(head: _Head, x: float, y: float) -> tuple[float, float]:
    cos, sin = math.cos(head.angle), math.sin(head.angle)
    return head.eye_mid[0] + x * cos - y * sin, head.eye_mid[1] + x * sin + y * cos


def _allowed_offsets(framing: _Framing, head: _Head, height: float, width: float, cut_head: bool = False):
    """Return the crop centres the framing allows, in the levelled frame: x and y ranges and the preferred centre.

    The y range is empty (low > high) when the eye and crown rules cannot both hold at this head size.
    With `cut_head` the crop may cut the top of the head, and the eye line may rise to CUT_HEAD_EYE_MIN.
    """
    # 1. Horizontal: the face centre at its fraction of the width, within the slack.
    face_x = framing.face_x
    if face_x != 0.5:
        # Leave the open space on the side the face turns to; frontal faces go to the right third.
        face_x = 1 - face_x if head.gaze > 0 else face_x
    preferred_x = head.face_center_x - (face_x - 0.5) * width
    slack = framing.horizontal_slack if not head.side_cut else SIDE_CUT_SLACK
    x_range = (preferred_x - slack * width, preferred_x + slack * width)

    # 2. Vertical: the eye line sits at y = 0 and the crown at head.crown, so each rule bounds the centre.
    eye_low, eye_high = framing.eye_range
    crown_low, crown_high = framing.crown_range
    if cut_head:
        eye_low, crown_low = CUT_HEAD_EYE_MIN, -math.inf
    y_low = max((0.5 - eye_high) * height, head.crown + (0.5 - crown_high) * height)
    y_high = min((0.5 - eye_low) * height, head.crown + (0.5 - crown_low) * height)
    if framing.prefer_crown:
        preferred_y = head.crown + (0.5 - (crown_low + crown_high) / 2) * height
    else:
        preferred_y = (0.5 - (eye_low + eye_high) / 2) * height
    preferred_y = min(max(preferred_y, y_low), y_high) if y_low <= y_high else preferred_y
    return x_range, (y_low, y_high), (preferred_x, preferred_y)


def _fit_inside(framing, head, height, width, image_width, image_height, cut_head=False):
    """Return (center_x, center_y, width, height) in source pixels for the allowed centre nearest the preferred one
    whose rotated crop lies inside the frame, or None.

    The allowed centres and the centres that keep the crop inside the frame are both bounded by straight
    lines, so the nearest feasible point is the preferred one, a projection onto one line, or a corner.
    """
    x_range, y_range, preferred = _allowed_offsets(framing, head, height, width, cut_head)
    if y_range[0] > y_range[1] + 1e-9:
        return None

    # 1. Every rule as a · (x, y) <= b, in pixels of the levelled frame.
    cos, sin = math.cos(head.angle), math.sin(head.angle)
    reach_x = abs(width / 2 * cos) + abs(height / 2 * sin)
    reach_y = abs(width / 2 * sin) + abs(height / 2 * cos)
    eye_x, eye_y = head.eye_mid
    to_source_x, to_source_y = np.array([cos, -sin]), np.array([sin, cos])
    rules = [
        (np.array([1.0, 0.0]), x_range[1]),
        (np.array([-1.0, 0.0]), -x_range[0]),
        (np.array([0.0, 1.0]), y_range[1]),
        (np.array([0.0, -1.0]), -y_range[0]),
        (to_source_x, image_width - reach_x - eye_x),
        (-to_source_x, eye_x - reach_x),
        (to_source_y, image_height - reach_y - eye_y),
        (-to_source_y, eye_y - reach_y),
    ]

    # 2. The candidates: the preferred centre, its projections onto each line, and the lines' crossings.
    target = np.array(preferred, dtype=np.float64)
    normals = np.stack([normal for normal, _ in rules])
    bounds = np.array([bound for _, bound in rules], dtype=np.float64)
    projections = target - ((normals @ target - bounds) / (normals * normals).sum(axis=1))[:, None] * normals
    first, second = np.triu_indices(len(rules), k=1)
    determinant = normals[first, 0] * normals[second, 1] - normals[first, 1] * normals[second, 0]
    crossing = np.abs(determinant) > 1e-9
    first, second, determinant = first[crossing], second[crossing], determinant[crossing]
    crossings = np.stack([
        (bounds[first] * normals[second, 1] - normals[first, 1] * bounds[second]) / determinant,
        (normals[first, 0] * bounds[second] - bounds[first] * normals[second, 0]) / determinant,
    ], axis=1)
    candidates = np.concatenate([target[None], projections, crossings])

    # 3. The feasible candidate nearest the preferred centre, distances taken relative to the crop's size; of
    #    equally near ones, the first.
    feasible = (candidates @ normals.T <= bounds + 0.5).all(axis=1)
    if not feasible.any():
        return None
    distances = (((candidates - target) / np.array([width, height])) ** 2).sum(axis=1)
    distances[~feasible] = np.inf
    best = candidates[int(np.flatnonzero(distances <= distances.min() + 1e-12)[0])]
    center_x, center_y = _to_source(head, *best)
    return center_x, center_y, width, height


def _least_overflow(framing, head, height, width, image_width, image_height):
    """Return the allowed centre whose crop reaches least past the frame, as (center_x, center_y, width, height).

    When the frame cuts the top of the head, no hair can be made up above it, so a social crop then cuts
    the head as the frame does and lets the eye line rise instead of reaching past the top.
    """
    (x_low, x_high), (y_low, y_high), (preferred_x, preferred_y) = _allowed_offsets(framing, head, height, width)
    top_weight = 1.0
    if head.crown_cut and not framing.prefer_crown:
        y_high = max(y_high, (0.5 - CUT_HEAD_EYE_MIN) * height)
        top_weight = 50.0
    if y_low > y_high:
        y_low = y_high = preferred_y
    # A grid of centres, all at once: the least overflow wins, then the nearest to the preferred centre, then the
    # first in grid order.
    x, y = np.meshgrid(np.linspace(x_low, x_high, 21), np.linspace(y_low, y_high, 41), indexing="ij")
    x, y = x.ravel(), y.ravel()
    cos, sin = math.cos(head.angle), math.sin(head.angle)
    center_x = head.eye_mid[0] + x * cos - y * sin
    center_y = head.eye_mid[1] + x * sin + y * cos
    offsets = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [width / 2, height / 2]
    corner_x = center_x[:, None] + offsets[:, 0] * cos - offsets[:, 1] * sin
    corner_y = center_y[:, None] + offsets[:, 0] * sin + offsets[:, 1] * cos
    past = np.concatenate([-corner_x, corner_x - image_width, -corner_y, corner_y - image_height], axis=1)
    overflow = np.maximum(past, 0).sum(axis=1) + (top_weight - 1) * np.maximum(-corner_y, 0).sum(axis=1)
    distance = ((x - preferred_x) / width) ** 2 + ((y - preferred_y) / height) ** 2
    best = np.lexsort((distance, np.round(overflow, 3)))[0]
    return float(center_x[best]), float(center_y[best]), width, height


def _corners(center_x, center_y, width, height, angle) -> np.ndarray:
    cos, sin = math.cos(angle), math.sin(angle)
    offsets = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [width / 2, height / 2]
    return np.stack([center_x + offsets[:, 0] * cos - offsets[:, 1] * sin,
                     center_y + offsets[:, 0] * sin + offsets[:, 1] * cos], axis=1)


def _overflow(center_x, center_y, width, height, angle, image_width, image_height, total=False) -> float:
    """Return how far (pixels) the rotated crop's corners reach past the frame: the worst, or the sum."""
    corners = _corners(center_x, center_y, width, height, angle)
    past = np.concatenate([-corners[:, 0], corners[:, 0] - image_width, -corners[:, 1], corners[:, 1] - image_height])
    past = np.maximum(past, 0)
    return float(past.sum() if total else past.max())


def _output_size(name, framing, width, height, min_output) -> tuple[int, int]:
    if framing.output is not None:
        return framing.output
    units_x, units_y = ASPECT_UNITS[name]
    minimum = MIN_OUTPUT if min_output is None else min_output
    unit = max(height / units_y, math.ceil(minimum / min(units_x, units_y)))
    unit = max(1, int(round(unit)))
    return units_x * unit, units_y * unit

