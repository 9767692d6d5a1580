"""Retouch strengths and the named presets a photographer picks from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import HeadshotError
from ..i18n import N_

RETOUCH_PRESETS: dict[str, str] = {
    "off": N_("Off"),
    "natural": N_("Natural"),
    "studio": N_("Studio"),
    "glamour": N_("Glamour"),
}

MAKEUP_PRESETS: dict[str, str] = {
    "none": N_("No make-up"),
    "natural": N_("Natural make-up"),
}


@dataclass(frozen=True)
class RetouchSettings:
    """Strength of each retouching step, 0 (off) to 1 (strongest)."""

    skin_smoothing: float = 0.0
    blemish_healing: float = 0.0
    under_eye: float = 0.0
    eye_whites: float = 0.0
    iris_contrast: float = 0.0
    teeth_whitening: float = 0.0
    redness: float = 0.0
    color_cast: float = 0.0
    lip_tint: float = 0.0
    blush: float = 0.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not 0.0 <= float(value) <= 1.0:
                raise HeadshotError(
                    "invalid_option", detail=f"{name}={value}", option=name, value=value, allowed="0..1"
                )

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_off(self) -> bool:
        return not any(asdict(self).values())

    @classmethod
    def preset(cls, name: str, makeup: str = "none") -> "RetouchSettings":
        """Return the strengths of a named retouch preset, with a make-up preset on top."""
        if name not in RETOUCH_PRESETS:
            raise HeadshotError(
                "invalid_option", detail=f"retouch preset {name!r}", option="retouch", value=name,
                allowed=", ".join(RETOUCH_PRESETS),
            )
        if makeup not in MAKEUP_PRESETS:
            raise HeadshotError(
                "invalid_option", detail=f"makeup preset {makeup!r}", option="makeup", value=makeup,
                allowed=", ".join(MAKEUP_PRESETS),
            )
        settings = _RETOUCH_STRENGTHS[name]
        if makeup == "natural":
            settings = replace(settings, lip_tint=0.45, blush=0.4)
        return settings


# Spots are healed fully in every preset, as any retoucher would; the presets differ in
# how far skin is evened and features are brightened. Pores stay in all of them.
_RETOUCH_STRENGTHS: dict[str, RetouchSettings] = {
    "off": RetouchSettings(),
    "natural": RetouchSettings(
        skin_smoothing=0.45, blemish_healing=1.0, under_eye=0.35, eye_whites=0.3, iris_contrast=0.25,
        teeth_whitening=0.3, redness=0.3,
    ),
    "studio": RetouchSettings(
        skin_smoothing=0.65, blemish_healing=1.0, under_eye=0.5, eye_whites=0.5, iris_contrast=0.4,
        teeth_whitening=0.5, redness=0.5, color_cast=0.3,
    ),
    "glamour": RetouchSettings(
        skin_smoothing=0.85, blemish_healing=1.0, under_eye=0.7, eye_whites=0.7, iris_contrast=0.6,
        teeth_whitening=0.7, redness=0.7, color_cast=0.5,
    ),
}
