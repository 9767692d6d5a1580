"""Write photos atomically in the photographer's format, bit depth and ICC profile, carrying the source's metadata
over and marking the file in XMP as AI-edited."""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import tifffile
from PIL import Image, PngImagePlugin

from ..atomic import atomic_output
from ..color import convert_srgb_to_cmyk, convert_srgb_to_grey, profile_color_space, srgb_profile
from ..errors import HeadshotError
from ..i18n import _
from .failures import _invalid_option, os_reason
from .formats import FORMATS, GREY_MODES, _EIGHT_BIT_FORMATS, _FORMAT_ALIASES, _GREY_FORMATS, _PNG_SIGNATURE, _SUFFIX_FORMATS
from .metadata import (
    CREATOR_TOOL,
    DIGITAL_SOURCE_TYPES,
    _EXIF_HEADER,
    _JPEG_XMP_LIMIT,
    _exif_dpi,
    _exif_tags,
    _output_exif,
    _shrink_xmp_for_jpeg,
    merge_xmp,
)
from .reading import PhotoInfo

log = logging.getLogger(__name__)


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
    dpi: float | None = None,
) -> Path:
    """Write RGB pixels (and alpha) atomically in the source's format, bit depth, profile and metadata.

    `format="same"` takes `like.format`, else the format the file name's suffix
    names, else JPEG. `bit_depth=0` keeps `like.bit_depth` (or the pixels' own)
    where the format allows it. `icc_profile`, `exif` and `xmp` default to
    `like`'s; pass b"" to leave one out. EXIF Orientation is reset to 1 because
    the pixels are upright, and the XMP packet records the IPTC digital source
    type and Headshot Studio as creator tool. A CMYK JPEG source written as
    JPEG ("same" or named) is converted back to CMYK with its own profile. JPEG has no alpha, so
    an alpha matte is composited over white there. `dpi` sets the print resolution (pixels per inch) in
    the EXIF block and the format's own field; None keeps the source's.

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
    write_cmyk = (
        image_format == "jpeg" and like is not None and like.mode == "CMYK"
        and _FORMAT_ALIASES.get(str(format).lower(), str(format).lower()) in ("same", like.format)
    )
    write_grey = _writes_grey(image_format, like, pixels, alpha)
    profile = _output_profile(icc_profile, like, grey=write_grey)
    if exif is None and like is not None:
        exif = like.exif
    if xmp is None and like is not None:
        xmp = like.xmp
    exif_block = _output_exif(exif, pixels.shape, dpi)
    packet = merge_xmp(xmp, digital_source_type)
    metadata = _Metadata(icc_profile=profile, exif=exif_block, xmp=packet)

    # 4. Pixels at the output bit depth.
    pixels = _to_bit_depth(pixels, depth)
    alpha = _to_bit_depth(alpha, depth) if alpha is not None else None
    if write_grey:
        pixels = _grey_pixels(pixels, profile)
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


def _writes_grey(image_format: str, like: PhotoInfo | None, pixels: np.ndarray, alpha: np.ndarray | None) -> bool:
    """Return True to write one grey channel: the source was greyscale and the new pixels are still neutral.

    A black-and-white photo stays black and white, with its own grey profile; a variant that gained colour
    (a brand-colour backdrop, make-up) is written in RGB. JPEG, PNG and TIFF take grey; alpha stays RGBA.
    """
    if like is None or like.mode not in GREY_MODES or image_format not in _GREY_FORMATS or alpha is not None:
        return False
    tolerance = 257 if pixels.dtype == np.uint16 else 1
    widest = max(
        int(cv2.absdiff(pixels[:, :, 0], pixels[:, :, 1]).max()), int(cv2.absdiff(pixels[:, :, 1], pixels[:, :, 2]).max())
    )
    return widest <= tolerance


def _grey_pixels(pixels: np.ndarray, grey_profile: bytes | None) -> np.ndarray:
    """Return the one grey channel (H, W) of neutral RGB pixels, in the grey profile the file will carry.

    8-bit grey with a profile was read into sRGB through that profile, so it goes back through it; 16-bit
    grey was read with its values as they were (see `read_photo`), so they stay.
    """
    if pixels.dtype == np.uint8 and grey_profile:
        return np.asarray(convert_srgb_to_grey(Image.fromarray(pixels, "RGB"), grey_profile))
    return np.ascontiguousarray(pixels[:, :, 1])


def _output_profile(icc_profile: bytes | None, like: PhotoInfo | None, grey: bool = False) -> bytes | None:
    """Choose the profile to embed: the caller's, else the source's; sRGB for RGB pixels from a CMYK or grey source.

    With `grey`, the source's grey profile is kept, and a profile of another colour space is left out.
    """
    if icc_profile is not None:
        profile = icc_profile or None
    else:
        profile = like.icc_profile if like is not None else None
    if grey:
        # The caller's profile describes the RGB working pixels; the source's grey profile describes the file.
        source = like.icc_profile if like is not None else None
        if icc_profile == b"" or profile_color_space(source) != "GRAY":
            return None
        return source
    if profile is not None and profile_color_space(profile) != "RGB":
        # read_photo converted CMYK and grey sources to sRGB.
        return srgb_profile()
    return profile


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
    if pixels.ndim == 2:
        return Image.fromarray(pixels, "L")
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
        bgr = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        if alpha is not None:
            bgr = np.dstack([bgr, alpha])
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise ValueError("OpenCV could not encode the 16-bit PNG")
        exif_tiff = metadata.exif[len(_EXIF_HEADER) :] if metadata.exif else None
        handle.write(_png_with_metadata(encoded.tobytes(), metadata.icc_profile, exif_tiff, metadata.xmp,
                                        _exif_dpi(metadata.exif)))

    return encode


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def _png_with_metadata(
    png: bytes, icc_profile: bytes | None, exif_tiff: bytes | None, xmp: bytes | None, dpi: tuple[float, float] | None = None
) -> bytes:
    """Insert iCCP, eXIf, pHYs and an XMP iTXt chunk after IHDR, replacing any colour or metadata chunks of the encoder."""
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
    if dpi:
        per_metre = [round(value / 0.0254) for value in dpi]
        added.append(_png_chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1)))

    # Keep the encoder's other chunks, except an sRGB or gAMA chunk that would contradict the profile.
    replaced = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"eXIf", b"iTXt", b"pHYs"} if icc_profile else {b"eXIf", b"iTXt", b"pHYs"}
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
            if tag == 270 and isinstance(value, str) and value.lstrip().startswith('{"shape"'):
                # tifffile's own shape note describes the source's array, not this file's.
                continue
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
            photometric="minisblack" if data.ndim == 2 else "rgb",
            extrasamples=("unassalpha",) if alpha is not None else None,
            planarconfig="contig",
            software=CREATOR_TOOL,
            metadata=None,
            extratags=extratags,
            **options,
        )

    return encode


def _write_atomically(target: Path, encode: Callable[[BinaryIO], None]) -> None:
    """Encode into a hidden temporary file beside the target and publish it in one rename.

    On any failure the temporary file is removed and the target is left as it was.
    """
    try:
        with atomic_output(target) as handle:
            encode(handle)
    except OSError as error:
        raise HeadshotError("write_failed", target, str(error), reason=os_reason(error)) from error
    except HeadshotError:
        raise
    except Exception as error:
        raise HeadshotError("write_failed", target, f"{type(error).__name__}: {error}",
                            reason=_("the image encoder failed")) from error

