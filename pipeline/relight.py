"""Lighting styles (Rembrandt, loop, butterfly, split, rim, soft studio) applied to a portrait from its face mesh.

The new light is a shading ratio on luminance: the shading of the chosen setup over the head's normal map,
divided by an estimate of the shading as shot, so skin texture, colour and geometry stay those of the frame.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import HeadshotError
from .faces import Face
from .i18n import N_
from .relight_geometry import HeadFrame, HeadMaps, gaussian_blur, head_frame, head_maps
from .relight_shading import SETUPS, LightSetup, fit_shading_as_shot, shading

log = logging.getLogger(__name__)

# "Left" and "right" are camera left and right in the photographer's sense, so they name the sides of the image.
LIGHTS: dict[str, str] = {
    "original": N_("As shot"),
    "natural": N_("Natural"),
    "soft-studio": N_("Soft studio light"),
    "rembrandt-left": N_("Rembrandt (camera left)"),
    "rembrandt-right": N_("Rembrandt (camera right)"),
    "loop-left": N_("Loop (camera left)"),
    "loop-right": N_("Loop (camera right)"),
    "butterfly": N_("Butterfly"),
    "split-left": N_("Split (camera left)"),
    "split-right": N_("Split (camera right)"),
    "rim-left": N_("Rim light (camera left)"),
    "rim-right": N_("Rim light (camera right)"),
}
UNCHANGED_LIGHTS = ("original", "natural")

DISPLAY_GAMMA = 2.2  # frames are treated as gamma-2.2 encoded; a gain g on linear light is g**(1/2.2) on values
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)
HIGHLIGHT_KNEE = 0.85  # brightened values above this roll off towards 1 instead of clipping
BODY_REACH = (1.3, 3.0)  # the light's effect fades from full to none between these head radii
GAIN_SMOOTHING = 0.14  # Gaussian sigma on the gain, in face widths
RIM_SMOOTHING = 0.01  # the same for rim highlights
KEEP_DRAMA_MARGIN = 0.15  # a side-lit style ends at least this much (log, linear light) past the shot's ratio
# A light from behind brightens the subject's outline on its side: a band this many face widths wide, lifted this
# share of the way to white at its edge.
RIM_EDGE_WIDTH, RIM_EDGE_STRENGTH = 0.04, 0.8


def parse_light(name: str) -> str:
    """Return the lighting style's canonical name; raise `invalid_option` for an unknown one."""
    canonical = name.strip().lower()
    if canonical not in LIGHTS:
        raise HeadshotError(
            "invalid_option", detail=f"unknown lighting style {name!r}", option="--light", value=name, allowed=", ".join(LIGHTS)
        )
    return canonical


