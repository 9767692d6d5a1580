"""Backdrops behind the matted subject (studio grey, white, black, a brand colour, a blurred original, a picture)
and the composite that puts the subject in front of them with a light wrap.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import HeadshotError
from .faces import Face
from .i18n import N_
from .matte import _resize, band_rectangles, box_mean, box_pixels, grown_mask, sample_smooth_at

BACKDROPS: dict[str, str] = {
    "original": N_("Original background"),
    "studio-grey": N_("Studio grey"),
    "white": N_("White"),
    "black": N_("Black"),
    "blur": N_("Blurred background"),
    "color:#RRGGBB": N_("Brand colour"),
    "image:PATH": N_("Custom picture"),
}

ColorInProfile = Callable[[tuple[float, float, float]], tuple[float, float, float]]

# Studio grey, as sRGB levels: lighter behind the head, falling off towards the corners like a lit paper roll.
STUDIO_GREY_CENTER = 0.58
STUDIO_GREY_EDGE = 0.30
STUDIO_GREY_DITHER = 0.5 / 255  # breaks up banding in 8-bit output
STUDIO_GREY_LONG_SIDE = 256  # the smooth light fall-off is computed at this size
BLUR_RADIUS = 0.22  # of the face width: the circle of confusion of a wide-open portrait lens
BLUR_WORK_RADIUS = 8  # the lens blur runs at a scale where its disc has this radius in pixels
LIGHT_WRAP_RADIUS = 0.012  # of the long side
LIGHT_WRAP_LONG_SIDE = 1024

_HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


@dataclass(frozen=True)
class BackdropSpec:
    """A parsed backdrop: its kind, plus the sRGB colour (0..1) for `color` or the picture's path for `image`."""

    kind: str  # "original", "studio-grey", "white", "black", "blur", "color" or "image"
    color: tuple[float, float, float] | None = None
    path: str | None = None

    @property
    def name(self) -> str:
        """The canonical name, as `parse_backdrop` accepts it."""
        if self.kind == "color" and self.color is not None:
            return "color:#" + "".join(f"{round(channel * 255):02X}" for channel in self.color)
        if self.kind == "image":
            return f"image:{self.path}"
        return self.kind


def parse_backdrop(name: str) -> BackdropSpec:
    """Parse a backdrop name; raise HeadshotError invalid_option for an unknown name, a bad colour or a missing picture."""
    text = name.strip()
    keyword, _, argument = text.partition(":")
    keyword = keyword.lower()

    if keyword in ("original", "studio-grey", "white", "black", "blur") and not argument:
        return BackdropSpec(kind=keyword)
    if keyword == "studio-gray" and not argument:
        return BackdropSpec(kind="studio-grey")

    if keyword in ("color", "colour"):
        match = _HEX_COLOR.fullmatch(argument.strip())
        if match is None:
            raise _invalid(name, "color:#RRGGBB", f"not a hex colour: {argument!r}")
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(digit * 2 for digit in digits)
        color = tuple(int(digits[index : index + 2], 16) / 255 for index in (0, 2, 4))
        return BackdropSpec(kind="color", color=color)

    if keyword == "image":
        path = os.path.expanduser(argument.strip())
        if not path or not os.path.isfile(path):
            raise HeadshotError("file_not_found", path, "the backdrop picture of --backdrop image:PATH")
        import cv2

        if not cv2.haveImageReader(path):
            raise HeadshotError("not_an_image", path, "the backdrop picture of --backdrop image:PATH")
        return BackdropSpec(kind="image", path=os.path.abspath(path))

    raise _invalid(name, ", ".join(BACKDROPS), f"unknown backdrop: {name!r}")


def render_backdrop(
    spec: BackdropSpec,
    image: torch.Tensor,
    matte: torch.Tensor,
    faces: list[Face] | None,
    color_in_profile: ColorInProfile | None = None,
) -> torch.Tensor:
    """Render the backdrop (3, H, W) for `image`, in the frame's colour space.

    Colours are defined in sRGB and converted with `color_in_profile` when it is given. White and black
    are the profile's own 1.0 and 0.0. A plain colour comes back as a read-only broadcast view of one
    pixel. For "original" the result is `image` itself, marked so that `composite` returns it unchanged.
    """
    channels, height, width = image.shape
    device = image.device
    faces = faces or []

    if spec.kind == "original":
        original = image.view_as(image)
        original.is_original_backdrop = True
        return original
    # Plain colours are broadcast views of one pixel; `composite` recognises them by their zero strides.
    if spec.kind in ("white", "black", "color"):
        color = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}.get(spec.kind) or _to_profile(spec.color, color_in_profile)
        return torch.tensor(color, dtype=torch.float32, device=device).view(3, 1, 1).expand(3, height, width)
    if spec.kind == "studio-grey":
        return _studio_grey(height, width, _head_center(faces, matte), color_in_profile, device)
    if spec.kind == "blur":
        return _lens_blurred_background(image[:3], matte, faces)
    if spec.kind == "image":
        return _picture(spec.path, height, width, color_in_profile, device)
    raise ValueError(f"unknown backdrop kind {spec.kind!r}")


