"""Photo file formats: recognition by signature (never by file name), suffixes, header sizes, and the pixel-count
limit checked before anything is decoded."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pillow_heif
from PIL import Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

from ..errors import HeadshotError
from ..i18n import _

DEFAULT_MAX_PIXELS: int = 250_000_000
FORMATS = ("jpeg", "png", "tiff", "webp", "heic")

pillow_heif.register_heif_opener()

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
# Pillow modes of a greyscale source, and the formats that write a grey result as one channel.
GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L")
_GREY_FORMATS = ("jpeg", "png", "tiff")

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def output_suffix(image_format: str) -> str:
    """Return the usual file-name suffix for a format ('.jpg', '.png', '.tif', '.webp', '.heic')."""
    return _FORMAT_SUFFIXES[_FORMAT_ALIASES.get(image_format, image_format)]


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


def _stored_size(image_format: str, image: Image.Image) -> tuple[int, int]:
    """Return width and height as stored, before orientation (Pillow 13 reports a TIFF's size already turned)."""
    if image_format == "tiff":
        return int(image.tag_v2.get(256, 0)), int(image.tag_v2.get(257, 0))
    return image.size
