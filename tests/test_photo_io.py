"""Tests of photo input/output: every format and bit depth, ICC profiles, orientation, XMP marking, errors and atomic writes."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import zlib
from pathlib import Path
from xml.dom import minidom

import cv2
import numpy as np
import psutil
import pytest
import tifffile
from PIL import Image, ImageCms

from pipeline import photo_io
from pipeline.color import profile_color_space, srgb_color_in_profile, srgb_profile, to_srgb8
from pipeline.errors import HeadshotError
from pipeline.photo_io import hash_file, probe, read_photo, read_preview, write_photo

# --------------------------------------------------------------------------
# ICC profiles built here, so the tests need no profile files.

D50 = (0.9642, 1.0, 0.8249)
# Primaries adapted to D50, as the published profiles carry them.
ADOBE_RGB_PRIMARIES = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457))
DISPLAY_P3_PRIMARIES = ((0.51512, 0.24120, -0.00105), (0.29198, 0.69225, 0.04189), (0.15710, 0.06657, 0.78407))
SRGB_PRIMARIES = ((0.43607, 0.22249, 0.01392), (0.38515, 0.71687, 0.09708), (0.14307, 0.06061, 0.71410))


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15f16(value) for value in xyz)


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 8 + b"\0\0\0" + b"\0" * 67


def _build_profile(device_class: bytes, color_space: bytes, tags: dict[bytes, bytes]) -> bytes:
    """Assemble an ICC v2.1 profile from tag bodies, with the XYZ connection space."""
    table = b""
    body = b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, data in tags.items():
        padded = data + b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = offset + len(body)
    header = (
        struct.pack(">I", size) + b"none" + bytes([2, 0x10, 0, 0]) + device_class + color_space + b"XYZ "
        + bytes(12) + b"acsp" + b"APPL" + bytes(4) + bytes(8) + bytes(8) + struct.pack(">I", 0)
        + b"".join(_s15f16(value) for value in D50) + b"none" + bytes(16) + bytes(28)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def matrix_profile(name: str, primaries, gamma: float) -> bytes:
    """An RGB matrix/TRC display profile, e.g. an Adobe RGB (1998) or Display P3 lookalike."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    return _build_profile(b"mntr", b"RGB ", {
        b"desc": _text_description(name),
        b"cprt": b"text\0\0\0\0" + b"No copyright, test profile\0",
        b"wtpt": _xyz_tag(D50),
        b"rXYZ": _xyz_tag(primaries[0]),
        b"gXYZ": _xyz_tag(primaries[1]),
        b"bXYZ": _xyz_tag(primaries[2]),
        b"rTRC": curve,
        b"gTRC": curve,
        b"bTRC": curve,
    })


def _lut16(input_channels: int, output_channels: int, grid: int, table) -> bytes:
    identity_curve = struct.pack(">HH", 0, 65535)
    header = b"mft2\0\0\0\0" + bytes([input_channels, output_channels, grid, 0])
    matrix = b"".join(_s15f16(1.0 if row == column else 0.0) for row in range(3) for column in range(3))
    counts = struct.pack(">HH", 2, 2)
    clut = b"".join(struct.pack(">H", max(0, min(65535, round(value)))) for value in table)
    return header + matrix + counts + identity_curve * input_channels + clut + identity_curve * output_channels


def cmyk_profile() -> bytes:
    """A small press-like CMYK profile: inks subtract linear sRGB primaries, black multiplies."""
    matrix = np.array(SRGB_PRIMARIES).T  # linear RGB -> XYZ (D50)
    xyz_scale = 32768  # lut16 XYZ encoding: 1.0 -> 0x8000

    # Device to PCS: CMYK grid -> XYZ.
    grid = np.linspace(0, 1, 5)
    to_pcs = []
    for cyan in grid:
        for magenta in grid:
            for yellow in grid:
                for black in grid:
                    linear = np.array([1 - cyan, 1 - magenta, 1 - yellow]) * (1 - black)
                    to_pcs.extend(matrix @ linear * xyz_scale)

    # PCS to device: XYZ grid -> CMYK, black kept at 0.
    inverse = np.linalg.inv(matrix)
    grid = np.linspace(0, 65535 / xyz_scale, 17)
    to_device = []
    for x in grid:
        for y in grid:
            for z in grid:
                linear = np.clip(inverse @ np.array([x, y, z]), 0, 1)
                to_device.extend([*(1 - linear) * 65535, 0.0])
    return _build_profile(b"prtr", b"CMYK", {
        b"desc": _text_description("Test CMYK"),
        b"cprt": b"text\0\0\0\0" + b"No copyright, test profile\0",
        b"wtpt": _xyz_tag(D50),
        b"A2B0": _lut16(4, 3, 5, to_pcs),
        b"B2A0": _lut16(3, 4, 17, to_device),
    })


ADOBE_RGB = matrix_profile("Adobe RGB (1998) lookalike", ADOBE_RGB_PRIMARIES, 563 / 256)
DISPLAY_P3 = matrix_profile("Display P3 lookalike", DISPLAY_P3_PRIMARIES, 2.2)


# --------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def portrait(astronaut_rgb) -> np.ndarray:
    """A 160x120 (height x width) crop of the astronaut portrait, small enough to encode quickly."""
    crop = astronaut_rgb[0:400, 100:400]
    return cv2.resize(crop, (120, 160), interpolation=cv2.INTER_AREA)


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    peak = 65535.0 if first.dtype == np.uint16 else 255.0
    error = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(peak**2 / error)


def deep(pixels: np.ndarray) -> np.ndarray:
    """16-bit pixels whose low byte matters, so an 8-bit path cannot pass for 16-bit."""
    return pixels.astype(np.uint16) * 256 + np.arange(pixels.size, dtype=np.uint16).reshape(pixels.shape) % 251


