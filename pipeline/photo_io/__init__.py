"""Read and write the files photographers hand over: JPEG, PNG, TIFF, WebP and HEIC, in 8 or 16 bits, with their metadata.

Pixels come back as RGB arrays with the EXIF orientation applied, and outputs go
out in the source's format, bit depth and ICC profile, marked in XMP as AI-edited.
"""

from __future__ import annotations

from ..color import srgb_color_in_profile, to_srgb8
from .formats import DEFAULT_MAX_PIXELS, FORMATS, output_suffix
from .metadata import CREATOR_TOOL, DIGITAL_SOURCE_TYPES, merge_xmp, print_resolution
from .reading import Photo, PhotoInfo, Preview, hash_file, probe, read_photo, read_preview
from .writing import write_photo

__all__ = [
    "CREATOR_TOOL",
    "DEFAULT_MAX_PIXELS",
    "DIGITAL_SOURCE_TYPES",
    "FORMATS",
    "Photo",
    "PhotoInfo",
    "Preview",
    "hash_file",
    "merge_xmp",
    "output_suffix",
    "print_resolution",
    "probe",
    "read_photo",
    "read_preview",
    "srgb_color_in_profile",
    "to_srgb8",
    "write_photo",
]
