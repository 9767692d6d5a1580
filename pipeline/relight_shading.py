"""Studio light setups and the shading they cast on a head's normal map, plus an estimate of the shading as shot.

Shading is a per-pixel irradiance factor (linear light, arbitrary scale): ambient plus key, fill and rim lights,
each Lambertian with a soft wrap, the key also blocked by cast shadows found by marching over the depth map.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .relight_geometry import HeadMaps, gaussian_blur


@dataclass(frozen=True)
class Light:
    """One light, aimed at the face. Azimuth in degrees from the camera axis, negative to camera left; elevation up."""

    azimuth: float
    elevation: float
    intensity: float
    wrap: float = 0.2  # how far the light wraps past the terminator; larger sources wrap more
    casts_shadows: bool = False

    @property
    def from_behind(self) -> bool:
        """True for a rim or kicker light: it lights only edges that turn away from the camera."""
        return abs(self.azimuth) > 100

    def direction(self) -> torch.Tensor:
        azimuth, elevation = math.radians(self.azimuth), math.radians(self.elevation)
        return torch.tensor(
            [math.sin(azimuth) * math.cos(elevation), math.sin(elevation), math.cos(azimuth) * math.cos(elevation)],
            dtype=torch.float32,
        )


@dataclass(frozen=True)
class LightSetup:
    """A lighting style: its lights, the ambient level, and how bright the face ends up against the shot."""

    lights: tuple[Light, ...]
    ambient: float
    exposure: float = 1.0  # face brightness after relighting, relative to as shot
    max_gain: float = 2.5
    min_gain: float = 0.2
    min_lighting_ratio: float = 1.0  # key-side cheek over shadow-side cheek, linear light, whatever the pose
    anchor_quantile: float = 0.8  # skin brightness quantile kept at the shot's level (times `exposure`)
    even_out: float = 0.0  # 0..1, how far the cheeks are pulled to an even ratio instead of the light's own

    @property
    def key_side(self) -> int:
        """-1 for a key on camera left, 1 on camera right, 0 for a frontal key or one from behind."""
        azimuth = self.lights[0].azimuth
        return int(math.copysign(1, azimuth)) if 10 <= abs(azimuth) <= 100 else 0


def _mirrored(setup: LightSetup) -> LightSetup:
    lights = tuple(
        Light(-light.azimuth, light.elevation, light.intensity, light.wrap, light.casts_shadows) for light in setup.lights
    )
    return dataclasses.replace(setup, lights=lights)


# The "-left" setups put the key on camera left (the image's left side); "-right" setups are their mirror images.
_REMBRANDT_LEFT = LightSetup(
    lights=(Light(-50, 40, 1.0, wrap=0.15, casts_shadows=True), Light(30, 5, 0.16, wrap=0.5)),
    ambient=0.12,
    exposure=0.9,
    min_lighting_ratio=3.0,
)
_LOOP_LEFT = LightSetup(
    lights=(Light(-35, 30, 1.0, wrap=0.2, casts_shadows=True), Light(25, 5, 0.22, wrap=0.5)),
    ambient=0.17,
    exposure=0.9,
    min_lighting_ratio=2.2,
)
_SPLIT_LEFT = LightSetup(
    lights=(Light(-90, 10, 1.0, wrap=0.1, casts_shadows=True), Light(60, 0, 0.06, wrap=0.5)),
    ambient=0.1,
    exposure=0.9,
    min_gain=0.15,
    min_lighting_ratio=4.5,
)
_RIM_LEFT = LightSetup(
    lights=(Light(-140, 15, 3.0, wrap=0.05), Light(0, 15, 0.45, wrap=0.6)),
    ambient=0.12,
    exposure=0.7,
    max_gain=4.0,
)
SETUPS: dict[str, LightSetup] = {
    "soft-studio": LightSetup(
        lights=(Light(0, 25, 1.0, wrap=0.6), Light(0, -5, 0.45, wrap=0.6)),
        ambient=0.25,
        exposure=1.05,
        max_gain=3.5,
        min_gain=0.4,
        anchor_quantile=0.5,
        even_out=1.0,
    ),
    "rembrandt-left": _REMBRANDT_LEFT,
    "rembrandt-right": _mirrored(_REMBRANDT_LEFT),
    "loop-left": _LOOP_LEFT,
    "loop-right": _mirrored(_LOOP_LEFT),
    "butterfly": LightSetup(
        lights=(Light(0, 45, 1.0, wrap=0.2, casts_shadows=True), Light(0, -25, 0.22, wrap=0.5)),
        ambient=0.2,
        exposure=1.05,
    ),
    "split-left": _SPLIT_LEFT,
    "split-right": _mirrored(_SPLIT_LEFT),
    "rim-left": _RIM_LEFT,
    "rim-right": _mirrored(_RIM_LEFT),
}


def wrapped_lambert(cosine: torch.Tensor, wrap: float) -> torch.Tensor:
    """Lambert's cosine law softened past the terminator, as a large source does."""
    return torch.clamp((cosine + wrap) / (1 + wrap), min=0.0) ** (1 + wrap)