def png_chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    chunks = []
    position = 8
    while position < len(data):
        length, chunk_type = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        chunks.append((chunk_type, body, crc))
        position += 12 + length
    return chunks


def png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", zlib.crc32(chunk_type + body))


def exif_block(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Hasselblad"
    exif[0x0110] = "X2D 100C"
    exif[0x013B] = "Jan de Vries"
    exif[0x8298] = "Jan de Vries Fotografie"
    exif[0x0132] = "2024:05:01 10:11:12"
    return exif.tobytes()


def marked_frame(height: int = 60, width: int = 90) -> np.ndarray:
    """A grey frame with a red block in its top-left corner, to see where orientation puts it."""
    frame = np.full((height, width, 3), 128, np.uint8)
    frame[:10, :10] = (255, 0, 0)
    return frame


def red_corner(pixels: np.ndarray) -> str:
    height, width = pixels.shape[:2]
    corners = {
        "top-left": pixels[2, 2],
        "top-right": pixels[2, width - 3],
        "bottom-left": pixels[height - 3, 2],
        "bottom-right": pixels[height - 3, width - 3],
    }
    reddest = max(corners, key=lambda name: int(corners[name][0]) - int(corners[name][1]))
    return reddest


# --------------------------------------------------------------------------
# Round trips

LOSSLESS = [("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16)]
LOSSY = [("jpeg", 40.0), ("webp", 32.0), ("heic", 32.0)]


@pytest.mark.parametrize("with_alpha", [False, True], ids=["rgb", "rgba"])
@pytest.mark.parametrize(("image_format", "depth"), LOSSLESS)
def test_lossless_round_trip_exact(tmp_path, portrait, image_format, depth, with_alpha):
    pixels = deep(portrait) if depth == 16 else portrait
    alpha = None
    if with_alpha:
        alpha = np.linspace(0, 255, pixels.shape[1], dtype=np.uint8)[None, :].repeat(pixels.shape[0], 0)
        alpha = alpha.astype(np.uint16) * 257 + 1 if depth == 16 else alpha
    target = tmp_path / f"frame{photo_io.output_suffix(image_format)}"

    write_photo(target, pixels, alpha, format=image_format, bit_depth=depth)
    photo = read_photo(target)

    assert photo.info.format == image_format
    assert photo.info.bit_depth == depth
    assert photo.info.has_alpha is with_alpha
    assert photo.pixels.dtype == pixels.dtype
    assert np.array_equal(photo.pixels, pixels)
    if with_alpha:
        assert np.array_equal(photo.alpha, alpha)
    else:
        assert photo.alpha is None


@pytest.mark.parametrize(("image_format", "minimum_psnr"), LOSSY)
def test_lossy_round_trip_psnr(tmp_path, portrait, image_format, minimum_psnr):
    target = tmp_path / f"frame{photo_io.output_suffix(image_format)}"
    write_photo(target, portrait, format=image_format, jpeg_quality=95)
    photo = read_photo(target)

    assert photo.info.format == image_format
    assert photo.info.bit_depth == 8
    assert photo.pixels.shape == portrait.shape
    assert psnr(photo.pixels, portrait) > minimum_psnr


@pytest.mark.parametrize("image_format", ["webp", "heic"])
def test_lossy_alpha_round_trip(tmp_path, portrait, image_format):
    alpha = np.zeros(portrait.shape[:2], np.uint8)
    alpha[20:140, 20:100] = 255
    target = tmp_path / f"cutout{photo_io.output_suffix(image_format)}"
    write_photo(target, portrait, alpha, format=image_format)
    photo = read_photo(target)

    assert photo.info.has_alpha
    assert psnr(photo.alpha, alpha) > 30


def test_progressive_jpeg_reads(tmp_path, portrait):
    source = tmp_path / "progressive.jpg"
    Image.fromarray(portrait).save(source, quality=95, progressive=True, subsampling=0)
    photo = read_photo(source)
    assert photo.info.format == "jpeg"
    assert psnr(photo.pixels, portrait) > 40


@pytest.mark.parametrize("compression", [1, 5, 8], ids=["none", "lzw", "zip"])
def test_16bit_tiff_keeps_low_bits(tmp_path, portrait, compression):
    pixels = deep(portrait)
    source = tmp_path / "lightroom.tif"
    # OpenCV stores BGR; it writes the compression Lightroom offers (none, LZW, ZIP).
    cv2.imwrite(str(source), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_TIFF_COMPRESSION, compression])

    photo = read_photo(source)

    assert photo.info.bit_depth == 16
    assert photo.pixels.dtype == np.uint16
    assert np.array_equal(photo.pixels, pixels)


def test_greyscale_jpeg_becomes_rgb(tmp_path, portrait):
    grey = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    source = tmp_path / "mono.jpg"
    Image.fromarray(grey, "L").save(source, quality=95)
    photo = read_photo(source)

    assert photo.info.mode == "L"
    assert photo.pixels.shape == portrait.shape
    assert np.array_equal(photo.pixels[..., 0], photo.pixels[..., 2])
    assert psnr(photo.pixels[..., 1], grey) > 40


def test_16bit_greyscale_png_becomes_rgb(tmp_path, portrait):
    grey = deep(cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY))
    source = tmp_path / "mono16.png"
    cv2.imwrite(str(source), grey)
    photo = read_photo(source)

    assert photo.info.bit_depth == 16
    assert photo.pixels.shape == (*grey.shape, 3)
    assert np.array_equal(photo.pixels[..., 1], grey)


def test_shared_rgba_png_reads_alpha(shared_photos):
    photo = read_photo(shared_photos / "32bit.png")
    assert photo.info.has_alpha
    assert photo.alpha is not None
    assert photo.alpha.shape == photo.pixels.shape[:2]
    assert photo.alpha.dtype == np.uint8


def test_heic_opener_registered(tmp_path, portrait):
    target = write_photo(tmp_path / "phone.heic", portrait, format="heic")
    with Image.open(target) as image:
        assert image.size == (portrait.shape[1], portrait.shape[0])


# --------------------------------------------------------------------------
# ICC profiles

ALL_OUTPUTS = [("jpeg", 8), ("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16), ("webp", 8), ("heic", 8)]


@pytest.mark.parametrize(("image_format", "depth"), ALL_OUTPUTS)
def test_icc_profile_bytes_survive(tmp_path, portrait, image_format, depth):
    pixels = deep(portrait) if depth == 16 else portrait
    target = tmp_path / f"wide{photo_io.output_suffix(image_format)}"
    write_photo(target, pixels, format=image_format, bit_depth=depth, icc_profile=ADOBE_RGB)

    info = probe(target)
    photo = read_photo(target)

    assert info.icc_profile == ADOBE_RGB
    assert photo.icc_profile == ADOBE_RGB


def test_icc_profile_follows_like(tmp_path, portrait):
    source = tmp_path / "p3.png"
    Image.fromarray(portrait).save(source, icc_profile=DISPLAY_P3)
    photo = read_photo(source)

    target = write_photo(tmp_path / "variant.png", photo.pixels, like=photo.info)
    assert probe(target).icc_profile == DISPLAY_P3


def test_16bit_png_chunks_valid(tmp_path, portrait):
    target = write_photo(
        tmp_path / "deep.png", deep(portrait), format="png", bit_depth=16, icc_profile=ADOBE_RGB, exif=exif_block(1)
    )
    chunks = png_chunks(target.read_bytes())
    names = [name for name, _body, _crc in chunks]

    for name, body, crc in chunks:
        assert zlib.crc32(name + body) == crc, name
    assert names[0] == b"IHDR"
    assert names[-1] == b"IEND"
    first_data = names.index(b"IDAT")
    for name in (b"iCCP", b"eXIf", b"iTXt"):
        assert names.index(name) < first_data
    iccp = dict((name, body) for name, body, _crc in chunks)[b"iCCP"]
    assert zlib.decompress(iccp.split(b"\0", 1)[1][1:]) == ADOBE_RGB


def test_srgb_color_in_adobe_rgb_matches_matrix_math():
    # sRGB red, linear (1, 0, 0), to XYZ, then through the Adobe RGB matrix and its gamma.
    xyz = np.array(SRGB_PRIMARIES).T @ np.array([1.0, 0.0, 0.0])
    linear = np.linalg.solve(np.array(ADOBE_RGB_PRIMARIES).T, xyz)
    expected = np.clip(linear, 0, 1) ** (256 / 563)

    result = srgb_color_in_profile((255, 0, 0), ADOBE_RGB)

    assert result[0] == pytest.approx(expected[0], abs=0.01)
    assert result[1] == pytest.approx(expected[1], abs=0.01)
    assert result[2] == pytest.approx(expected[2], abs=0.01)
    assert result[0] < 0.9  # Adobe RGB's red is more saturated than sRGB's


def test_srgb_color_without_profile_is_unchanged():
    assert srgb_color_in_profile((255, 128, 0), None) == (1.0, 128 / 255, 0.0)


def test_srgb_color_accepts_fractions():
    as_integers = srgb_color_in_profile((200, 60, 40), DISPLAY_P3)
    as_fractions = srgb_color_in_profile((200 / 255, 60 / 255, 40 / 255), DISPLAY_P3)
    assert as_fractions == as_integers
    with pytest.raises(ValueError):
        srgb_color_in_profile((1.5, 0.0, 0.0), DISPLAY_P3)
    with pytest.raises(ValueError):
        srgb_color_in_profile((256, 0, 0), DISPLAY_P3)


def test_to_srgb8_inverts_srgb_color_in_profile():
    colour = (200, 60, 40)
    in_profile = srgb_color_in_profile(colour, DISPLAY_P3)
    pixels = np.array([[[round(value * 255) for value in in_profile]]], np.uint8)

    back = to_srgb8(pixels, DISPLAY_P3)[0, 0]

    assert np.abs(pixels[0, 0].astype(int) - colour).max() > 5  # the profile really moved the values
    assert np.abs(back.astype(int) - colour).max() <= 2


def test_to_srgb8_reduces_16bit():
    pixels = np.array([[[65535, 32896, 0]]], np.uint16)
    assert to_srgb8(pixels, None)[0, 0].tolist() == [255, 128, 0]


def test_preview_converts_profile_to_srgb(tmp_path):
    colour = (200, 60, 40)
    in_profile = srgb_color_in_profile(colour, ADOBE_RGB)
    frame = np.empty((64, 64, 3), np.uint8)
    frame[:] = [round(value * 255) for value in in_profile]
    source = tmp_path / "adobe.png"
    Image.fromarray(frame).save(source, icc_profile=ADOBE_RGB)

    preview = read_preview(source)

    assert np.abs(frame[0, 0].astype(int) - colour).max() > 5
    assert np.abs(preview.rgb[32, 32].astype(int) - colour).max() <= 2


# --------------------------------------------------------------------------
# CMYK


def cmyk_jpeg(path: Path, pixels: np.ndarray, profile: bytes | None) -> None:
    image = Image.fromarray(pixels)
    if profile:
        press = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        transform = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), press, "RGB", "CMYK")
        image = ImageCms.applyTransform(image, transform)
        image.save(path, quality=95, icc_profile=profile)
    else:
        image.convert("CMYK").save(path, quality=95)


def test_cmyk_jpeg_read_and_written_back(tmp_path, portrait):
    profile = cmyk_profile()
    source = tmp_path / "press.jpg"
    cmyk_jpeg(source, portrait, profile)

    photo = read_photo(source)
    assert photo.info.mode == "CMYK"
    assert photo.info.icc_profile == profile
    assert photo.icc_profile == srgb_profile()
    assert psnr(photo.pixels, portrait) > 30

    target = write_photo(tmp_path / "press-retouched.jpg", photo.pixels, like=photo.info, icc_profile=photo.icc_profile)
    with Image.open(target) as written:
        assert written.mode == "CMYK"
        assert written.info.get("icc_profile") == profile
    assert psnr(read_photo(target).pixels, portrait) > 28


def test_cmyk_jpeg_stays_cmyk_when_jpeg_is_named(tmp_path, portrait):
    # `headshot process` names the format it resolved from "same"; a CMYK JPEG must still come back CMYK.
    profile = cmyk_profile()
    source = tmp_path / "press.jpg"
    cmyk_jpeg(source, portrait, profile)
    photo = read_photo(source)

    target = write_photo(tmp_path / "named.jpg", photo.pixels, like=photo.info, format="jpg", icc_profile=photo.icc_profile)

    with Image.open(target) as written:
        assert written.mode == "CMYK"
        assert written.info.get("icc_profile") == profile


def test_cmyk_jpeg_as_png_gets_srgb(tmp_path, portrait):
    source = tmp_path / "press.jpg"
    cmyk_jpeg(source, portrait, cmyk_profile())
    photo = read_photo(source)

    target = write_photo(tmp_path / "web.png", photo.pixels, like=photo.info, format="png")

    assert profile_color_space(probe(target).icc_profile) == "RGB"
    assert probe(target).mode == "RGB"


def adobe_cmyk_jpeg(path: Path, ink: tuple[int, int, int, int]) -> Path:
    """A flat CMYK JPEG as Photoshop stores it: inverted values and Adobe's APP14 segment."""
    Image.new("CMYK", (16, 16), ink).save(path, quality=100)
    return path


def without_app14(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    start = data.index(b"\xff\xee")
    length = struct.unpack(">H", data[start + 2 : start + 4])[0]
    target.write_bytes(data[:start] + data[start + 2 + length :])
    return target


def test_adobe_cmyk_jpeg_polarity(tmp_path):
    adobe = adobe_cmyk_jpeg(tmp_path / "adobe.jpg", (200, 0, 0, 0))  # cyan ink only
    red, green, blue = read_photo(adobe).pixels[8, 8].tolist()
    assert abs(red - 55) <= 3  # 200 of cyan leaves 255 - 200 of red
    assert green >= 252
    assert blue >= 252


def test_plain_cmyk_jpeg_polarity(tmp_path):
    # Stored inverted as (55, 0, 0, 0); without APP14 those bytes are plain CMYK: 55 of cyan.
    adobe = adobe_cmyk_jpeg(tmp_path / "adobe.jpg", (200, 255, 255, 255))
    plain = without_app14(adobe, tmp_path / "plain.jpg")
    red, green, blue = read_photo(plain).pixels[8, 8].tolist()
    assert abs(red - 200) <= 3
    assert green >= 252
    assert blue >= 252


# --------------------------------------------------------------------------
# Orientation


@pytest.mark.parametrize(("orientation", "corner", "shape"), [(6, "top-right", (90, 60)), (8, "bottom-left", (90, 60))])
def test_exif_orientation_applied_on_read(tmp_path, orientation, corner, shape):
    source = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(marked_frame()).save(source, quality=95, exif=exif_block(orientation))

    info = probe(source)
    photo = read_photo(source)
    preview = read_preview(source)

    assert info.orientation == orientation
    assert (info.height, info.width) == shape
    assert photo.pixels.shape[:2] == shape
    assert red_corner(photo.pixels) == corner
    assert red_corner(preview.rgb) == corner


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left")])
def test_orientation_applied_on_16bit_png(tmp_path, orientation, corner):
    # OpenCV decodes 16-bit files and ignores EXIF orientation, so photo_io turns them itself.
    pixels = marked_frame().astype(np.uint16) * 257
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    data = encoded.tobytes()
    exif = png_chunk(b"eXIf", exif_block(orientation)[6:])
    source = tmp_path / f"o{orientation}.png"
    source.write_bytes(data[:33] + exif + data[33:])

    photo = read_photo(source)

    assert photo.info.bit_depth == 16
    assert photo.pixels.shape[:2] == (90, 60)
    assert red_corner(photo.pixels) == corner


def test_tiff_output_drops_source_shape_note(tmp_path):
    source = tmp_path / "export.tif"
    tifffile.imwrite(source, np.full((40, 30, 3), 30000, dtype=np.uint16), photometric="rgb")
    photo = read_photo(source)

    written = write_photo(tmp_path / "crop.tif", photo.pixels[:20, :10], like=photo.info)

    with tifffile.TiffFile(written) as tiff:
        assert '"shape"' not in tiff.pages[0].description
        assert tiff.series[0].shape == (20, 10, 3)


def test_orientation_applied_on_16bit_tiff(tmp_path):
    pixels = marked_frame().astype(np.uint16) * 257
    source = tmp_path / "o8.tif"
    tifffile.imwrite(source, pixels, photometric="rgb", extratags=[(274, "H", 1, 8, True)])

    photo = read_photo(source)

    assert photo.info.orientation == 8
    assert red_corner(photo.pixels) == "bottom-left"


def test_orientation_applied_on_8bit_tiff(tmp_path):
    # Pillow 13 turns TIFFs itself while decoding; the pixels must not be turned twice.
    source = tmp_path / "o6.tif"
    Image.fromarray(marked_frame()).save(source, compression="tiff_lzw", tiffinfo={274: 6})

    info = probe(source)
    photo = read_photo(source)

    assert info.orientation == 6
    assert (info.height, info.width) == (90, 60)
    assert red_corner(photo.pixels) == "top-right"


@pytest.mark.parametrize(("image_format", "depth"), ALL_OUTPUTS)
def test_write_resets_orientation(tmp_path, image_format, depth):
    source = tmp_path / "o6.jpg"
    Image.fromarray(marked_frame()).save(source, quality=95, exif=exif_block(6))
    photo = read_photo(source)

    target = tmp_path / f"upright{photo_io.output_suffix(image_format)}"
    write_photo(target, photo.pixels, like=photo.info, format=image_format, bit_depth=depth)
    info = probe(target)
    exif = Image.Exif()
    exif.load(info.exif)

    assert info.orientation == 1
    assert exif[0x0112] == 1
    assert exif[0x010F] == "Hasselblad"
    assert exif[0x8298] == "Jan de Vries Fotografie"
    assert (info.height, info.width) == (90, 60)
    assert red_corner(read_photo(target).pixels) == "top-right"


# --------------------------------------------------------------------------
# XMP


def xmp_values(packet: bytes, namespace: str, name: str) -> list[str]:
    document = minidom.parseString(packet.decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    return [node.firstChild.data for node in document.getElementsByTagNameNS(namespace, name) if node.firstChild]


IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"


@pytest.mark.parametrize(("image_format", "depth"), ALL_OUTPUTS)
def test_xmp_digital_source_type_written(tmp_path, portrait, image_format, depth):
    target = tmp_path / f"marked{photo_io.output_suffix(image_format)}"
    write_photo(target, portrait, format=image_format, bit_depth=depth)
    packet = probe(target).xmp

    assert xmp_values(packet, IPTC_EXT, "DigitalSourceType") == [
        "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"
    ]
    assert xmp_values(packet, XMP_BASIC, "CreatorTool") == ["Headshot Studio"]


def test_xmp_merged_into_existing_packet(tmp_path, portrait):
    existing = (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmp:CreatorTool="Adobe Lightroom Classic" tiff:Orientation="6">'
        "<dc:creator><rdf:Seq><rdf:li>Jan de Vries</rdf:li></rdf:Seq></dc:creator>"
        "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
        "</Iptc4xmpExt:DigitalSourceType>"
        "</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>"
    ).encode()
    target = write_photo(tmp_path / "merged.jpg", portrait, xmp=existing, digital_source_type="compositeWithTrainedAlgorithmicMedia")
    packet = probe(target).xmp
    document = minidom.parseString(packet.decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    lightroom = document.getElementsByTagNameNS("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "Description")[0]

    assert xmp_values(packet, "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "li") == ["Jan de Vries"]
    assert xmp_values(packet, IPTC_EXT, "DigitalSourceType") == [
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    ]
    assert xmp_values(packet, XMP_BASIC, "CreatorTool") == ["Headshot Studio"]
    assert not lightroom.hasAttributeNS(XMP_BASIC, "CreatorTool")
    assert lightroom.getAttributeNS("http://ns.adobe.com/tiff/1.0/", "Orientation") == "1"


def test_oversized_xmp_still_fits_jpeg(tmp_path, portrait):
    history = "".join(f'<rdf:li stEvt:action="saved" stEvt:instanceID="xmp.iid:{index:06d}"/>' for index in range(2000))
    existing = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"'
        ' xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<xmpMM:History><rdf:Seq>{history}</rdf:Seq></xmpMM:History>"
        "<dc:creator><rdf:Seq><rdf:li>Jan de Vries</rdf:li></rdf:Seq></dc:creator>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    assert len(existing) > 65_535

    target = write_photo(tmp_path / "big-xmp.jpg", portrait, xmp=existing)
    packet = probe(target).xmp

    assert xmp_values(packet, IPTC_EXT, "DigitalSourceType")
    assert "Jan de Vries" in xmp_values(packet, "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "li")


# --------------------------------------------------------------------------
# Reading previews


def test_preview_uses_dct_scaling(tmp_path, astronaut_rgb):
    source = tmp_path / "large.jpg"
    large = cv2.resize(astronaut_rgb, (2400, 1600), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(large).save(source, quality=90)

    preview = read_preview(source, max_side=800)

    # 2400 / 4 = 600 is at least 3/4 of 800, so the decoder scales by 1/4 and nothing is enlarged.
    assert preview.rgb.shape == (400, 600, 3)
    assert preview.scale == pytest.approx(0.25)
    assert preview.rgb.dtype == np.uint8
    assert psnr(preview.rgb, cv2.resize(large, (600, 400), interpolation=cv2.INTER_AREA)) > 28


def test_preview_of_16bit_tiff_is_reduced(tmp_path, portrait):
    source = write_photo(tmp_path / "deep.tif", deep(portrait), format="tiff", bit_depth=16)
    preview = read_preview(source, max_side=80)

    assert preview.rgb.dtype == np.uint8
    assert max(preview.rgb.shape[:2]) == 80
    assert preview.scale == pytest.approx(0.5)


def test_preview_of_shared_photo(shared_photos):
    preview = read_preview(shared_photos / "obama.jpg", max_side=400)
    assert preview.info.width == 910
    assert 300 <= max(preview.rgb.shape[:2]) <= 400
    assert preview.scale == pytest.approx(preview.rgb.shape[1] / 910)


# --------------------------------------------------------------------------
# Errors


def make_truncated_jpeg(folder: Path, portrait) -> Path:
    whole = folder / "whole.jpg"
    Image.fromarray(portrait).save(whole, quality=95)
    path = folder / "cut.jpg"
    path.write_bytes(whole.read_bytes()[:-400])
    return path


def make_huge_png_header(folder: Path, width=100_000, height=100_000) -> Path:
    path = folder / "huge.png"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    return path


def make_error_case(code: str, folder: Path, portrait) -> tuple[Path, callable]:
    """Return the file an error is about and the call that raises it."""
    if code == "file_not_found":
        path = folder / "missing.jpg"
        return path, lambda: read_photo(path)
    if code == "not_a_file":
        path = folder / "session.jpg"
        path.mkdir()
        return path, lambda: read_photo(path)
    if code == "file_empty":
        path = folder / "empty.jpg"
        path.write_bytes(b"")
        return path, lambda: read_photo(path)
    if code == "file_truncated":
        path = make_truncated_jpeg(folder, portrait)
        return path, lambda: read_photo(path)
    if code == "not_an_image":
        path = folder / "notes.jpg"
        path.write_text("Shoot list: three looks, grey backdrop.\n")
        return path, lambda: read_photo(path)
    if code == "unsupported_format":
        path = folder / "animation.gif"
        Image.fromarray(portrait).save(path)
        return path, lambda: read_photo(path)
    if code == "image_too_large":
        path = make_huge_png_header(folder)
        return path, lambda: read_photo(path)
    if code == "image_empty":
        path = make_huge_png_header(folder, width=0, height=50)
        return path, lambda: probe(path)
    if code == "file_damaged":
        path = folder / "damaged.png"
        Image.fromarray(portrait).save(path)
        data = bytearray(path.read_bytes())
        start = data.index(b"IDAT") + 4
        data[start : start + 200] = bytes(200)
        path.write_bytes(bytes(data))
        return path, lambda: read_photo(path)
    if code == "write_failed":
        path = folder / "no-such-folder" / "out.jpg"
        return path, lambda: write_photo(path, portrait)
    if code == "would_overwrite_input":
        path = folder / "input.jpg"
        Image.fromarray(portrait).save(path)
        return path, lambda: write_photo(path, portrait, inputs=[path])
    if code == "invalid_option":
        path = folder / "out.jpg"
        return path, lambda: write_photo(path, portrait, format="jpeg", bit_depth=16)
    raise AssertionError(code)


ERROR_CODES = [
    "file_not_found", "not_a_file", "file_empty", "file_truncated", "not_an_image", "unsupported_format",
    "image_too_large", "image_empty", "file_damaged", "write_failed", "would_overwrite_input", "invalid_option",
]  # fmt: skip


@pytest.mark.parametrize("code", ERROR_CODES)
def test_error_code_names_file(tmp_path, monkeypatch, portrait, code):
    path, call = make_error_case(code, tmp_path, portrait)

    with pytest.raises(HeadshotError) as raised:
        call()
    english = raised.value.user_message()
    monkeypatch.setenv("HEADSHOT_LANG", "nl")
    dutch = raised.value.user_message()

    assert raised.value.code == code
    assert path.name in english
    assert path.name in dutch
    assert dutch != english


def test_unreadable_file_reported(tmp_path, monkeypatch, portrait):
    path = tmp_path / "locked.jpg"
    Image.fromarray(portrait).save(path)
    if os.geteuid() == 0:
        # root reads any file, so make the open itself fail as it would for a photographer.
        real_open = Path.open

        def refusing_open(self, *args, **kwargs):
            if self == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refusing_open)
    else:
        path.chmod(0)

    with pytest.raises(HeadshotError) as raised:
        read_photo(path)
    # The reason is translated when the error is raised, in the language of that moment.
    monkeypatch.setenv("HEADSHOT_LANG", "nl")
    with pytest.raises(HeadshotError) as raised_in_dutch:
        read_photo(path)

    assert raised.value.code == "file_unreadable"
    assert "locked.jpg" in raised.value.user_message()
    assert "permission denied" in raised.value.user_message()
    assert "locked.jpg" in raised_in_dutch.value.user_message()
    assert "toegang geweigerd" in raised_in_dutch.value.user_message()


@pytest.mark.parametrize("name", ["frame.bmp", "frame.cr2"])
def test_bmp_and_raw_unsupported(tmp_path, portrait, name):
    path = tmp_path / name
    Image.fromarray(portrait).save(path, format="BMP")
    with pytest.raises(HeadshotError) as raised:
        probe(path)
    assert raised.value.code == "unsupported_format"


def test_huge_header_refused_without_allocating(tmp_path):
    path = make_huge_png_header(tmp_path)
    process = psutil.Process()
    before = process.memory_info().rss

    for call in (probe, read_photo, read_preview):
        with pytest.raises(HeadshotError) as raised:
            call(path)
        assert raised.value.code == "image_too_large"
        assert "100000×100000" in raised.value.user_message()

    assert process.memory_info().rss - before < 50 * 2**20


def minimal_tiff_header(path: Path, width: int, height: int) -> Path:
    """A little-endian 8-bit RGB TIFF directory whose single strip lies beyond the end of the file."""
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, 1, 4096), (277, 3, 1, 3), (278, 4, 1, height), (279, 4, 1, width * height * 3),
    ]  # fmt: skip
    directory = struct.pack("<H", len(entries))
    for tag, field_type, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if field_type == 3 else struct.pack("<I", value)
        directory += struct.pack("<HHI", tag, field_type, count) + packed
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + directory + struct.pack("<I", 0))
    return path


def test_header_above_pillow_guard_accepted(tmp_path):
    # 196 megapixels: above Pillow's default refusal (2 x 89.5 MP), below DEFAULT_MAX_PIXELS.
    source = minimal_tiff_header(tmp_path / "medium-format.tif", 14_000, 14_000)
    process = psutil.Process()
    before = process.memory_info().rss

    info = probe(source)
    with pytest.raises(HeadshotError) as raised:
        read_photo(source)

    assert (info.width, info.height) == (14_000, 14_000)
    assert raised.value.code == "file_truncated"
    assert process.memory_info().rss - before < 50 * 2**20


def test_palette_png_transparency_becomes_alpha(tmp_path, portrait):
    source = tmp_path / "palette.png"
    palette_image = Image.fromarray(portrait).quantize(16)
    palette_image.info["transparency"] = 0
    palette_image.save(source, transparency=0)

    photo = read_photo(source)
    indices = np.asarray(palette_image)

    assert photo.info.has_alpha
    assert np.array_equal(photo.alpha == 0, indices == 0)


def test_max_pixels_applies_per_call(tmp_path, portrait):
    source = tmp_path / "frame.jpg"
    Image.fromarray(portrait).save(source)
    with pytest.raises(HeadshotError) as raised:
        read_photo(source, max_pixels=10_000)
    assert raised.value.code == "image_too_large"
    assert read_photo(source, max_pixels=19_200).pixels.shape == portrait.shape


@pytest.mark.parametrize(("image_format", "depth"), [("png", 8), ("png", 16), ("tiff", 16), ("webp", 8), ("heic", 8)])
def test_truncated_files_detected(tmp_path, portrait, image_format, depth):
    pixels = deep(portrait) if depth == 16 else portrait
    whole = write_photo(tmp_path / f"whole{photo_io.output_suffix(image_format)}", pixels, format=image_format)
    cut = tmp_path / f"cut{photo_io.output_suffix(image_format)}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])

    with pytest.raises(HeadshotError) as raised:
        read_photo(cut)
    assert raised.value.code == "file_truncated"


def test_truncated_progressive_jpeg_detected(tmp_path, portrait):
    whole = tmp_path / "whole.jpg"
    Image.fromarray(portrait).save(whole, quality=95, progressive=True)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for call in (read_photo, read_preview):
        with pytest.raises(HeadshotError) as raised:
            call(cut)
        assert raised.value.code == "file_truncated"


# --------------------------------------------------------------------------
# Writing safely


def test_source_unchanged_by_read_and_write(tmp_path, portrait):
    source = tmp_path / "source.jpg"
    Image.fromarray(portrait).save(source, quality=95, exif=exif_block(6))
    before = hash_file(source)

    photo = read_photo(source)
    read_preview(source)
    write_photo(tmp_path / "variant.jpg", photo.pixels, like=photo.info, inputs=[source])

    assert hash_file(source) == before
    assert before == hashlib.sha256(source.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".part"))


def test_failed_rename_leaves_nothing(tmp_path, monkeypatch, portrait):
    target = tmp_path / "variant.jpg"

    def full_disk(source, destination):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(photo_io.writing.os, "replace", full_disk)
    with pytest.raises(HeadshotError) as raised:
        write_photo(target, portrait)

    assert raised.value.code == "write_failed"
    assert "no space left" in raised.value.user_message()
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_failed_write_keeps_old_output(tmp_path, monkeypatch, portrait):
    target = write_photo(tmp_path / "variant.png", portrait)
    before = hash_file(target)

    def failing_fsync(descriptor):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(photo_io.writing.os, "fsync", failing_fsync)
    with pytest.raises(HeadshotError) as raised:
        write_photo(target, portrait[::-1].copy())

    assert raised.value.code == "write_failed"
    assert hash_file(target) == before
    assert leftovers(tmp_path) == []


def test_read_only_output_is_not_replaced(tmp_path, portrait):
    target = write_photo(tmp_path / "variant.png", portrait)
    before = hash_file(target)
    target.chmod(0o444)

    with pytest.raises(HeadshotError) as raised:
        write_photo(target, portrait[::-1].copy())

    assert raised.value.code == "write_failed"
    assert raised.value.user_message("en").startswith(f"{target} could not be written (the file is read-only)")
    assert hash_file(target) == before
    assert leftovers(tmp_path) == []


def test_invalid_option_writes_nothing(tmp_path, portrait):
    cases = [
        {"format": "gif"},
        {"format": "webp", "bit_depth": 16},
        {"bit_depth": 12},
        {"jpeg_quality": 0},
        {"digital_source_type": "aiGenerated"},
    ]
    for options in cases:
        with pytest.raises(HeadshotError) as raised:
            write_photo(tmp_path / "out.webp", portrait, **options)
        assert raised.value.code == "invalid_option", options
    with pytest.raises(HeadshotError):
        write_photo(tmp_path / "out.png", portrait.astype(np.float32))
    assert os.listdir(tmp_path) == []


def test_suffix_must_match_format(tmp_path, portrait):
    with pytest.raises(HeadshotError) as raised:
        write_photo(tmp_path / "out.jpg", portrait, format="png")
    assert raised.value.code == "invalid_option"


def test_same_format_without_like_uses_suffix(tmp_path, portrait):
    assert probe(write_photo(tmp_path / "out.webp", portrait)).format == "webp"
    assert probe(write_photo(tmp_path / "out.variant", portrait)).format == "jpeg"


def test_bit_depth_follows_like(tmp_path, portrait):
    source = write_photo(tmp_path / "deep.tif", deep(portrait), format="tiff", bit_depth=16)
    photo = read_photo(source)

    same = write_photo(tmp_path / "retouched.tif", photo.pixels, like=photo.info)
    jpeg = write_photo(tmp_path / "proof.jpg", photo.pixels, like=photo.info, format="jpeg")

    assert probe(same).bit_depth == 16
    assert np.array_equal(read_photo(same).pixels, photo.pixels)
    assert probe(jpeg).bit_depth == 8
    assert psnr(read_photo(jpeg).pixels, (photo.pixels / 257).round().astype(np.uint8)) > 40


def test_jpeg_alpha_flattened_on_white(tmp_path, portrait):
    alpha = np.full(portrait.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0
    photo = read_photo(write_photo(tmp_path / "cutout.jpg", portrait, alpha))
    assert photo.pixels[80, 10].min() >= 250
    assert psnr(photo.pixels[:, 60:], portrait[:, 60:]) > 35


def test_overwrite_refused_for_every_link(tmp_path, portrait):
    source = tmp_path / "input.jpg"
    Image.fromarray(portrait).save(source)
    info = probe(source)
    symlink = tmp_path / "shortcut.jpg"
    symlink.symlink_to(source)
    hardlink = tmp_path / "hardlink.jpg"
    os.link(source, hardlink)
    before = hash_file(source)

    for target, options in [
        (source, {"inputs": [source]}),
        (tmp_path / "." / "input.jpg", {"inputs": [str(source)]}),
        (symlink, {"inputs": [source]}),
        (hardlink, {"inputs": [source]}),
        (source, {"like": info}),
        (source, {"inputs": [info]}),
    ]:
        with pytest.raises(HeadshotError) as raised:
            write_photo(target, portrait, **options)
        assert raised.value.code == "would_overwrite_input", target

    assert hash_file(source) == before
    assert leftovers(tmp_path) == []


def grey_profile(gamma: float = 2.2) -> bytes:
    """A grey display profile with a pure gamma curve, as Photoshop's "Gray Gamma 2.2"."""
    return _build_profile(b"mntr", b"GRAY", {
        b"desc": _text_description("Grey gamma test profile"),
        b"cprt": b"text\0\0\0\0" + b"No copyright, test profile\0",
        b"wtpt": _xyz_tag(D50),
        b"kTRC": b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)),
    })


def test_grey_source_keeps_grey_profile(tmp_path, portrait):
    profile = grey_profile()
    assert profile_color_space(profile) == "GRAY"
    ImageCms.ImageCmsProfile(io.BytesIO(profile))  # a profile LittleCMS accepts
    grey = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    source = tmp_path / "mono.png"
    Image.fromarray(grey, "L").save(source, icc_profile=profile)
    photo = read_photo(source)

    written = write_photo(tmp_path / "out.png", photo.pixels, None, like=probe(source))

    with Image.open(written) as image:
        assert image.mode == "L"
        assert image.info["icc_profile"] == profile
        difference = np.abs(np.asarray(image).astype(int) - grey.astype(int))
    assert difference.mean() < 0.5  # the read goes through 8-bit sRGB, which rounds deep shadows


def test_grey_source_without_profile_keeps_its_values(tmp_path, portrait):
    grey = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    source = tmp_path / "mono.png"
    Image.fromarray(grey, "L").save(source)
    photo = read_photo(source)

    written = write_photo(tmp_path / "out.png", photo.pixels, None, like=probe(source))

    with Image.open(written) as image:
        assert image.mode == "L"
        assert "icc_profile" not in image.info
        assert np.array_equal(np.asarray(image), grey)


def test_16bit_grey_source_is_written_16bit_grey(tmp_path, portrait):
    grey = deep(cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY))
    for name in ("mono16.png", "mono16.tif"):
        source = tmp_path / name
        if name.endswith(".png"):
            cv2.imwrite(str(source), grey)
        else:
            tifffile.imwrite(source, grey, photometric="minisblack")
        photo = read_photo(source)

        written = write_photo(tmp_path / f"out-{name}", photo.pixels, None, like=probe(source))

        decoded = cv2.imread(str(written), cv2.IMREAD_UNCHANGED)
        assert decoded.ndim == 2, name
        assert decoded.dtype == np.uint16, name
        assert np.array_equal(decoded, grey), name


def test_grey_source_that_gained_colour_is_written_rgb(tmp_path, portrait):
    profile = grey_profile()
    source = tmp_path / "mono.jpg"
    Image.fromarray(cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY), "L").save(source, quality=95, icc_profile=profile)
    photo = read_photo(source)
    coloured = photo.pixels.copy()
    coloured[:100, :100] = (30, 60, 200)  # a brand-colour backdrop, say

    written = write_photo(tmp_path / "out.jpg", coloured, None, like=probe(source))

    with Image.open(written) as image:
        assert image.mode == "RGB"
        assert profile_color_space(image.info["icc_profile"]) == "RGB"


