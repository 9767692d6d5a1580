"""The job report (report.json): every frame's score and every variant's file and exact recipe.

A photographer or a later run reads it to see why a frame was chosen and to
make the same variant again. The file is written last and atomically, so once
it exists the job's other outputs are complete.
"""

from __future__ import annotations

import datetime
import io
import json
from importlib import metadata
from pathlib import Path

from .atomic import atomic_output
from .errors import HeadshotError

ENGINE = "headshot-studio"
REPORT_VERSION = 1


def engine_version() -> str:
    """Return the installed package's version, or the source tree's when it runs uninstalled."""
    try:
        return metadata.version(ENGINE)
    except metadata.PackageNotFoundError:
        return "0.1.0+source"


def build_report(
    job_id: str,
    request: dict,
    frames: list[dict],
    variants: list[dict],
    contact_sheet: str | None,
    language: str,
) -> dict:
    """Assemble the report: the engine, the request as given, the frames and the variants in request order."""
    return {
        "report_version": REPORT_VERSION,
        "engine": {"name": ENGINE, "version": engine_version()},
        "job_id": job_id,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "language": language,
        "request": request,
        "frames": frames,
        "variants": variants,
        "contact_sheet": contact_sheet,
    }


def write_report(path: Path, report: dict) -> Path:
    """Write the report as UTF-8 JSON, atomically."""
    text = json.dumps(report, ensure_ascii=False, indent=2, default=_json_value)
    return write_atomically(Path(path), text.encode("utf-8") + b"\n")


def write_atomically(path: Path, data: bytes) -> Path:
    """Publish bytes under `path` in one rename; a reader never sees a partial file."""
    path = Path(path)
    try:
        with atomic_output(path) as handle:
            handle.write(data)
    except OSError as error:
        raise HeadshotError("write_failed", path, str(error), reason=error.strerror or str(error)) from error
    return path


def icc_description(icc_profile: bytes | None) -> str | None:
    """Return an ICC profile's own description (its 'desc' tag), or None when there is no profile."""
    if not icc_profile:
        return None
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        description = ImageCms.getProfileDescription(profile).strip()
    except (OSError, ImageCms.PyCMSError):
        return "unreadable ICC profile"
    return description or "ICC profile without a description"


def _json_value(value):
    """Convert the values json does not know: paths, numpy numbers and arrays, enums."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
