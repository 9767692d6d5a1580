"""Read and write the files photographers hand over: JPEG, PNG, TIFF, WebP and HEIC, in 8 or 16 bits, with their metadata.

Pixels come back as RGB arrays with the EXIF orientation applied, and outputs go
out in the source's format, bit depth and ICC profile, marked in XMP as AI-edited.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import logging
import os
import re
import secrets
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.dom import minidom
from xml.parsers.expat import ExpatError

import cv2
import numpy as np
import pillow_heif
import tifffile
from PIL import Image, ImageChops, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

from ..color import (
    convert_srgb_to_cmyk,
    convert_to_srgb,
    profile_color_space,
    srgb_color_in_profile,
    srgb_profile,
    to_srgb8,
)
from ..errors import HeadshotError, register_messages
from ..i18n import N_, _

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "Photo",
    "PhotoInfo",
    "Preview",
    "hash_file",
    "output_suffix",
    "probe",
    "read_photo",
    "read_preview",
    "srgb_color_in_profile",
    "to_srgb8",
    "write_photo",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS: int = 250_000_000
FORMATS = ("jpeg", "png", "tiff", "webp", "heic")
CREATOR_TOOL = "Headshot Studio"

register_messages(
    {
        "file_damaged": N_("{file} is damaged: its image data could not be decoded. Export or copy the photo again."),
    }
)

pillow_heif.register_heif_opener()

# The IPTC NewsCodes for digital source types (cv.iptc.org/newscodes/digitalsourcetype).
DIGITAL_SOURCE_TYPES = (
    "digitalCapture",
    "computationalCapture",
    "negativeFilm",
    "positiveFilm",
    "print",
    "humanEdits",
    "algorithmicallyEnhanced",
    "compositeCapture",
    "composite",
    "compositeWithTrainedAlgorithmicMedia",
    "compositeSynthetic",
    "trainedAlgorithmicMedia",
    "algorithmicMedia",
    "dataDrivenMedia",
    "digitalCreation",
    "screenCapture",
    "virtualRecording",
)

_SUFFIX_FORMATS = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".jfif": "jpeg",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
    ".heic": "heic",
    ".heif": "heic",
    ".hif": "heic",
}
_FORMAT_SUFFIXES = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "heic": ".heic"}
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff", "heif": "heic"}
_CAMERA_RAW_SUFFIXES = {
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".kdc", ".mef", ".mos",
    ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
}  # fmt: skip
_EIGHT_BIT_FORMATS = ("jpeg", "webp", "heic")
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A JPEG APP1 segment contains at most 65535 bytes, less the length field and the XMP namespace header.
_JPEG_XMP_LIMIT = 65_502

_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_EXIF_HEADER = b"Exif\x00\x00"


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


def _sniff_format(path: Path, head: bytes) -> str:
    """Return the format from the file's signature; raise for camera raw, other image formats and non-images."""
    suffix = path.suffix.lower()
    if suffix in _CAMERA_RAW_SUFFIXES:
        raise HeadshotError("unsupported_format", path, f"camera raw file ({suffix})",
                            format=_("camera raw ({kind})").format(kind=suffix[1:].upper()))
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if head[8:10] == b"CR":
            raise HeadshotError("unsupported_format", path, "Canon CR2 raw", format=_("camera raw ({kind})").format(kind="CR2"))
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[index : index + 4] for index in range(16, min(len(head), 8 + _box_size(head)), 4)}
        if head[8:12] in (b"avif", b"avis") or (b"avif" in brands and not brands & {b"heic", b"heix"}):
            raise HeadshotError("unsupported_format", path, "AVIF", format="AVIF")
        if head[8:12] == b"crx ":
            raise HeadshotError("unsupported_format", path, "Canon CR3 raw", format=_("camera raw ({kind})").format(kind="CR3"))
        if brands & _HEIF_BRANDS:
            return "heic"
    other = _other_image_format(head)
    if other:
        raise HeadshotError("unsupported_format", path, other, format=other)
    raise HeadshotError("not_an_image", path, f"unknown signature {head[:8]!r}")


