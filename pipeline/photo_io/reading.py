"""Read photos: the header facts without decoding (`probe`), full-resolution pixels (`read_photo`) and small sRGB
previews for frame analysis (`read_preview`), all turned upright by their EXIF orientation."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageChops

from ..color import convert_to_srgb, profile_color_space, srgb_profile, to_srgb8
from ..errors import HeadshotError
from ..i18n import _
from .failures import _decode_error, _invalid_option, _unreadable
from .formats import (
    DEFAULT_MAX_PIXELS,
    _PILLOW_OPENERS,
    _PNG_SIGNATURE,
    _check_container_length,
    _check_pixel_count,
    _megapixels,
    _png_header_size,
    _raise_pillow_pixel_limit,
    _sniff_format,
    _stored_size,
    _webp_header_size,
)
from .metadata import _as_bytes, _exif_orientation, _jpeg_iptc, _normalized_exif, _tiff_exif, _xmp_orientation

log = logging.getLogger(__name__)

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


@dataclass
class PhotoInfo:
    """The facts a file's header gives about a photo, read without decoding pixels.

    `width` and `height` are after the EXIF orientation is applied. `exif` is the
    EXIF block as a JPEG APP1 segment carries it ("Exif\\0\\0" and a TIFF
    structure); `xmp` is the XMP packet; `iptc` the raw IPTC-IIM records.
    """

    path: Path
    format: str
    width: int
    height: int
    bit_depth: int
    has_alpha: bool
    mode: str
    orientation: int
    icc_profile: bytes | None
    exif: bytes | None
    xmp: bytes | None
    iptc: bytes | None


@dataclass
class Photo:
    """A decoded photo: (H, W, 3) RGB pixels, upright, uint8 or uint16, with the alpha matte apart."""

    info: PhotoInfo
    pixels: np.ndarray
    alpha: np.ndarray | None
    icc_profile: bytes | None


@dataclass
class Preview:
    """A small upright sRGB copy of a photo for frame analysis; `scale` is preview pixels per original pixel."""

    rgb: np.ndarray
    scale: float
    info: PhotoInfo


# --------------------------------------------------------------------------
# Reading


def probe(path: str | os.PathLike, max_pixels: int | None = None) -> PhotoInfo:
    """Read a photo's header: format, size after orientation, bit depth, alpha and metadata, without decoding pixels."""
    with _open_photo(Path(path), max_pixels) as (info, _image):
        return info


def read_photo(path: str | os.PathLike, max_pixels: int | None = None) -> Photo:
    """Decode a photo at full resolution and bit depth, upright, as RGB with the alpha matte apart.

    CMYK and greyscale sources with a profile are converted to sRGB (8 bits) and
    `Photo.icc_profile` is then the sRGB profile; RGB sources keep their own.
    """
    path = Path(path)
    with _open_photo(path, max_pixels) as (info, image):
        _check_complete(path, info, image)
        if info.bit_depth == 16:
            pixels, alpha, icc_profile, upright = _decode_16bit(path, info, image)
        else:
            pixels, alpha, icc_profile, upright = _decode_8bit(path, info, image)

    if not upright:
        pixels = _apply_orientation(pixels, info.orientation)
        alpha = _apply_orientation(alpha, info.orientation) if alpha is not None else None
    return Photo(info=info, pixels=pixels, alpha=alpha, icc_profile=icc_profile)


def read_preview(path: str | os.PathLike, max_side: int = 1600, max_pixels: int | None = None) -> Preview:
    """Decode a small upright sRGB copy of a photo, fast enough to analyse every frame of a session.

    JPEGs are decoded at 1/2, 1/4 or 1/8 size by DCT scaling. The smallest size
    whose long side is still at least 3/4 of `max_side` is chosen. So the
    preview's long side lies between 3/4 of `max_side` and `max_side`, or is the
    original's when that is smaller, and the preview is never enlarged. Other
    formats are decoded in full and reduced. The ICC transform to sRGB runs on
    the small image.
    """
    path = Path(path)
    if max_side < 1:
        raise _invalid_option(path, "max_side", max_side, _("a whole number of pixels, 1 or more"),
                              "max_side must be positive")

    with _open_photo(path, max_pixels) as (info, image):
        # 1. Decode, at a DCT-scaled size for JPEG.
        _check_complete(path, info, image)
        if info.format == "jpeg":
            _choose_jpeg_draft(image, max_side)
        if info.bit_depth == 16:
            pixels, _alpha, icc_profile, upright = _decode_16bit(path, info, image)
        else:
            pixels, _alpha, icc_profile, upright = _decode_8bit(path, info, image)

    # 2. Reduce to max_side, then convert the small image to 8-bit sRGB.
    height, width = pixels.shape[:2]
    factor = max_side / max(height, width)
    if factor < 1:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    rgb = to_srgb8(pixels, icc_profile)

    # 3. Turn upright, and relate the preview to the original's pixels.
    if not upright:
        rgb = _apply_orientation(rgb, info.orientation)
    scale = rgb.shape[1] / info.width
    return Preview(rgb=rgb, scale=scale, info=info)