def cast_shadow(maps: HeadMaps, direction: torch.Tensor, face_width: float) -> torch.Tensor:
    """Return how much each pixel is hidden from a light, 0..1, by marching towards it over the depth map.

    Only the face casts shadows worth drawing (nose, brow, chin), so the march reaches a third of the face
    width. The result is blurred as a medium-sized source would blur it.
    """
    horizontal = math.hypot(float(direction[0]), float(direction[1]))
    if horizontal < 0.05 or float(direction[2]) <= 0:
        return torch.zeros_like(maps.depth)

    # 1. Image-plane step towards the light, and how much the ray rises (towards the camera) per pixel.
    step_x, step_y = float(direction[0]) / horizontal, -float(direction[1]) / horizontal
    rise_per_pixel = float(direction[2]) / horizontal
    reach = 0.33 * face_width
    step_count = 24
    softness = 0.02 * face_width
    depth = maps.depth
    height, width = depth.shape

    # 2. March: a pixel is in shadow where the surface ahead rises above the ray. Outside the grid is far behind.
    pad = int(math.ceil(reach)) + 1
    floor = float(depth.min())
    padded = torch.nn.functional.pad(depth[None, None], (pad, pad, pad, pad), value=floor)[0, 0]
    occlusion = torch.zeros_like(depth)
    for step in range(1, step_count + 1):
        distance = reach * step / step_count
        shift_x, shift_y = round(step_x * distance), round(step_y * distance)
        ahead = padded[pad + shift_y : pad + shift_y + height, pad + shift_x : pad + shift_x + width]
        ray = depth + rise_per_pixel * distance
        occlusion = torch.maximum(occlusion, torch.clamp((ahead - ray - 0.5) / softness, 0, 1))

    # 3. Soften; only the face and what lies just around it receive shadows.
    occlusion = gaussian_blur(occlusion[None], 0.02 * face_width)[0]
    return occlusion * torch.clamp(2.5 - maps.head_radius * 1.5, 0, 1)


def shading(maps: HeadMaps, setup: LightSetup, face_width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the new shading (h, w) of a light setup over the head's normal map: front lights and ambient,
    and apart from it the lights from behind, whose thin edge highlights must not be smoothed away."""
    front = torch.full_like(maps.depth, setup.ambient)
    behind = torch.zeros_like(maps.depth)
    for light in setup.lights:
        direction = light.direction().to(maps.normals.device)
        cosine = torch.einsum("chw,c->hw", maps.normals, direction)
        contribution = light.intensity * wrapped_lambert(cosine, light.wrap)
        if light.casts_shadows:
            contribution = contribution * (1 - 0.85 * cast_shadow(maps, direction, face_width))
        if light.from_behind:
            behind = behind + contribution
        else:
            front = front + contribution
    return front, behind


def shading_basis(maps: HeadMaps) -> torch.Tensor:
    """Return the (K, h, w) functions the shading as shot is fitted with: normals plus a left/right trend.

    Across-face position is clamped to the face so the trend does not run away over hair and shoulders.
    """
    across = torch.clamp(maps.face_u, -1.0, 1.0)
    return torch.stack(
        [torch.ones_like(across), maps.normals[0], maps.normals[1], maps.normals[2], across, across**2, across**3]
    )


def fit_shading_as_shot(log_luminance: torch.Tensor, maps: HeadMaps) -> torch.Tensor:
    """Estimate the shading the frame was shot with, as log shading (h, w), from the face skin's luminance.

    A robust least-squares fit of log luminance over the skin: beard, stubble, make-up and specular highlights
    are outliers that the reweighting pushes aside, so the fit follows the light rather than the albedo.
    """
    basis = shading_basis(maps)
    count = basis.shape[0]
    skin = maps.skin_mask > 0.5
    if int(skin.sum()) < 4 * count:
        return torch.zeros_like(log_luminance)

    # 1. Samples on the skin (subsampled to keep the solve small).
    design = basis[:, skin].T.cpu().double()
    target = log_luminance[skin].cpu().double()
    if design.shape[0] > 20000:
        keep = torch.linspace(0, design.shape[0] - 1, 20000).long()
        design, target = design[keep], target[keep]

    # 2. Iteratively reweighted least squares with Tukey weights, ridge-regularized against collinear terms.
    weights = torch.ones_like(target)
    ridge = 1e-3 * design.shape[0] * torch.eye(count, dtype=design.dtype, device=design.device)
    ridge[0, 0] = 0
    coefficients = torch.zeros(count, dtype=design.dtype, device=design.device)
    for _ in range(5):
        weighted = design * weights[:, None]
        coefficients = torch.linalg.solve(weighted.T @ design + ridge, weighted.T @ target)
        residual = target - design @ coefficients
        spread = 1.4826 * residual.abs().median().clamp_min(1e-3)
        scaled = residual / (4.685 * spread)
        weights = torch.where(scaled.abs() < 1, (1 - scaled**2) ** 2, torch.zeros_like(scaled))

    return torch.einsum("khw,k->hw", basis, coefficients.float().to(basis.device))
