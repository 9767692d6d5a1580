"""The Lightroom Classic export preset that sends photos to the inbox, filled in with this user's inbox path."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PRESET_FILE_NAME = "Headshot Studio.lrtemplate"
SHIPPED_PRESET = Path(__file__).resolve().parent / PRESET_FILE_NAME
_DESTINATION = re.compile(r'^(\s*export_destinationPathPrefix = )"[^"\n]*"', re.MULTILINE)


def render_export_preset(inbox: Path) -> str:
    """Return the shipped preset with its export folder set to `inbox` (an absolute path, as Lightroom stores it)."""
    quoted = str(Path(inbox).expanduser().absolute()).replace("\\", "\\\\").replace('"', '\\"')
    text = SHIPPED_PRESET.read_text(encoding="utf-8")
    rendered, count = _DESTINATION.subn(lambda match: f'{match.group(1)}"{quoted}"', text)
    if count != 1:
        raise ValueError(f"{SHIPPED_PRESET} has {count} export_destinationPathPrefix lines, expected 1")
    return rendered


def lightroom_user_presets_dir() -> Path | None:
    """Return Lightroom Classic's folder for user export presets on macOS and Windows; None elsewhere."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Adobe" / "Lightroom" / "Export Presets" / "User Presets"
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "Adobe" / "Lightroom" / "Export Presets" / "User Presets"
    return None