def _box_size(head: bytes) -> int:
    return int.from_bytes(head[0:4], "big") if len(head) >= 4 else 0


def _other_image_format(head: bytes) -> str | None:
    signatures = (
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"8BPS", "PSD"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
        (b"\xff\x4f\xff\x51", "JPEG 2000"),
        (b"\xff\x0a", "JPEG XL"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
        (b"\x00\x00\x01\x00", "ICO"),
        (b"gimp xcf", "XCF"),
        (b"\x76\x2f\x31\x01", "OpenEXR"),
        (b"#?RADIANCE", "Radiance HDR"),
    )
    for signature, name in signatures:
        if head.startswith(signature):
            return name
    return None


def _png_header_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _webp_header_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        return width, height
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _check_container_length(path: Path, image_format: str, head: bytes) -> None:
    """Raise file_truncated when the file is shorter than its WebP RIFF length or ends before its first TIFF directory."""
    size = path.stat().st_size
    if image_format == "webp":
        expected = int.from_bytes(head[4:8], "little") + 8
    elif image_format == "tiff" and head[2:4] in (b"*\x00", b"\x00*"):
        byte_order = "little" if head[:2] == b"II" else "big"
        expected = int.from_bytes(head[4:8], byte_order) + 2
    elif image_format == "tiff" and len(head) >= 16:
        byte_order = "little" if head[:2] == b"II" else "big"
        expected = int.from_bytes(head[8:16], byte_order) + 8
    else:
        return
    if expected > size:
        raise HeadshotError("file_truncated", path, f"the file has {size} bytes, its structure needs {expected}")


def _check_pixel_count(path: Path, width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise HeadshotError("image_empty", path, f"{width}x{height}", width=width, height=height)
    if width * height > limit:
        raise HeadshotError("image_too_large", path, f"{width}x{height} > {limit} pixels",
                            width=width, height=height, limit=_megapixels(limit))


def _megapixels(pixel_count: int) -> str:
    return f"{pixel_count / 1e6:g}"


def _raise_pillow_pixel_limit(limit: int) -> None:
    # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that. The limit
    # only ever goes up here, so other callers keep at least their own guard.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit


def _open_heif(filename: str) -> Image.Image:
    return pillow_heif.HeifImageFile(filename)


# Plugin classes are called directly so Image.open's global bomb check (run
# after opening, with a warning) is replaced by our own check above.
_PILLOW_OPENERS: dict[str, Callable[[str], Image.Image]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "heic": _open_heif,
}


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


def _stored_size(image_format: str, image: Image.Image) -> tuple[int, int]:
    """Return width and height as stored, before orientation (Pillow 13 reports a TIFF's size already turned)."""
    if image_format == "tiff":
        return int(image.tag_v2.get(256, 0)), int(image.tag_v2.get(257, 0))
    return image.size


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


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, tuple) and all(isinstance(item, int) for item in value):
        return b"".join(item.to_bytes(4 if item > 255 else 1, "big") for item in value) if value else None
    return None


def _normalized_exif(exif) -> bytes | None:
    if isinstance(exif, Image.Exif):
        exif = exif.tobytes()
    if not exif:
        return None
    if exif.startswith(_EXIF_HEADER):
        return bytes(exif)
    if exif[:4] in (b"II*\x00", b"MM\x00*"):
        return _EXIF_HEADER + bytes(exif)
    return None


def _tiff_exif(image: Image.Image) -> bytes | None:
    """Build an EXIF block from a TIFF's own tags, leaving out the strip and layout tags that belong to the file."""
    tags = image.tag_v2
    exif = Image.Exif()
    for tag in (270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432):
        if tag in tags:
            exif[tag] = tags[tag]
    try:
        source = image.getexif()
        for ifd in (_EXIF_IFD, _GPS_IFD):
            if ifd in source:
                exif[ifd] = source.get_ifd(ifd)
    except (OSError, SyntaxError, ValueError, KeyError, struct.error) as error:
        log.warning("%s: ignoring an unreadable EXIF directory: %s", image.filename, error)
    return exif.tobytes() if len(exif) else None


def _jpeg_iptc(image: Image.Image) -> bytes | None:
    block = image.info.get("photoshop", {}).get(0x0404)
    if isinstance(block, dict):
        block = block.get("data")
    return bytes(block) if block else None


def _exif_orientation(exif: bytes | None) -> int | None:
    if not exif:
        return None
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        return int(parsed.get(_ORIENTATION_TAG) or 0) or None
    except (SyntaxError, ValueError, TypeError, struct.error, OSError):
        return None


def _xmp_orientation(xmp: bytes | None) -> int | None:
    match = re.search(rb'tiff:Orientation(?:="|>)([1-8])', xmp or b"")
    return int(match.group(1)) if match else None


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


def _decode_error(path: Path, error: BaseException) -> HeadshotError:
    text = str(error)
    if re.search(r"truncat|end of (file|data|stream)|premature|ended early", text, re.IGNORECASE):
        return HeadshotError("file_truncated", path, text)
    if isinstance(error, Image.UnidentifiedImageError) or "cannot identify" in text:
        return HeadshotError("not_an_image", path, text)
    return HeadshotError("file_damaged", path, f"{type(error).__name__}: {text}")


def _invalid_option(path: Path, option: str, value, allowed: str, detail: str) -> HeadshotError:
    # The shared invalid_option message has no {file} field, so the value carries the file name.
    return HeadshotError("invalid_option", path, detail, option=option, value=f"{value} ({path.name})", allowed=allowed)


def _unreadable(path: Path, error: OSError) -> HeadshotError:
    return HeadshotError("file_unreadable", path, str(error), reason=_os_reason(error))


def _os_reason(error: OSError) -> str:
    reasons = {
        errno.EACCES: N_("permission denied"),
        errno.EPERM: N_("permission denied"),
        errno.ENOENT: N_("the folder does not exist"),
        errno.ENOTDIR: N_("the folder does not exist"),
        errno.ENOSPC: N_("no space left on the disk"),
        errno.EROFS: N_("the disk is read-only"),
        errno.EISDIR: N_("it is a folder"),
        errno.EIO: N_("input/output error"),
    }
    reason = reasons.get(error.errno or 0)
    return _(reason) if reason else (error.strerror or type(error).__name__)


# --------------------------------------------------------------------------
# Writing


def output_suffix(image_format: str) -> str:
    """Return the usual file-name suffix for a format ('.jpg', '.png', '.tif', '.webp', '.heic')."""
    return _FORMAT_SUFFIXES[_FORMAT_ALIASES.get(image_format, image_format)]


def write_photo(
    path: str | os.PathLike,
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    like: PhotoInfo | None = None,
    format: str = "same",
    bit_depth: int = 0,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | None = None,
    digital_source_type: str = "algorithmicallyEnhanced",
    inputs: Iterable[str | os.PathLike | PhotoInfo] = (),
    jpeg_quality: int = 95,
) -> Path:
    """Write RGB pixels (and alpha) atomically in the source's format, bit depth, profile and metadata.

    `format="same"` takes `like.format`, else the format the file name's suffix
    names, else JPEG. `bit_depth=0` keeps `like.bit_depth` (or the pixels' own)
    where the format allows it. `icc_profile`, `exif` and `xmp` default to
    `like`'s; pass b"" to leave one out. EXIF Orientation is reset to 1 because
    the pixels are upright, and the XMP packet records the IPTC digital source
    type and Headshot Studio as creator tool. A CMYK JPEG source written as
    "same" is converted back to CMYK with its own profile. JPEG has no alpha, so
    an alpha matte is composited over white there.

    Raises HeadshotError: invalid_option, would_overwrite_input, write_failed.
    """
    target = Path(path)

    # 1. Check the options before anything touches the disk.
    image_format = _output_format(target, format, like)
    depth = _output_bit_depth(target, image_format, bit_depth, like, pixels)
    pixels, alpha = _checked_pixels(target, pixels, alpha)
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise _invalid_option(target, "jpeg_quality", jpeg_quality, _("a whole number from 1 to 100"),
                              "jpeg_quality out of range")
    if digital_source_type not in DIGITAL_SOURCE_TYPES:
        raise _invalid_option(target, "digital_source_type", digital_source_type, ", ".join(DIGITAL_SOURCE_TYPES),
                              "unknown IPTC digital source type")

    # 2. Never replace a source photo.
    _reject_overwriting_inputs(target, inputs, like)

    # 3. Metadata for the new file.
    # NOTE: the source's IPTC-IIM records are not written; XMP carries the IPTC Core fields Lightroom writes.
    write_cmyk = format == "same" and image_format == "jpeg" and like is not None and like.mode == "CMYK"
    profile = _output_profile(icc_profile, like)
    if exif is None and like is not None:
        exif = like.exif
    if xmp is None and like is not None:
        xmp = like.xmp
    exif_block = _output_exif(exif, pixels.shape)
    packet = merge_xmp(xmp, digital_source_type)
    metadata = _Metadata(icc_profile=profile, exif=exif_block, xmp=packet)

    # 4. Pixels at the output bit depth.
    pixels = _to_bit_depth(pixels, depth)
    alpha = _to_bit_depth(alpha, depth) if alpha is not None else None
    if image_format == "jpeg" and alpha is not None:
        pixels, alpha = _flatten_on_white(pixels, alpha), None

    # 5. Encode into a temporary file next to the target, then move it into place.
    if image_format == "jpeg":
        cmyk_profile = like.icc_profile if write_cmyk and like is not None else None
        encode = _jpeg_encoder(pixels, metadata, jpeg_quality, cmyk=write_cmyk, cmyk_profile=cmyk_profile)
    elif image_format == "png":
        encode = _png_encoder(pixels, alpha, metadata)
    elif image_format == "tiff":
        encode = _tiff_encoder(pixels, alpha, metadata)
    elif image_format == "webp":
        encode = _pillow_encoder(pixels, alpha, metadata, "WEBP", quality=jpeg_quality)
    else:
        encode = _pillow_encoder(pixels, alpha, metadata, "HEIF", quality=jpeg_quality)
    _write_atomically(target, encode)
    log.info("wrote %s (%s, %d-bit, %dx%d)", target, image_format, depth, pixels.shape[1], pixels.shape[0])
    return target


@dataclass
class _Metadata:
    icc_profile: bytes | None
    exif: bytes | None
    xmp: bytes


def _output_format(target: Path, requested: str, like: PhotoInfo | None) -> str:
    requested_name = str(requested).lower()
    requested_name = _FORMAT_ALIASES.get(requested_name, requested_name)
    suffix_format = _SUFFIX_FORMATS.get(target.suffix.lower())
    if requested_name == "same":
        image_format = like.format if like is not None else (suffix_format or "jpeg")
    elif requested_name in FORMATS:
        image_format = requested_name
    else:
        raise _invalid_option(target, "format", requested, "same, jpeg, png, tiff, webp, heic", "unknown output format")
    if suffix_format is not None and suffix_format != image_format:
        raise _invalid_option(target, "format", image_format,
                              _("a format that matches the file name ({suffix})").format(suffix=target.suffix),
                              f"suffix {target.suffix} does not match {image_format}")
    return image_format


def _output_bit_depth(target: Path, image_format: str, requested, like: PhotoInfo | None, pixels) -> int:
    allowed = _("0 (keep the source's), 8, or 16 for PNG and TIFF")
    if isinstance(requested, bool) or requested not in (0, 8, 16):
        raise _invalid_option(target, "bit_depth", requested, allowed, "bit_depth must be 0, 8 or 16")
    if requested == 16 and image_format in _EIGHT_BIT_FORMATS:
        raise _invalid_option(target, "bit_depth", f"16, {image_format}", allowed,
                              f"{image_format} holds 8 bits per channel only")
    if requested:
        return requested
    if image_format in _EIGHT_BIT_FORMATS:
        return 8
    if like is not None:
        return like.bit_depth
    return 16 if getattr(pixels, "dtype", None) == np.uint16 else 8


def _checked_pixels(target: Path, pixels, alpha) -> tuple[np.ndarray, np.ndarray | None]:
    allowed = _("an array of shape (height, width, 3), uint8 or uint16")
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3 \
            or pixels.dtype not in (np.uint8, np.uint16) or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        described = f"{getattr(pixels, 'shape', '?')} {getattr(pixels, 'dtype', type(pixels).__name__)}"
        raise _invalid_option(target, "pixels", described, allowed, "pixels must be (H, W, 3) uint8/uint16")
    if alpha is None:
        return np.ascontiguousarray(pixels), None
    if not isinstance(alpha, np.ndarray) or alpha.shape != pixels.shape[:2] or alpha.dtype not in (np.uint8, np.uint16):
        described = f"{getattr(alpha, 'shape', '?')} {getattr(alpha, 'dtype', type(alpha).__name__)}"
        raise _invalid_option(target, "alpha", described, _("an array of shape (height, width), uint8 or uint16"),
                              "alpha must be (H, W) uint8/uint16 matching pixels")
    if alpha.dtype != pixels.dtype:
        alpha = _to_bit_depth(alpha, 16 if pixels.dtype == np.uint16 else 8)
    return np.ascontiguousarray(pixels), np.ascontiguousarray(alpha)


def _reject_overwriting_inputs(target: Path, inputs: Iterable, like: PhotoInfo | None) -> None:
    sources = [item.path if isinstance(item, PhotoInfo) else Path(item) for item in inputs]
    if like is not None:
        sources.append(like.path)
    target_resolved = target.resolve()
    try:
        target_status = target.stat()
    except OSError:
        target_status = None
    for source in sources:
        same = source.resolve() == target_resolved
        if not same and target_status is not None:
            with contextlib.suppress(OSError):
                same = os.path.samestat(target_status, source.stat())
        if same:
            raise HeadshotError("would_overwrite_input", target, f"same file as input {source}")


def _output_profile(icc_profile: bytes | None, like: PhotoInfo | None) -> bytes | None:
    """Choose the RGB profile to embed: the caller's, else the source's, else sRGB when the source's was CMYK or grey."""
    if icc_profile is not None:
        profile = icc_profile or None
    else:
        profile = like.icc_profile if like is not None else None
    if profile is not None and profile_color_space(profile) != "RGB":
        # read_photo converted CMYK and grey sources to sRGB.
        return srgb_profile()
    return profile


def _output_exif(exif: bytes | None, shape: tuple[int, ...]) -> bytes | None:
    """Return the EXIF block with Orientation 1, the new pixel size, Software, and no thumbnail of the original."""
    exif = _normalized_exif(exif)
    if not exif:
        return None
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        parsed[_ORIENTATION_TAG] = 1
        parsed[0x0131] = CREATOR_TOOL
        if _EXIF_IFD in parsed:
            exif_ifd = parsed.get_ifd(_EXIF_IFD)
            if 0xA002 in exif_ifd or 0xA003 in exif_ifd:
                exif_ifd[0xA002] = int(shape[1])
                exif_ifd[0xA003] = int(shape[0])
        # Image.Exif.tobytes writes IFD0 and its sub-IFDs only, so the
        # original's thumbnail (IFD1) is left behind.
        return parsed.tobytes()
    except (SyntaxError, ValueError, TypeError, KeyError, struct.error, OSError) as error:
        log.warning("leaving out EXIF that cannot be parsed: %s", error)
        return None


def _exif_tags(exif: bytes | None) -> Image.Exif:
    parsed = Image.Exif()
    if exif:
        with contextlib.suppress(SyntaxError, ValueError, TypeError, struct.error, OSError):
            parsed.load(exif)
    return parsed


def _to_bit_depth(pixels: np.ndarray, depth: int) -> np.ndarray:
    if depth == 16 and pixels.dtype == np.uint8:
        return pixels.astype(np.uint16) * 257
    if depth == 8 and pixels.dtype == np.uint16:
        return cv2.convertScaleAbs(pixels, alpha=1 / 257)  # rounds to nearest; v/257 never ends in .5
    return pixels


def _flatten_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    maximum = 65535.0 if pixels.dtype == np.uint16 else 255.0
    coverage = alpha.astype(np.float32)[:, :, None] / maximum
    flattened = pixels.astype(np.float32) * coverage + maximum * (1 - coverage)
    return np.round(flattened).astype(pixels.dtype)


def _pillow_image(pixels: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    if alpha is None:
        return Image.fromarray(pixels, "RGB")
    return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")


def _save_options(metadata: _Metadata) -> dict:
    options = {"xmp": metadata.xmp}
    if metadata.icc_profile:
        options["icc_profile"] = metadata.icc_profile
    if metadata.exif:
        options["exif"] = metadata.exif
    dpi = _exif_dpi(metadata.exif)
    if dpi:
        options["dpi"] = dpi
    return options


def _exif_dpi(exif: bytes | None) -> tuple[float, float] | None:
    tags = _exif_tags(exif)
    if 282 not in tags or 283 not in tags:
        return None
    per_centimetre = tags.get(296) == 3
    factor = 2.54 if per_centimetre else 1.0
    with contextlib.suppress(TypeError, ValueError, ZeroDivisionError):
        return (float(tags[282]) * factor, float(tags[283]) * factor)
    return None


def _jpeg_encoder(pixels, metadata: _Metadata, quality: int, *, cmyk: bool, cmyk_profile: bytes | None):
    def encode(handle: BinaryIO) -> None:
        image = _pillow_image(pixels, None)
        options = _save_options(metadata)
        if len(metadata.xmp) > _JPEG_XMP_LIMIT:
            options["xmp"] = _shrink_xmp_for_jpeg(metadata.xmp)
        if cmyk:
            image = convert_srgb_to_cmyk(image, cmyk_profile, metadata.icc_profile)
            if profile_color_space(cmyk_profile) == "CMYK":
                options["icc_profile"] = cmyk_profile
            else:
                options.pop("icc_profile", None)
        # 4:4:4 chroma at high quality, as photographers expect from a final file.
        subsampling = 0 if quality >= 90 else 2
        image.save(handle, "JPEG", quality=quality, subsampling=subsampling, **options)

    return encode


def _pillow_encoder(pixels, alpha, metadata: _Metadata, pillow_format: str, **encoder_options):
    def encode(handle: BinaryIO) -> None:
        options = _save_options(metadata)
        options.pop("dpi", None)
        _pillow_image(pixels, alpha).save(handle, pillow_format, **options, **encoder_options)

    return encode


def _png_encoder(pixels, alpha, metadata: _Metadata):
    def encode(handle: BinaryIO) -> None:
        if pixels.dtype == np.uint8:
            options = _save_options(metadata)
            text = PngImagePlugin.PngInfo()
            text.add_itxt("XML:com.adobe.xmp", options.pop("xmp").decode("utf-8"), zip=False)
            _pillow_image(pixels, alpha).save(handle, "PNG", pnginfo=text, **options)
            return
        # Pillow cannot write 16-bit RGB: encode with OpenCV and add the metadata chunks.
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        if alpha is not None:
            bgr = np.dstack([bgr, alpha])
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise ValueError("OpenCV could not encode the 16-bit PNG")
        exif_tiff = metadata.exif[len(_EXIF_HEADER) :] if metadata.exif else None
        handle.write(_png_with_metadata(encoded.tobytes(), metadata.icc_profile, exif_tiff, metadata.xmp))

    return encode


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def _png_with_metadata(png: bytes, icc_profile: bytes | None, exif_tiff: bytes | None, xmp: bytes | None) -> bytes:
    """Insert iCCP, eXIf and an XMP iTXt chunk after IHDR, replacing any colour or metadata chunks of the encoder."""
    if not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("the encoder did not produce a PNG stream")
    ihdr_end = len(_PNG_SIGNATURE) + 8 + 13 + 4
    added = []
    if icc_profile:
        added.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif_tiff:
        added.append(_png_chunk(b"eXIf", exif_tiff))
    if xmp:
        added.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))

    # Keep the encoder's other chunks, except an sRGB or gAMA chunk that would contradict the profile.
    replaced = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"eXIf", b"iTXt"} if icc_profile else {b"eXIf", b"iTXt"}
    kept = []
    position = ihdr_end
    while position < len(png):
        length, chunk_type = struct.unpack(">I4s", png[position : position + 8])
        end = position + 12 + length
        if chunk_type not in replaced:
            kept.append(png[position:end])
        position = end
    return png[:ihdr_end] + b"".join(added) + b"".join(kept)


