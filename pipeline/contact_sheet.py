"""The contact sheet: every variant of a job as a labelled thumbnail on one sRGB JPEG, for a person to look over.

Thumbnails are made from the pixels just before they are encoded and converted
from the frame's colour profile to sRGB, so the sheet shows what the files hold.
"""

from __future__ import annotations

import functools
import io
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageFont

from .report import write_atomically

THUMBNAIL_SIDE = 360  # maximum side of a thumbnail, in pixels
LABEL_FONT_SIZE = 16
TITLE_FONT_SIZE = 22
MAX_COLUMNS = 4
GUTTER = 16
LABEL_LINES = 4
SHEET_BACKGROUND = (236, 236, 236)
LABEL_COLOR = (20, 20, 20)
SECONDARY_COLOR = (90, 90, 90)
JPEG_QUALITY = 90


@dataclass
class Thumbnail:
    """One variant on the sheet: its picture (uint8 sRGB, filled in once the file is written) and the lines under it."""

    pixels: np.ndarray | None
    name: str  # the file name
    styles: str  # backdrop and light in the reader's language
    crop: str  # the crop in the reader's language
    score: str  # e.g. "Score 87/100 · rank 1"


def make_thumbnail(pixels: np.ndarray, icc_profile: bytes | None = None, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Shrink an (H, W, 3) uint8 or uint16 picture to `side` pixels at most and convert it to 8-bit sRGB."""
    # 1. Shrink first, so the colour conversion runs on a few hundred thousand pixels.
    height, width = pixels.shape[:2]
    factor = min(1.0, side / max(height, width))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)

    # 2. Bring 16-bit values to 8 bits.
    if pixels.dtype == np.uint16:
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)

    # 3. Convert from the frame's profile to sRGB.
    if icc_profile:
        transform = _to_srgb_transform(icc_profile)
        if transform is not None:
            image = ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(pixels)), transform)
            pixels = np.asarray(image)
    return np.ascontiguousarray(pixels)


def render_contact_sheet(thumbnails: list[Thumbnail], title: str) -> Image.Image:
    """Lay the thumbnails out in a grid under a title, each with its name, styles and score."""
    # 1. Measure the grid.
    label_font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    title_font = ImageFont.load_default(size=TITLE_FONT_SIZE)
    columns = max(1, min(MAX_COLUMNS, len(thumbnails)))
    rows = max(1, math.ceil(len(thumbnails) / columns))
    line_height = LABEL_FONT_SIZE + 6
    cell_width = THUMBNAIL_SIDE
    cell_height = THUMBNAIL_SIDE + LABEL_LINES * line_height + 8
    title_height = TITLE_FONT_SIZE + 2 * GUTTER
    sheet_width = columns * cell_width + (columns + 1) * GUTTER
    sheet_height = title_height + rows * cell_height + rows * GUTTER

    # 2. Draw the title.
    sheet = Image.new("RGB", (sheet_width, sheet_height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((GUTTER, GUTTER), _fit(draw, title, title_font, sheet_width - 2 * GUTTER), font=title_font, fill=LABEL_COLOR)

    # 3. Place each thumbnail centred in its cell, with its label below.
    for index, thumbnail in enumerate(thumbnails):
        row, column = divmod(index, columns)
        cell_left = GUTTER + column * (cell_width + GUTTER)
        cell_top = title_height + row * (cell_height + GUTTER)
        picture = Image.fromarray(thumbnail.pixels)
        offset_x = cell_left + (cell_width - picture.width) // 2
        offset_y = cell_top + (THUMBNAIL_SIDE - picture.height) // 2
        sheet.paste(picture, (offset_x, offset_y))

        label_top = cell_top + THUMBNAIL_SIDE + 6
        lines = (
            (thumbnail.name, LABEL_COLOR),
            (thumbnail.styles, SECONDARY_COLOR),
            (thumbnail.crop, SECONDARY_COLOR),
            (thumbnail.score, SECONDARY_COLOR),
        )
        for line_index, (text, color) in enumerate(lines):
            position = (cell_left, label_top + line_index * line_height)
            draw.text(position, _fit(draw, text, label_font, cell_width), font=label_font, fill=color)
    return sheet


def write_contact_sheet(path: Path, thumbnails: list[Thumbnail], title: str) -> Path:
    """Render the sheet and write it as an sRGB JPEG, atomically."""
    sheet = render_contact_sheet(thumbnails, title)
    buffer = io.BytesIO()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    sheet.save(buffer, format="JPEG", quality=JPEG_QUALITY, icc_profile=srgb)
    return write_atomically(Path(path), buffer.getvalue())


# Stand-ins for characters Pillow's built-in font draws as an empty box.
_PLAIN_CHARACTERS = {"×": "x", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"'}


def _drawable(text: str, font) -> str:
    """Replace the characters the font has no glyph for: accents are dropped (é to e), a few signs get a stand-in."""
    missing = _missing_glyph(font)
    characters = []
    for character in text:
        if character.isascii() or bytes(font.getmask(character)) != missing:
            characters.append(character)
            continue
        plain = _PLAIN_CHARACTERS.get(character) or unicodedata.normalize("NFKD", character).encode("ascii", "ignore").decode()
        characters.append(plain or "?")
    return "".join(characters)


@functools.lru_cache(maxsize=4)
def _missing_glyph_for_size(font_size: int) -> bytes:
    font = ImageFont.load_default(size=font_size)
    return bytes(font.getmask("\uffff"))


def _missing_glyph(font) -> bytes:
    return _missing_glyph_for_size(int(getattr(font, "size", LABEL_FONT_SIZE)))


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """Make text drawable, then shorten it with an ellipsis in the middle until it fits `width` pixels."""
    text = _drawable(text, font)
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 4:
        keep -= 1
        head = text[: (keep + 1) // 2]
        tail = text[len(text) - keep // 2 :]
        candidate = f"{head}…{tail}"
        if draw.textlength(candidate, font=font) <= width:
            return candidate
    return text[:4] + "…"


@functools.lru_cache(maxsize=8)
def _to_srgb_transform(icc_profile: bytes):
    """Build (once per profile) a transform from the frame's profile to sRGB; None when the profile is unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        return ImageCms.buildTransform(source, target, "RGB", "RGB")
    except (OSError, ImageCms.PyCMSError):
        return None
