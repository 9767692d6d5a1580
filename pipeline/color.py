"""Colour management for the photographer's files: ICC profiles in, sRGB for measuring, and back out.

Transforms run through LittleCMS (Pillow's ImageCms) with relative colorimetric
intent and black point compensation, the defaults of Photoshop's colour settings.
"""

from __future__ import annotations

import functools
import io
import logging

import cv2
import numpy as np
from PIL import Image, ImageCms

log = logging.getLogger(__name__)

# Matrix/TRC profiles treat every intent as colorimetric; LUT (CMYK) profiles honour it.
_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
_FLAGS = ImageCms.Flags.BLACKPOINTCOMPENSATION


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """Return the bytes of LittleCMS's built-in sRGB profile (ICC v4), embedded where pixels were converted to sRGB."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def profile_color_space(icc_profile: bytes | None) -> str | None:
    """Return the data colour space of a profile ('RGB', 'CMYK', 'GRAY', 'Lab', ...), or None when it is not a valid ICC header."""
    if not icc_profile or len(icc_profile) < 128 or icc_profile[36:40] != b"acsp":
        return None
    return icc_profile[16:20].decode("ascii", "replace").strip()


def profile_description(icc_profile: bytes | None) -> str:
    """Return the profile's description tag ('' when there is none or the profile cannot be parsed)."""
    profile = _load_profile(icc_profile) if icc_profile else None
    if profile is None:
        return ""
    try:
        return ImageCms.getProfileDescription(profile).strip()
    except ImageCms.PyCMSError:
        return ""


def is_srgb(icc_profile: bytes | None) -> bool:
    """Tell whether pixels tagged with this profile can be taken as sRGB without a transform.

    Untagged pixels count as sRGB, which is the convention of browsers and
    cameras. So does any profile whose description starts with "sRGB", because
    the sRGB IEC61966-2.1 profiles that cameras and Lightroom embed describe the
    same colour space.
    """
    if not icc_profile or icc_profile == srgb_profile():
        return True
    return profile_description(icc_profile).lower().startswith("srgb")


def to_srgb8(pixels: np.ndarray, icc_profile: bytes | None) -> np.ndarray:
    """Convert (H, W, 3) RGB pixels, uint8 or uint16, in the given profile to uint8 sRGB for measuring.

    16-bit pixels are reduced to 8 bits before the transform, which is precise
    enough for analysis but not for output. A profile that cannot be parsed, or
    that is not an RGB profile, is ignored with a warning and the pixels are
    taken as sRGB.
    """
    # 1. Reduce to 8 bits.
    if pixels.dtype == np.uint16:
        rgb8 = cv2.convertScaleAbs(pixels, alpha=1 / 257)
    elif pixels.dtype == np.uint8:
        rgb8 = pixels
    else:
        raise TypeError(f"to_srgb8 expects uint8 or uint16 pixels, got {pixels.dtype}")

    # 2. Transform from the embedded profile when it is not sRGB already.
    if is_srgb(icc_profile):
        return np.ascontiguousarray(rgb8)
    transform = _transform(icc_profile, None, "RGB", "RGB")
    if transform is None:
        return np.ascontiguousarray(rgb8)
    converted = ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgb8), "RGB"), transform)
    return np.asarray(converted)


def srgb_color_in_profile(rgb: tuple[int, int, int], icc_profile: bytes | None) -> tuple[float, float, float]:
    """Return the values (0..1) that an sRGB colour has in an RGB profile, e.g. a backdrop colour for an Adobe RGB file.

    `rgb` is three integers 0..255, or three floats 0..1 (a colour given as floats
    is read on the 0..1 scale). Pillow's LittleCMS binding transforms 8-bit images
    only, so the result is precise to 1/255. Raises ValueError for a component out
    of range or a profile that is not an RGB profile.
    """
    fractions = _srgb_fractions(rgb)
    if is_srgb(icc_profile):
        return fractions
    if profile_color_space(icc_profile) != "RGB":
        raise ValueError(f"the target profile is not an RGB profile ({profile_color_space(icc_profile)})")

    transform = _transform(None, icc_profile, "RGB", "RGB")
    if transform is None:
        return fractions
    swatch = Image.new("RGB", (1, 1), tuple(round(value * 255) for value in fractions))
    converted = ImageCms.applyTransform(swatch, transform).getpixel((0, 0))
    return tuple(channel / 255 for channel in converted)