def _tiff_encoder(pixels, alpha, metadata: _Metadata):
    def encode(handle: BinaryIO) -> None:
        data = pixels if alpha is None else np.dstack([pixels, alpha])
        tags = _exif_tags(metadata.exif)
        extratags = [(274, "H", 1, 1, True)]
        if metadata.icc_profile:
            extratags.append((34675, "B", len(metadata.icc_profile), metadata.icc_profile, True))
        extratags.append((700, "B", len(metadata.xmp), metadata.xmp, True))
        # NOTE: tifffile writes no EXIF sub-directory, so exposure, lens and capture-time tags are not carried over.
        for tag in (271, 272, 306, 315, 33432, 270):
            value = tags.get(tag)
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str) and value.strip("\x00 "):
                extratags.append((tag, "s", 0, value.strip("\x00"), True))
        options = {}
        dpi = _exif_dpi(metadata.exif)
        if dpi:
            options["resolution"] = dpi
            options["resolutionunit"] = "INCH"
        tifffile.imwrite(
            handle,
            data,
            photometric="rgb",
            extrasamples=("unassalpha",) if alpha is not None else None,
            planarconfig="contig",
            software=CREATOR_TOOL,
            metadata=None,
            extratags=extratags,
            **options,
        )

    return encode


def _write_atomically(target: Path, encode: Callable[[BinaryIO], None]) -> None:
    """Encode into `.<name>.<random>.part` beside the target, fsync, rename over the target, fsync the folder.

    On any failure the temporary file is removed and the target is left as it was.
    """
    folder = target.parent
    temporary = folder / f".{target.name}.{secrets.token_hex(6)}.part"
    try:
        handle = temporary.open("xb")
    except OSError as error:
        raise HeadshotError("write_failed", target, str(error), reason=_os_reason(error)) from error

    try:
        with handle:
            encode(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise HeadshotError("write_failed", target, str(error), reason=_os_reason(error)) from error
        if isinstance(error, Exception):
            raise HeadshotError("write_failed", target, f"{type(error).__name__}: {error}",
                                reason=_("the image encoder failed")) from error
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows has no directory handles to fsync
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        log.warning("cannot open %s to fsync it: %s", folder, error)
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        log.warning("fsync of folder %s failed: %s", folder, error)
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------
# XMP

_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMP_NS = "http://ns.adobe.com/xap/1.0/"
_IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_TIFF_NS = "http://ns.adobe.com/tiff/1.0/"
_DIGITAL_SOURCE_TYPE_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>'
_EMPTY_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    f'<rdf:RDF xmlns:rdf="{_RDF_NS}"></rdf:RDF>'
    "</x:xmpmeta>"
)


