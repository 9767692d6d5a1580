"""The catalogue of styles a job can ask for: backdrops, lights, crops, retouch and make-up presets.

The names come from the modules that implement each style. This module lists
them with their English and Dutch display names for `headshot styles` and the
daemon's ListStyles, and provides the names a request is checked against.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from . import request as request_defaults
from .i18n import N_, gettext_for

KINDS = ("backdrop", "light", "crop", "retouch", "makeup")

# The module and attribute that list each kind's names. Until a module exists,
# the names below stand in for it.
_SOURCES = {
    "backdrop": ("pipeline.backdrops", "BACKDROPS"),
    "light": ("pipeline.relight", "LIGHTS"),
    "crop": ("pipeline.crops", "CROPS"),
    "retouch": ("pipeline.retouch", "RETOUCH_PRESETS"),
    "makeup": ("pipeline.retouch", "MAKEUP_PRESETS"),
}

# Display names for the styles whose module gives none (a plain tuple of names).
DISPLAY_NAMES: dict[str, dict[str, str]] = {
    "backdrop": {
        "original": N_("Backdrop as shot"),
        "studio-grey": N_("Studio grey"),
        "white": N_("White"),
        "black": N_("Black"),
        "blur": N_("Blurred background"),
        "color:#RRGGBB": N_("Brand colour (#RRGGBB, sRGB)"),
        "image:PATH": N_("Your own backdrop image"),
    },
    "light": {
        "original": N_("Light as shot"),
        "natural": N_("Natural light"),
        "soft-studio": N_("Soft studio light"),
        "rembrandt-left": N_("Rembrandt light from the left"),
        "rembrandt-right": N_("Rembrandt light from the right"),
        "loop-left": N_("Loop light from the left"),
        "loop-right": N_("Loop light from the right"),
        "butterfly": N_("Butterfly light"),
        "split-left": N_("Split light from the left"),
        "split-right": N_("Split light from the right"),
        "rim-left": N_("Rim light from the left"),
        "rim-right": N_("Rim light from the right"),
    },
    "crop": {
        "original": N_("Full frame"),
        "square": N_("Square"),
        "portrait": N_("Portrait"),
        "classic": N_("Classic headshot"),
        "banner": N_("Banner"),
        "passport": N_("Passport photo (35×45 mm)"),
        "us-passport": N_("US passport photo (2×2 in)"),
    },
    "retouch": {
        "off": N_("No retouching"),
        "natural": N_("Natural retouching"),
        "studio": N_("Studio retouching"),
        "glamour": N_("Glamour retouching"),
    },
    "makeup": {
        "none": N_("No make-up"),
        "natural": N_("Natural make-up"),
    },
}

# Names a request may use that stand for a family of values, not one style.
BACKDROP_PATTERNS = ("color:#RRGGBB", "image:PATH")

_FALLBACK_NAMES = {
    "backdrop": ("original", "studio-grey", "white", "black", "blur", *BACKDROP_PATTERNS),
    "light": tuple(DISPLAY_NAMES["light"]),
    "crop": tuple(DISPLAY_NAMES["crop"]),
    "retouch": request_defaults.RETOUCH_PRESETS,
    "makeup": request_defaults.MAKEUP_PRESETS,
}


def style_names(kind: str) -> list[str]:
    """Return the names of one kind of style, as the module that implements it lists them."""
    return list(_styles_of(kind))


def list_styles() -> list[dict]:
    """List every style as {"kind", "name", "en", "nl"}; parameterised backdrops appear as their pattern."""
    english, dutch = gettext_for("en"), gettext_for("nl")
    styles = []
    for kind in KINDS:
        for name, display_name in _styles_of(kind).items():
            styles.append({"kind": kind, "name": name, "en": english(display_name), "nl": dutch(display_name)})
    return styles


def display_name(kind: str, name: str, language: str | None = None) -> str:
    """Return a style's name for a person, translated; a brand colour or image keeps its own value."""
    _ = gettext_for(language)
    styles = _styles_of(kind)
    if name in styles:
        return _(styles[name])
    if kind == "backdrop":
        keyword, _separator, value = name.partition(":")
        pattern = {"color": "color:#RRGGBB", "colour": "color:#RRGGBB", "image": "image:PATH"}.get(keyword.strip().lower())
        if pattern is not None and value.strip():
            value_label = value.strip().upper() if pattern.startswith("color") else os.path.basename(value.strip())
            return f"{_(styles[pattern])} {value_label}"
    return name


def _styles_of(kind: str) -> dict[str, str]:
    """Map each name of a kind to its untranslated display name, preferring the implementing module's list."""
    if kind not in _SOURCES:
        raise ValueError(f"unknown style kind {kind!r}; expected one of {', '.join(KINDS)}")
    module_name, attribute = _SOURCES[kind]
    try:
        names = getattr(importlib.import_module(module_name), attribute, None)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        names = None
    if names is None:
        names = _FALLBACK_NAMES[kind]

    styles: dict[str, str] = {}
    for name in names:
        given = names[name] if isinstance(names, Mapping) else None
        styles[name] = _display_text(given) or DISPLAY_NAMES[kind].get(name, name)
    if kind == "backdrop":
        for pattern in BACKDROP_PATTERNS:
            styles.setdefault(pattern, DISPLAY_NAMES["backdrop"][pattern])
    return styles


def _display_text(given) -> str | None:
    """Return the display name a module gives, whether as a string or on a style object."""
    if isinstance(given, str):
        return given
    for attribute in ("display_name", "label", "title"):
        value = getattr(given, attribute, None)
        if isinstance(value, str):
            return value
    return None
