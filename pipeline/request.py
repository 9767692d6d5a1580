"""The one request type every client builds: the frames of a session and how to turn them into headshots.

The daemon's `headshot.v1.JobRequest` message mirrors this dataclass field for
field; GIMP, the hot folder and the command line all fill in the same fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

RETOUCH_PRESETS = ("off", "natural", "studio", "glamour")
MAKEUP_PRESETS = ("none", "natural")
OUTPUT_FORMATS = ("same", "jpeg", "png", "tiff")

# Backdrop names: "original", "studio-grey", "white", "black", "blur", "color:#RRGGBB"
# (a brand colour in sRGB) and "image:PATH" (a custom backdrop picture).
DEFAULT_BACKDROPS = ("studio-grey", "white", "blur")
DEFAULT_LIGHTS = ("natural",)
DEFAULT_CROPS = ("square", "portrait")


@dataclass
class JobRequest:
    """Everything a job needs: which frames, which variants, where it came from."""

    frames: list[str]
    origin: str = "cli"  # "cli", "gimp", "hotfolder:<folder>"
    top: int = 1  # how many of the best frames become headshots
    retouch: str = "natural"
    makeup: str = "none"
    backdrops: list[str] = field(default_factory=lambda: list(DEFAULT_BACKDROPS))
    lights: list[str] = field(default_factory=lambda: list(DEFAULT_LIGHTS))
    crops: list[str] = field(default_factory=lambda: list(DEFAULT_CROPS))
    output_format: str = "same"
    bit_depth: int = 0  # 0 keeps each frame's own bit depth; otherwise 8 or 16
    jpeg_quality: int = 95
    language: str = ""  # "nl" or "en" for messages and reports; empty means the user's locale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "JobRequest":
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**known)