def merge_xmp(packet: bytes | None, digital_source_type: str = "algorithmicallyEnhanced") -> bytes:
    """Return an XMP packet with Iptc4xmpExt:DigitalSourceType and xmp:CreatorTool set, keeping the packet's other properties.

    A tiff:Orientation in the packet is set to 1, like the EXIF one. A packet
    that is not well-formed XML is replaced by a new one.
    """
    # 1. Parse the existing packet (the xpacket wrapper is rebuilt below).
    document = None
    if packet:
        text = packet.decode("utf-8", "replace").lstrip("\ufeff")
        text = re.sub(r"<\?xpacket[^>]*\?>", "", text).strip()
        try:
            document = minidom.parseString(text.encode("utf-8"))
        except ExpatError as error:
            log.warning("replacing an XMP packet that is not well-formed: %s", error)
    if document is None or not document.getElementsByTagNameNS(_RDF_NS, "RDF"):
        document = minidom.parseString(_EMPTY_XMP)
    rdf = document.getElementsByTagNameNS(_RDF_NS, "RDF")[0]

    # 2. Remove the properties we set, wherever they are, and reset the orientation.
    ours = ((_IPTC_EXT_NS, "DigitalSourceType"), (_XMP_NS, "CreatorTool"))
    for description in rdf.getElementsByTagNameNS(_RDF_NS, "Description"):
        for namespace, name in ours:
            if description.hasAttributeNS(namespace, name):
                description.removeAttributeNS(namespace, name)
        if description.hasAttributeNS(_TIFF_NS, "Orientation"):
            description.setAttributeNS(_TIFF_NS, description.getAttributeNodeNS(_TIFF_NS, "Orientation").name, "1")
        for child in list(description.childNodes):
            if child.nodeType != child.ELEMENT_NODE:
                continue
            if (child.namespaceURI, child.localName) in ours:
                description.removeChild(child)
            elif (child.namespaceURI, child.localName) == (_TIFF_NS, "Orientation"):
                for text_node in list(child.childNodes):
                    child.removeChild(text_node)
                child.appendChild(document.createTextNode("1"))

    # 3. Add ours in a description of their own.
    description = document.createElementNS(_RDF_NS, "rdf:Description")
    description.setAttributeNS(_RDF_NS, "rdf:about", "")
    description.setAttribute("xmlns:Iptc4xmpExt", _IPTC_EXT_NS)
    description.setAttribute("xmlns:xmp", _XMP_NS)
    source_type = document.createElementNS(_IPTC_EXT_NS, "Iptc4xmpExt:DigitalSourceType")
    source_type.appendChild(document.createTextNode(_DIGITAL_SOURCE_TYPE_BASE + digital_source_type))
    creator_tool = document.createElementNS(_XMP_NS, "xmp:CreatorTool")
    creator_tool.appendChild(document.createTextNode(CREATOR_TOOL))
    description.appendChild(source_type)
    description.appendChild(creator_tool)
    rdf.appendChild(description)
    return (_XPACKET_BEGIN + document.documentElement.toxml() + _XPACKET_END).encode("utf-8")