def relight(
    image: torch.Tensor,
    faces: list[Face],
    light: str,
    matte: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Return `image` (3, H, W) lit in the style `light`; `matte` (1, H, W) keeps the backdrop untouched.

    Without a matte only the face and a feathered margin around it change. Faces without a mesh are left as
    they are. `strength` 0..1 blends from the frame as shot to the full style.
    """
    light = parse_light(light)
    if not 0.0 <= strength <= 1.0 or not math.isfinite(strength):
        raise ValueError(f"strength must be within 0..1, got {strength}")
    if light in UNCHANGED_LIGHTS or strength == 0.0:
        return image.clone()

    # 1. One log-gain map per face on its own working grid, brought to full resolution over its crop.
    setup = SETUPS[light]
    height, width = image.shape[-2:]
    gains = []
    for face in faces:
        if face.landmarks is None:
            log.info("relight %s: a face without a mesh at %s is left as shot", light, face.box)
            continue
        gains.append(_face_log_gain(image, face.landmarks, setup, matte, strength))
    if not gains:
        log.info("relight %s: no face with a mesh, frame left as shot", light)
        return image.clone()

    # 2. Where heads overlap, average their gains by influence instead of stacking them.
    union = (
        min(gain[0].crop[0] for gain in gains),
        min(gain[0].crop[1] for gain in gains),
        max(gain[0].crop[2] for gain in gains),
        max(gain[0].crop[3] for gain in gains),
    )
    ux0, uy0, ux1, uy1 = union
    weighted_sum = torch.zeros((uy1 - uy0, ux1 - ux0), device=image.device)
    weight_sum = torch.zeros_like(weighted_sum)
    reach = torch.zeros_like(weighted_sum)
    for frame, log_gain, influence, face_inside in gains:
        x0, y0, x1, y1 = frame.crop
        full_gain = _resize(log_gain, (y1 - y0, x1 - x0))
        full_influence = _resize(influence, (y1 - y0, x1 - x0))
        if matte is not None:
            person = torch.maximum(matte[0, y0:y1, x0:x1].float(), _resize(face_inside, (y1 - y0, x1 - x0)))
            full_influence = full_influence * person
        weighted_sum[y0 - uy0 : y1 - uy0, x0 - ux0 : x1 - ux0] += full_gain * full_influence
        weight_sum[y0 - uy0 : y1 - uy0, x0 - ux0 : x1 - ux0] += full_influence
        window = reach[y0 - uy0 : y1 - uy0, x0 - ux0 : x1 - ux0]
        torch.maximum(window, full_influence, out=window)
    log_gain = weighted_sum / weight_sum.clamp_min(1.0)

    # 3. Apply on values: the linear gain becomes g**(1/gamma), brightening rolls off below white.
    result = image.clone()
    lit = _apply_gain(image[:, uy0:uy1, ux0:ux1], log_gain)

    # 4. A light from behind also outlines the hair and shoulders, which the face mesh does not cover: the
    #    subject's edge that faces the light brightens towards white.
    if matte is not None:
        face_width = max(2 * gain[0].face_half_width for gain in gains)
        rim = _silhouette_rim(matte[0, uy0:uy1, ux0:ux1].float(), setup, face_width)
        if rim is not None:
            lit = lit + (1 - lit) * (RIM_EDGE_STRENGTH * strength * rim * reach)
    result[:, uy0:uy1, ux0:ux1] = lit
    return result


def _face_log_gain(
    image: torch.Tensor, landmarks: np.ndarray, setup: LightSetup, matte: torch.Tensor | None, strength: float
) -> tuple[HeadFrame, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return one face's head frame and, on its working grid, the log gain on linear light, where that gain
    applies before the matte is taken into account, and the inside of the face mesh."""
    device = image.device
    frame = head_frame(landmarks, tuple(image.shape[-2:]))
    x0, y0, x1, y1 = frame.crop
    face_width = 2 * frame.face_half_width

    # 1. The crop and its matte on the working grid.
    crop = F.interpolate(image[None, :, y0:y1, x0:x1], size=frame.grid_size, mode="area")[0]
    working_matte = None
    if matte is not None:
        working_matte = F.interpolate(matte[None, :, y0:y1, x0:x1].float(), size=frame.grid_size, mode="area")[0]

    # 2. Geometry, and the shading as shot fitted to the skin's luminance.
    maps = head_maps(landmarks, frame, working_matte, device)
    weights = torch.tensor(LUMA_WEIGHTS, device=device).view(3, 1, 1)
    luminance = (crop.clamp(0, 1) ** DISPLAY_GAMMA * weights).sum(dim=0)
    log_luminance = torch.log(gaussian_blur(luminance[None], 0.01 * face_width)[0] + 1e-4)
    log_shading_as_shot = fit_shading_as_shot(log_luminance, maps)

    # 3. The new shading, anchored so the skin's bright side sits at the shot's level times the style's exposure.
    front_shading, rim_shading = shading(maps, setup, face_width)
    log_shading_new = torch.log(front_shading)
    skin = maps.skin_mask > 0.5
    anchor = _quantile(log_shading_as_shot[skin], setup.anchor_quantile) - _quantile(
        log_shading_new[skin], setup.anchor_quantile
    )
    log_gain = log_shading_new + anchor + math.log(setup.exposure) - log_shading_as_shot
    log_gain = log_gain.clamp(math.log(setup.min_gain), math.log(setup.max_gain))

    # 4. Keep only the broad light: fine gain structure around eyes, brows and nose reads as new geometry,
    #    and the face mesh of the result would follow it. Rim highlights stay thin, added on top, and keep off
    #    the inside of the face, where they would shift the mesh's outline.
    log_gain = gaussian_blur(log_gain[None], GAIN_SMOOTHING * face_width)[0]
    if bool((rim_shading > 0).any()):
        rim_shading = rim_shading * (1 - torch.clamp(2 * maps.face_mask - 1, 0, 1))
        rim = gaussian_blur((rim_shading / front_shading)[None], RIM_SMOOTHING * face_width)[0]
        log_gain = log_gain + torch.log1p(rim)

    # 5. Balance the cheeks to the style's own ratio, which the fit of the shading as shot can leave off.
    target = _target_cheek_ratio(crop, gaussian_blur(log_shading_new[None], GAIN_SMOOTHING * face_width)[0], maps, setup)
    for _ in range(4):
        log_gain = log_gain + _cheek_balance(_apply_gain(crop, log_gain), maps, target)
        log_gain = log_gain.clamp(math.log(setup.min_gain), math.log(setup.max_gain))
    log_gain = log_gain * strength

    # 6. Where the new light acts: with a matte the head, fading over neck and shoulders; else the face only.
    # NOTE: without a matte the rim styles barely show, because their highlights sit outside the face.
    face_inside = torch.clamp(2 * maps.face_mask - 1, 0, 1)
    if matte is not None:
        start, end = BODY_REACH
        fade = torch.clamp((maps.head_radius - start) / (end - start), 0, 1)
        influence = 1 - fade * fade * (3 - 2 * fade)
    else:
        influence = _face_margin(maps.face_mask, face_width)
    return frame, log_gain, influence, face_inside


def _silhouette_rim(matte: torch.Tensor, setup: LightSetup, face_width: float) -> torch.Tensor | None:
    """Return where the setup's lights from behind catch the subject's outline (h, w), 0..1; None without them.

    A pixel of the subject catches the light where the matte, followed RIM_EDGE_WIDTH face widths towards the
    light (as seen in the image), runs out into backdrop: a band along the edges that face the light.
    """
    behind = [light for light in setup.lights if light.from_behind]
    if not behind:
        return None
    height, width = matte.shape
    rim = torch.zeros_like(matte)
    reach = max(1.0, RIM_EDGE_WIDTH * face_width)
    for light in behind:
        across, up = math.sin(math.radians(light.azimuth)), math.sin(math.radians(light.elevation))
        length = math.hypot(across, up)
        if length < 1e-6:
            continue
        shift_x, shift_y = round(across / length * reach), round(-up / length * reach)
        # The matte as seen from `reach` pixels towards the light; past the image's edge there is no backdrop.
        pad = max(abs(shift_x), abs(shift_y))
        padded = F.pad(matte[None, None], (pad, pad, pad, pad), value=1.0)[0, 0]
        ahead = padded[pad + shift_y : pad + shift_y + height, pad + shift_x : pad + shift_x + width]
        torch.maximum(rim, (matte - ahead).clamp(0, 1), out=rim)
    rim = gaussian_blur(rim[None], 0.3 * reach)[0]
    return (rim * 1.5).clamp(0, 1) * matte


def _resize(plane: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(plane[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def _apply_gain(values: torch.Tensor, log_gain: torch.Tensor) -> torch.Tensor:
    """Apply a log gain on linear light to gamma-encoded values (3, h, w); brightening rolls off below white."""
    value_gain = torch.exp(log_gain / DISPLAY_GAMMA)
    brightest = values.max(dim=0).values.clamp_min(1e-6)
    return (values * _roll_off_highlights(brightest, value_gain)).clamp(0, 1)


def _cheek_luma_ratio(values: torch.Tensor, maps: HeadMaps) -> torch.Tensor:
    """Return log(image-left cheek / image-right cheek) of gamma-encoded luma, scaled to linear light."""
    left, right = maps.cheeks
    luma = (values * torch.tensor(LUMA_WEIGHTS, device=values.device).view(3, 1, 1)).sum(dim=0)
    return DISPLAY_GAMMA * torch.log(luma[left].mean().clamp_min(1e-4) / luma[right].mean().clamp_min(1e-4))


def _target_cheek_ratio(crop: torch.Tensor, log_shading_new: torch.Tensor, maps: HeadMaps, setup: LightSetup) -> float:
    """Return the cheek ratio (log, linear light) the style should end at.

    It is the new light's own ratio on equal skin. A style with its key to one side ends at no less than its
    minimum lighting ratio, and never below the shot's ratio towards that side. `even_out` pulls towards even
    cheeks.
    """
    left, right = maps.cheeks
    if not bool(left.any()) or not bool(right.any()):
        return 0.0
    on_screen = torch.exp(log_shading_new / DISPLAY_GAMMA)
    target = DISPLAY_GAMMA * float(torch.log(on_screen[left].mean() / on_screen[right].mean()))
    as_shot = float(_cheek_luma_ratio(crop, maps))
    least = math.log(setup.min_lighting_ratio)
    if setup.key_side < 0:
        target = max(target, as_shot + KEEP_DRAMA_MARGIN, least)
    elif setup.key_side > 0:
        target = min(target, as_shot - KEEP_DRAMA_MARGIN, -least)
    return (1 - setup.even_out) * target


def _cheek_balance(relit: torch.Tensor, maps: HeadMaps, target: float) -> torch.Tensor:
    """Return a log gain that brings the cheeks of `relit` to the target ratio.

    The correction is a smooth step across the face (flat beyond the cheeks), so it reads as a broader source
    on one side, not as a patch. Each call corrects by at most a factor of 2 either way.
    """
    left, right = maps.cheeks
    if not bool(left.any()) or not bool(right.any()):
        return torch.zeros_like(maps.face_u)
    step = torch.tanh(maps.face_u / 0.5)
    step_difference = step[right].mean() - step[left].mean()
    if float(step_difference) < 0.2:
        return torch.zeros_like(maps.face_u)
    excess = _cheek_luma_ratio(relit, maps) - target
    correction = (excess / step_difference) * step
    limit = math.log(2.0)
    return correction.clamp(-limit, limit)


def _face_margin(face_mask: torch.Tensor, face_width: float) -> torch.Tensor:
    grown = gaussian_blur(face_mask[None], 0.05 * face_width)[0]
    return torch.clamp(grown * 2.0, 0, 1)


def _roll_off_highlights(brightest: torch.Tensor, value_gain: torch.Tensor) -> torch.Tensor:
    """Limit a brightening gain so that the brightest channel approaches white smoothly; darkening is untouched."""
    target = brightest * value_gain
    headroom = 1 - HIGHLIGHT_KNEE
    rolled = torch.where(
        target > HIGHLIGHT_KNEE,
        HIGHLIGHT_KNEE + headroom * (1 - torch.exp(-(target - HIGHLIGHT_KNEE) / headroom)),
        target,
    )
    limited = torch.minimum(value_gain, rolled / brightest)
    return torch.maximum(limited, torch.minimum(value_gain, torch.ones_like(value_gain)))


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    if values.numel() == 0:
        return torch.zeros((), device=values.device)
    return torch.quantile(values.float()[:: max(1, values.numel() // 100000)], q)