def convert_to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert an 8-bit Pillow image ('RGB', 'CMYK' or 'L') from its profile to sRGB, returning an 'RGB' image.

    Without a usable profile, CMYK and grey are converted with Pillow's plain
    formulas, which is what every viewer shows for an untagged file.
    """
    usable = bool(icc_profile) and profile_color_space(icc_profile) == _COLOR_SPACE_OF_MODE.get(image.mode)
    return _convert(image, "RGB", icc_profile, None, usable)


def convert_srgb_to_cmyk(image: Image.Image, cmyk_profile: bytes | None, source_profile: bytes | None) -> Image.Image:
    """Convert an 'RGB' Pillow image in `source_profile` (None: sRGB) to CMYK, through `cmyk_profile` when there is one."""
    if profile_color_space(source_profile) != "RGB":
        source_profile = None
    return _convert(image, "CMYK", source_profile, cmyk_profile, profile_color_space(cmyk_profile) == "CMYK")


def convert_srgb_to_grey(image: Image.Image, grey_profile: bytes | None) -> Image.Image:
    """Convert a neutral 'RGB' Pillow image in sRGB to 'L' in `grey_profile`, the reverse of `convert_to_srgb`.

    Without a usable grey profile the grey values are the sRGB ones (Pillow's plain formula).
    """
    return _convert(image, "L", None, grey_profile, profile_color_space(grey_profile) == "GRAY")


def _convert(image: Image.Image, out_mode: str, source_profile, target_profile, use_profiles: bool) -> Image.Image:
    """Convert through the transform between two profiles (None: sRGB), else with Pillow's plain formula."""
    transform = _transform(source_profile, target_profile, image.mode, out_mode) if use_profiles else None
    if transform is None:
        return image.convert(out_mode)
    return ImageCms.applyTransform(image, transform)


_COLOR_SPACE_OF_MODE = {"RGB": "RGB", "CMYK": "CMYK", "L": "GRAY"}


def _srgb_fractions(rgb) -> tuple[float, float, float]:
    """Return an sRGB colour given as integers 0..255 or floats 0..1 as floats 0..1."""
    components = tuple(rgb)
    if len(components) != 3:
        raise ValueError(f"an sRGB colour has three components, got {rgb!r}")
    if any(isinstance(value, (float, np.floating)) for value in components):
        if not all(0.0 <= float(value) <= 1.0 for value in components):
            raise ValueError(f"sRGB colour components given as floats must be 0..1, got {rgb!r}")
        return tuple(float(value) for value in components)
    if not all(0 <= int(value) <= 255 for value in components):
        raise ValueError(f"sRGB colour components must be 0..255, got {rgb!r}")
    return tuple(int(value) / 255 for value in components)


def _load_profile(icc_profile: bytes) -> ImageCms.ImageCmsProfile | None:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError) as error:
        log.warning("ignoring an ICC profile that cannot be parsed: %s", error)
        return None


@functools.lru_cache(maxsize=16)
def _transform(
    source_profile: bytes | None, target_profile: bytes | None, in_mode: str, out_mode: str
) -> ImageCms.ImageCmsTransform | None:
    """Build (and cache) a transform between two profiles; None stands for sRGB. Returns None when a profile is unusable."""
    source = _load_profile(source_profile) if source_profile else ImageCms.createProfile("sRGB")
    target = _load_profile(target_profile) if target_profile else ImageCms.createProfile("sRGB")
    if source is None or target is None:
        return None
    try:
        return ImageCms.buildTransform(source, target, in_mode, out_mode, renderingIntent=_INTENT, flags=_FLAGS)
    except ImageCms.PyCMSError as error:
        log.warning("cannot build a colour transform (%s -> %s): %s", in_mode, out_mode, error)
        return None