@pytest.mark.parametrize(("suffix", "bit_depth"), [(".jpg", 8), (".png", 8), (".png", 16), (".tif", 16)])
def test_write_photo_sets_print_resolution(tmp_path, suffix, bit_depth):
    # A source without EXIF: the print resolution still reaches the file's own field and a new EXIF block.
    pixels = np.full((60, 40, 3), 128 * (257 if bit_depth == 16 else 1), np.uint16 if bit_depth == 16 else np.uint8)
    path = write_photo(tmp_path / f"print{suffix}", pixels, bit_depth=bit_depth, dpi=600)

    if suffix == ".tif":
        with tifffile.TiffFile(path) as tiff:
            tags = tiff.pages[0].tags
            numerator, denominator = tags["XResolution"].value
            assert numerator / denominator == 600
            assert tags["ResolutionUnit"].value == 2
        return
    with Image.open(path) as image:
        assert image.info["dpi"] == pytest.approx((600, 600), abs=0.01)
        resolution = image.getexif()
        assert float(resolution[0x011A]) == 600
        assert resolution[0x0128] == 2  # inches


def test_print_resolution_reads_the_exif_block(tmp_path):
    from pipeline.photo_io import print_resolution

    pixels = np.full((40, 30, 3), 100, np.uint8)
    with_dpi = write_photo(tmp_path / "with.jpg", pixels, dpi=240)
    without = tmp_path / "without.jpg"
    Image.fromarray(pixels).save(without)

    assert print_resolution(probe(with_dpi)) == 240.0
    assert print_resolution(probe(without)) is None