@dataclass(frozen=True)
class LightWrapBasis:
    """The light wrap's measures of a matte, the same for every backdrop; see `light_wrap_basis`."""

    alpha: torch.Tensor  # (1, H, W), the matte within 0..1
    small_alpha: torch.Tensor  # (1, h, w), at most LIGHT_WRAP_LONG_SIDE
    surround: torch.Tensor  # (1, h, w): the share of backdrop around each pixel
    boxes: list[tuple[int, int, int, int]]  # full-resolution boxes (top, bottom, left, right) over the subject's edge
    radius: int  # of the surround's window, in small pixels


def light_wrap_basis(matte: torch.Tensor) -> LightWrapBasis:
    """Measure, once per matte, how much backdrop surrounds each subject pixel, at reduced resolution."""
    low, high = torch.aminmax(matte)
    alpha = matte if 0 <= float(low) and float(high) <= 1 else matte.clamp(0, 1)
    height, width = alpha.shape[-2:]
    scale = min(1.0, LIGHT_WRAP_LONG_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small_alpha = _resize(alpha, size)
    radius = max(1, round(LIGHT_WRAP_RADIUS * max(size)))
    surround = box_mean(1 - small_alpha, radius)
    # Only pixels with some matte and some backdrop around take the wrap, box by box along the edge.
    near_edge = grown_mask((small_alpha[0] > 0) & (surround[0] > 1e-3), 1)
    boxes = [(0, height, 0, width)] if scale == 1.0 else band_rectangles(near_edge, (height, width))
    return LightWrapBasis(alpha, small_alpha, surround, boxes, radius)


def composite(
    foreground: torch.Tensor,
    matte: torch.Tensor,
    backdrop: torch.Tensor,
    light_wrap: float = 0.3,
    out: torch.Tensor | None = None,
    basis: LightWrapBasis | None = None,
) -> torch.Tensor:
    """Put the subject over the backdrop: foreground·matte + backdrop·(1 − matte), with a light wrap.

    The light wrap lets the backdrop's colour spill a little onto the subject's edge, as light from a real
    backdrop does, so the subject sits in it. Pixels with matte 0 are exactly the backdrop. An "original"
    backdrop from `render_backdrop` comes back unchanged. `out` (3, H, W) receives the result and may be
    `backdrop` itself, which saves a full-size copy when the backdrop is not needed afterwards; a plain
    colour's backdrop is a broadcast view and is then left alone. `basis`, from `light_wrap_basis` of the
    same matte, saves measuring it again for each backdrop.
    """
    if getattr(backdrop, "is_original_backdrop", False):
        return backdrop
    basis = basis if basis is not None else light_wrap_basis(matte)
    alpha = basis.alpha
    height, width = alpha.shape[-2:]
    plain_colour = backdrop.dim() == 3 and backdrop.stride(-1) == 0 and backdrop.stride(-2) == 0

    # 1. The backdrop's colour around each subject pixel, at reduced resolution (before `out` may overwrite
    #    the backdrop). A plain colour is its own surroundings.
    if light_wrap > 0:
        if plain_colour:
            spill = backdrop[:, :1, :1].expand(3, *basis.small_alpha.shape[-2:])
        else:
            small_backdrop = _resize(backdrop.expand(3, height, width), tuple(basis.small_alpha.shape[-2:]))
            spill = box_mean(small_backdrop * (1 - basis.small_alpha), basis.radius) / basis.surround.clamp_min(1e-4)

    # 2. The plain composite.
    if out is backdrop and not plain_colour:
        result = backdrop.lerp_(foreground[:3], alpha)
    else:
        result = torch.lerp(backdrop.expand_as(foreground[:3]), foreground[:3], alpha, out=None if out is backdrop else out)
    if light_wrap <= 0:
        return result

    # 3. Blend the spill into the subject's edge: the pixels of the edge boxes that hold some matte.
    rows, columns = box_pixels(basis.boxes, device=alpha.device)
    edge_alpha = alpha[0, rows, columns]
    some = edge_alpha > 0
    rows, columns, edge_alpha = rows[some], columns[some], edge_alpha[some]
    wrap_layers = torch.cat([basis.surround, spill])
    if tuple(wrap_layers.shape[-2:]) == (height, width):
        sampled = wrap_layers[:, rows, columns]
    else:
        sampled = sample_smooth_at(wrap_layers, rows, columns, (height, width))
    reach, spill_at = sampled[0], sampled[1:]
    amount = (light_wrap * edge_alpha * reach).clamp_(0, 1) * (reach > 1e-3)
    current = result[:, rows, columns]
    result[:, rows, columns] = current + amount * (spill_at - current)
    return result


def replace_backdrop(
    spec: BackdropSpec,
    image: torch.Tensor,
    matte: torch.Tensor,
    faces: list[Face] | None,
    color_in_profile: ColorInProfile | None = None,
    light_wrap: float = 0.3,
) -> torch.Tensor:
    """Decontaminate the subject's edge, render the backdrop and composite; "original" returns `image` itself."""
    from .matte import decontaminate

    if spec.kind == "original":
        return image
    backdrop = render_backdrop(spec, image, matte, faces, color_in_profile)
    return composite(decontaminate(image, matte), matte, backdrop, light_wrap)


def _studio_grey(height, width, center, color_in_profile, device) -> torch.Tensor:
    """Render a grey field lit behind the head: brightest at `center`, darker towards the corners, dithered."""
    # 1. The light level in sRGB by distance from the head, on a coarse grid (it is smooth).
    scale = min(1.0, STUDIO_GREY_LONG_SIDE / max(height, width))
    rows = (torch.arange(max(2, round(height * scale)), device=device, dtype=torch.float32) + 0.5) / scale - 0.5
    columns = (torch.arange(max(2, round(width * scale)), device=device, dtype=torch.float32) + 0.5) / scale - 0.5
    diagonal = math.hypot(height, width)
    distance = torch.sqrt((columns.view(1, -1) - center[0]) ** 2 + (rows.view(-1, 1) - center[1]) ** 2)
    falloff = 1 - torch.exp(-1.6 * (distance / (0.75 * diagonal)).clamp(0, 1.5) ** 2)
    level = STUDIO_GREY_CENTER - (STUDIO_GREY_CENTER - STUDIO_GREY_EDGE) * falloff / (1 - math.exp(-1.6))

    # 2. Each grey level into the frame's colour space through a lookup table, then to full size.
    greys = torch.linspace(0, 1, 65)
    table = torch.tensor([_to_profile((float(g), float(g), float(g)), color_in_profile) for g in greys], device=device)
    position = level.clamp(0, 1) * 64
    lower = position.floor().long().clamp(max=63)
    fraction = (position - lower)[None]
    colour = table[lower].permute(2, 0, 1) * (1 - fraction) + table[lower + 1].permute(2, 0, 1) * fraction
    colour = _resize(colour.contiguous(), (height, width))

    # 3. A fixed dither tile, so the same frame always renders the same backdrop.
    generator = torch.Generator().manual_seed(1)
    tile = torch.rand((64, 64), generator=generator) - torch.rand((64, 64), generator=generator)
    dither = tile.to(device).repeat(height // 64 + 1, width // 64 + 1)[:height, :width]
    return colour.add_(STUDIO_GREY_DITHER * dither).clamp_(0, 1)


def _head_center(faces: list[Face], matte: torch.Tensor) -> tuple[float, float]:
    """Return where the backdrop light centres: above the eyes of the largest face, else on the matte."""
    if faces:
        face = max(faces, key=lambda candidate: candidate.box[2] * candidate.box[3])
        right_eye, left_eye = face.eye_centers
        center = (right_eye + left_eye) / 2
        return float(center[0]), float(center[1] - 0.3 * face.box[3])
    height, width = matte.shape[-2:]
    weight = matte[0].clamp(0, 1)
    total = float(weight.sum())
    if total < 1:
        return width / 2, 0.4 * height
    columns = torch.arange(width, device=matte.device, dtype=torch.float32)
    rows = torch.arange(height, device=matte.device, dtype=torch.float32)
    center_x = float((weight.sum(0) * columns).sum()) / total
    top = float(rows[weight.max(1).values > 0.5].min()) if bool((weight > 0.5).any()) else 0.0
    return center_x, top + 0.15 * height


def _lens_blurred_background(image: torch.Tensor, matte: torch.Tensor, faces: list[Face]) -> torch.Tensor:
    """Fill the subject's hole in the original background from around it, then blur it by a disc like a wide-open lens."""
    height, width = image.shape[-2:]

    # 1. Work at a scale where the lens disc is small.
    face_width = max((face.box[2] for face in faces), default=0.25 * min(height, width))
    radius = max(BLUR_RADIUS * face_width, 0.01 * max(height, width))
    scale = min(1.0, BLUR_WORK_RADIUS / radius)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = _resize(image, size)
    small_alpha = _resize(matte.clamp(0, 1), size)

    # 2. Fill the subject's hole, grown a little so its edge colour does not bleed into the blur.
    subject = F.max_pool2d(small_alpha[None], kernel_size=5, stride=1, padding=2)[0]
    filled = fill_holes(small, 1 - subject.clamp(0, 1))

    # 3. The lens blur: a disc kernel, reflected at the borders.
    disc_radius = max(1, round(radius * scale))
    offsets = torch.arange(-disc_radius, disc_radius + 1, device=image.device, dtype=torch.float32)
    disc = ((offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) <= (disc_radius + 0.5) ** 2).float()
    kernel = (disc / disc.sum()).expand(3, 1, -1, -1).contiguous()
    padding_mode = "reflect" if min(size) > disc_radius else "replicate"
    padded = F.pad(filled[None], [disc_radius] * 4, mode=padding_mode)
    blurred = F.conv2d(padded, kernel, groups=3)[0]
    return _resize(blurred, (height, width)).clamp_(0, 1)


def fill_holes(colour: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fill where `weight` (1, H, W) is 0 with a smooth continuation of the weighted colours around it.

    Push-pull over an image pyramid: each coarser level averages the known colours, and holes take the
    coarser level's colour. The result carries no structure into the hole, only colour.
    """
    if min(colour.shape[-2:]) <= 2 or float(weight.min()) >= 0.999:
        return colour
    coarse_size = (max(1, (colour.shape[-2] + 1) // 2), max(1, (colour.shape[-1] + 1) // 2))
    coarse_weight = _resize(weight, coarse_size)
    coarse_colour = _resize(colour * weight, coarse_size) / coarse_weight.clamp_min(1e-6)
    coarse_colour = fill_holes(coarse_colour, (coarse_weight * 4).clamp(0, 1))
    upsampled = F.interpolate(coarse_colour[None], size=colour.shape[-2:], mode="bilinear")[0]
    return colour * weight + upsampled * (1 - weight)


def _picture(path: str, height: int, width: int, color_in_profile, device) -> torch.Tensor:
    """Load a custom backdrop picture (assumed sRGB), cover-fit it to the frame and convert it to the profile."""
    import cv2

    # 1. Read it as RGB floats, whatever its bit depth.
    pixels = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if pixels is None:
        raise _invalid(f"image:{path}", "image:PATH", f"backdrop picture could not be decoded: {path!r}")
    maximum = 65535.0 if pixels.dtype == np.uint16 else 255.0
    rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / maximum

    # 2. Cover-fit: scale until it covers the frame, then cut the middle.
    picture_height, picture_width = rgb.shape[:2]
    scale = max(height / picture_height, width / picture_width)
    fitted_width = max(width, round(picture_width * scale))
    fitted_height = max(height, round(picture_height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    rgb = cv2.resize(rgb, (fitted_width, fitted_height), interpolation=interpolation)
    top, left = (fitted_height - height) // 2, (fitted_width - width) // 2
    rgb = np.ascontiguousarray(rgb[top : top + height, left : left + width])
    picture = torch.from_numpy(rgb).to(device).permute(2, 0, 1).clamp_(0, 1)

    # 3. Into the frame's colour space.
    # NOTE: an ICC profile embedded in the picture is ignored; its pixels are taken as sRGB.
    if color_in_profile is not None:
        picture = _apply_color_table(picture, _color_table(color_in_profile, device))
    return picture


def _color_table(color_in_profile: ColorInProfile, device, nodes: int = 17) -> torch.Tensor:
    """Sample `color_in_profile` on a nodes³ sRGB grid; returns (3, blue, green, red) for grid_sample."""
    levels = np.linspace(0, 1, nodes)
    table = np.empty((nodes, nodes, nodes, 3), dtype=np.float32)
    for red_index, red in enumerate(levels):
        for green_index, green in enumerate(levels):
            for blue_index, blue in enumerate(levels):
                table[blue_index, green_index, red_index] = color_in_profile((red, green, blue))
    return torch.from_numpy(table).to(device).permute(3, 0, 1, 2).contiguous()


def _apply_color_table(picture: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Map every pixel of (3, H, W) sRGB through the 3D table by trilinear interpolation."""
    height, width = picture.shape[-2:]
    grid = (picture.permute(1, 2, 0) * 2 - 1).reshape(1, 1, height, width, 3)
    mapped = F.grid_sample(table[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return mapped[0, :, 0]


def _to_profile(color, color_in_profile: ColorInProfile | None) -> tuple[float, float, float]:
    if color_in_profile is None:
        return tuple(float(channel) for channel in color)
    return tuple(float(min(1.0, max(0.0, channel))) for channel in color_in_profile(tuple(color)))


def _invalid(value: str, allowed: str, detail: str) -> HeadshotError:
    return HeadshotError("invalid_option", detail=detail, option="backdrop", value=value, allowed=allowed)