def hash_file(path: str | os.PathLike) -> str:
    """Return the SHA-256 of a file as hex, read in chunks so a 150-megapixel TIFF is never held in memory."""
    path = Path(path)
    _check_readable_file(path)
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise _unreadable(path, error) from error


@contextlib.contextmanager
def _open_photo(path: Path, max_pixels: int | None) -> Iterator[tuple[PhotoInfo, Image.Image]]:
    """Open a photo lazily with Pillow after checking the file, its format and its pixel count, and yield its header."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    if limit < 1:
        raise _invalid_option(path, "max_pixels", max_pixels, _("a whole number of pixels, 1 or more"),
                              "max_pixels must be positive")

    # 1. The file itself, and its format from the first bytes (never from the name).
    _check_readable_file(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        raise _unreadable(path, error) from error
    image_format = _sniff_format(path, head)

    # 2. PNG and WebP state their size in the first bytes: check it before Pillow
    # parses further (Pillow's WebP plugin allocates its canvas while opening).
    early_size = _png_header_size(head) if image_format == "png" else None
    if image_format == "webp":
        early_size = _webp_header_size(head)
    if early_size is not None:
        _check_pixel_count(path, *early_size, limit)

    _check_container_length(path, image_format, head)

    # 3. Parse the header with Pillow. Its own decompression-bomb guard is kept
    # at least as high as our limit, so files we accept never trip it.
    _raise_pillow_pixel_limit(limit)
    try:
        image = _PILLOW_OPENERS[image_format](str(path))
    except Image.DecompressionBombError as error:
        raise HeadshotError("image_too_large", path, str(error), width="?", height="?",
                            limit=_megapixels(limit)) from error
    except OSError as error:
        if isinstance(error, PermissionError):
            raise _unreadable(path, error) from error
        raise _decode_error(path, error) from error
    except (SyntaxError, ValueError, struct.error, IndexError, KeyError, EOFError, RuntimeError) as error:
        raise _decode_error(path, error) from error

    # 4. The pixel count, before anything allocates pixels.
    try:
        _check_pixel_count(path, *_stored_size(image_format, image), limit)
        info = _photo_info(path, image_format, image, head)
        yield info, image
    finally:
        image.close()


def _check_readable_file(path: Path) -> None:
    try:
        status = path.stat()
    except FileNotFoundError as error:
        raise HeadshotError("file_not_found", path, str(error)) from error
    except OSError as error:
        raise _unreadable(path, error) from error
    if not path.is_file():
        raise HeadshotError("not_a_file", path, "not a regular file")
    if status.st_size == 0:
        raise HeadshotError("file_empty", path, "0 bytes")


def _photo_info(path: Path, image_format: str, image: Image.Image, head: bytes) -> PhotoInfo:
    """Collect the header facts: bit depth, alpha, orientation and the metadata blocks."""
    # 1. Bit depth, which Pillow hides for 16-bit RGB (it truncates to 8 bits).
    bit_depth = 8
    if image_format == "png" and len(head) >= 26 and head[24] == 16:
        bit_depth = 16
    elif image_format == "tiff":
        bit_depth = _tiff_bit_depth(path, image)

    # 2. Metadata blocks.
    icc_profile = image.info.get("icc_profile") or None
    xmp = _as_bytes(image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")) or None
    if image_format == "tiff":
        exif = _tiff_exif(image)
        iptc = _as_bytes(image.tag_v2.get(33723)) or None
    else:
        exif = _normalized_exif(image.info.get("exif"))
        iptc = _jpeg_iptc(image) if image_format == "jpeg" else None

    # 3. Orientation. libheif turns HEIC images itself and reports the original value.
    if image_format == "heic":
        orientation = int(image.info.get("original_orientation") or 1)
    elif image_format == "tiff":
        orientation = int(image.tag_v2.get(274, 1) or 1)
    else:
        orientation = _exif_orientation(exif) or _xmp_orientation(xmp) or 1
    if orientation not in range(1, 9):
        log.warning("%s: ignoring invalid EXIF orientation %s", path, orientation)
        orientation = 1

    width, height = _stored_size(image_format, image)
    if orientation >= 5 and image_format != "heic":
        width, height = height, width
    has_alpha = image.mode in _ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)
    return PhotoInfo(
        path=path,
        format=image_format,
        width=width,
        height=height,
        bit_depth=bit_depth,
        has_alpha=has_alpha,
        mode=image.mode,
        orientation=orientation,
        icc_profile=icc_profile,
        exif=exif,
        xmp=xmp,
        iptc=iptc,
    )


@functools.lru_cache(maxsize=None)
def _decoder_turns_tiff(decoder: str) -> bool:
    """Tell whether a decoder applies the TIFF Orientation tag itself, by decoding a mirrored 2x1 TIFF.

    OpenCV 4.11 and Pillow 13 do; older releases returned the stored pixels.
    """
    sample = np.array([[[0, 0, 0], [65535, 65535, 65535]]], np.uint16)
    if decoder == "pillow":
        sample = (sample // 257).astype(np.uint8)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, sample, photometric="rgb", extratags=[(274, "H", 1, 2, True)])
    if decoder == "opencv":
        decoded = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
        return decoded is not None and int(decoded[0, 0, 0]) > 0
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("RGB").getpixel((0, 0))[0] > 0


def _tiff_bit_depth(path: Path, image: Image.Image) -> int:
    bits = image.tag_v2.get(258) or (1,)
    bits = bits if isinstance(bits, tuple) else (bits,)
    sample_format = image.tag_v2.get(339) or (1,)
    sample_format = sample_format if isinstance(sample_format, tuple) else (sample_format,)
    if 3 in sample_format or max(bits) > 16:
        kind = _("{bits}-bit floating-point TIFF") if 3 in sample_format else _("{bits}-bit TIFF")
        raise HeadshotError("unsupported_format", path, f"TIFF with {max(bits)} bits per sample",
                            format=kind.format(bits=max(bits)))
    if max(bits) == 16:
        if image.tag_v2.get(262) == 5:
            raise HeadshotError("unsupported_format", path, "16-bit CMYK TIFF", format=_("16-bit CMYK TIFF"))
        return 16
    return 8


# --------------------------------------------------------------------------
# Decoding


def _check_complete(path: Path, info: PhotoInfo, image: Image.Image) -> None:
    """Raise file_truncated when a PNG or TIFF file ends before the image data its structure announces."""
    size = path.stat().st_size
    if info.format == "png":
        _check_png_chunks(path, size)
    elif info.format == "tiff":
        tags = image.tag_v2
        offsets = tags.get(273) or tags.get(324) or ()
        counts = tags.get(279) or tags.get(325) or ()
        ends = [offset + count for offset, count in zip(_as_tuple(offsets), _as_tuple(counts))]
        if ends and max(ends) > size:
            raise HeadshotError("file_truncated", path, f"image data ends at {max(ends)}, file has {size} bytes")


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _check_png_chunks(path: Path, size: int) -> None:
    """Walk the PNG chunk lengths (without reading the data) up to IEND."""
    with path.open("rb") as handle:
        handle.seek(len(_PNG_SIGNATURE))
        while True:
            header = handle.read(8)
            if len(header) < 8:
                raise HeadshotError("file_truncated", path, "PNG ends before its IEND chunk")
            length, chunk_type = struct.unpack(">I4s", header)
            if chunk_type == b"IEND":
                return
            end = handle.tell() + length + 4
            if end > size:
                raise HeadshotError("file_truncated", path, f"PNG chunk {chunk_type!r} runs past the end of the file")
            handle.seek(end)


def _choose_jpeg_draft(image: Image.Image, max_side: int) -> None:
    width, height = image.size
    for reduction in (8, 4, 2):
        if max(width, height) / reduction >= 0.75 * max_side:
            image.draft(image.mode, (width // reduction, height // reduction))
            return


def _decode_8bit(path: Path, info: PhotoInfo, image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bytes | None, bool]:
    """Decode with Pillow (which raises on truncated data, unlike OpenCV) and convert to RGB plus alpha.

    Returns pixels, alpha, the pixels' profile, and whether the decoder already turned them upright.
    """
    # 1. Decode.
    try:
        image.load()
    except OSError as error:
        raise _decode_error(path, error) from error
    except (SyntaxError, ValueError, struct.error, IndexError, EOFError, RuntimeError, zlib.error) as error:
        raise _decode_error(path, error) from error

    # 2. Split off alpha, and bring palette and odd modes to RGB, L or CMYK.
    try:
        image, alpha = _split_alpha_and_simplify(info, image)
    except ValueError as error:
        raise HeadshotError("unsupported_format", path, f"Pillow cannot convert {image.mode}: {error}",
                            format=f"{info.format.upper()} {image.mode}") from error

    # 3. Colour: CMYK and grey go to sRGB through their profile; RGB keeps its own.
    icc_profile = info.icc_profile
    if image.mode in ("CMYK", "L"):
        with_profile = profile_color_space(icc_profile) in ("CMYK", "GRAY")
        image = convert_to_srgb(image, icc_profile)
        icc_profile = srgb_profile() if with_profile else None
    elif profile_color_space(icc_profile) not in (None, "RGB"):
        log.warning("%s: ignoring a %s profile on RGB pixels", path, profile_color_space(icc_profile))
        icc_profile = None
    upright = info.format == "heic" or (info.format == "tiff" and _decoder_turns_tiff("pillow"))
    return np.asarray(image), alpha, icc_profile, upright


def _split_alpha_and_simplify(info: PhotoInfo, image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """Return the image as 'RGB', 'L' or 'CMYK' and its alpha channel (or None)."""
    alpha = None
    if image.mode == "CMYK" and info.format == "jpeg" and "adobe" not in image.info:
        # Pillow decodes every CMYK JPEG as inverted, which is Adobe's convention.
        # A file without Adobe's APP14 marker stores plain CMYK, so undo the inversion.
        # NOTE: the polarity of CMYK JPEGs without APP14 is a convention, not a standard.
        image = ImageChops.invert(image)
    if info.has_alpha:
        rgba = image.convert("RGBA") if image.mode not in ("LA", "La") else image.convert("LA")
        alpha = np.asarray(rgba.getchannel("A"))
        image = rgba.convert("L") if rgba.mode == "LA" else rgba.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    return image, alpha


def _decode_16bit(path: Path, info: PhotoInfo, image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bytes | None, bool]:
    """Decode a 16-bit PNG or TIFF with OpenCV, which keeps all 16 bits, and check the result against the header.

    Returns pixels, alpha, the pixels' profile, and whether the decoder already turned them upright.
    """
    # 1. Decode from memory, so paths in any encoding work on every platform.
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise _unreadable(path, error) from error
    try:
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise HeadshotError("file_damaged", path, f"OpenCV: {error}") from error
    del encoded

    # 2. OpenCV pads or gives up silently on damaged data: compare with the header.
    upright = info.format == "tiff" and _decoder_turns_tiff("opencv")
    width, height = (info.width, info.height) if upright else _stored_size(info.format, image)
    if decoded is None or decoded.dtype != np.uint16 or decoded.shape[:2] != (height, width):
        got = "nothing" if decoded is None else f"{decoded.dtype} {decoded.shape}"
        raise HeadshotError("file_damaged", path, f"OpenCV returned {got}, expected {width}x{height} 16-bit from the header")

    # 3. Channels to RGB plus alpha.
    alpha = None
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels == 1:
        pixels = cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    elif channels == 2:
        pixels = cv2.cvtColor(np.ascontiguousarray(decoded[:, :, 0]), cv2.COLOR_GRAY2RGB)
        alpha = np.ascontiguousarray(decoded[:, :, 1])
    elif channels == 3:
        pixels = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    else:
        pixels = cv2.cvtColor(np.ascontiguousarray(decoded[:, :, :3]), cv2.COLOR_BGR2RGB)
        alpha = np.ascontiguousarray(decoded[:, :, 3])
    if not info.has_alpha:
        alpha = None

    # 4. A grey or CMYK profile does not describe the RGB pixels.
    icc_profile = info.icc_profile
    if profile_color_space(icc_profile) not in (None, "RGB"):
        # NOTE: 16-bit greyscale is taken as sRGB-encoded; its grey profile's tone curve is not applied.
        log.warning("%s: dropping the %s profile of a 16-bit greyscale file", path, profile_color_space(icc_profile))
        icc_profile = None
    return pixels, alpha, icc_profile, upright


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels upright for an EXIF orientation (1-8)."""
    if orientation == 2:
        return cv2.flip(pixels, 1)
    if orientation == 3:
        return cv2.rotate(pixels, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(pixels, 0)
    if orientation == 5:
        return cv2.transpose(pixels)
    if orientation == 6:
        return cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(pixels), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return pixels