def _shrink_xmp_for_jpeg(packet: bytes) -> bytes:
    """Drop the bulky edit history from a packet too large for one JPEG APP1 segment; keep only ours if still too large."""
    # NOTE: ExtendedXMP (the multi-segment form) is not written.
    document = minidom.parseString(re.sub(rb"<\?xpacket[^>]*\?>", b"", packet).strip())
    bulky = (
        ("http://ns.adobe.com/xap/1.0/mm/", "History"),
        ("http://ns.adobe.com/photoshop/1.0/", "DocumentAncestors"),
    )
    for namespace, name in bulky:
        for element in list(document.getElementsByTagNameNS(namespace, name)):
            element.parentNode.removeChild(element)
    for element in list(document.getElementsByTagNameNS("http://ns.adobe.com/camera-raw-settings/1.0/", "*")):
        if element.parentNode is not None:
            element.parentNode.removeChild(element)
    shrunk = (_XPACKET_BEGIN + document.documentElement.toxml() + _XPACKET_END).encode("utf-8")
    if len(shrunk) <= _JPEG_XMP_LIMIT:
        return shrunk
    log.warning("XMP packet of %d bytes does not fit a JPEG; keeping only the AI-edit marking", len(packet))
    source_type = re.search(rb"digitalsourcetype/(\w+)", packet)
    return merge_xmp(None, source_type.group(1).decode() if source_type else "algorithmicallyEnhanced")
