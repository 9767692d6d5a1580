"""Up-front checks of a job request, so a bad frame or option is rejected before the job is queued."""

from __future__ import annotations

import errno
import importlib
import os
import stat
import tempfile
from pathlib import Path

from pipeline.errors import HeadshotError, similar_names
from pipeline.i18n import N_, gettext_for
from pipeline.request import MAKEUP_PRESETS, OUTPUT_FORMATS, RETOUCH_PRESETS, JobRequest

from .config import HEX_COLOR, DefaultStyles

# Style names from pipeline.request, for a tree where pipeline.styles is not installed.
FALLBACK_STYLE_NAMES = {
    "retouch": RETOUCH_PRESETS,
    "makeup": MAKEUP_PRESETS,
    "backdrop": ("original", "studio-grey", "white", "black", "blur"),
}
# The reason, by errno, that a file cannot be created in a folder, in the words of pipeline.photo_io.failures.os_reason.
WRITE_ERROR_REASONS = {
    errno.EACCES: N_("permission denied"),
    errno.EPERM: N_("permission denied"),
    errno.EROFS: N_("the disk is read-only"),
    errno.ENOSPC: N_("no space left on the disk"),
}
# Pixel limit of the fallback probe; pipeline.photo_io.probe applies the configured one.
FALLBACK_MAX_MEGAPIXELS = 200


def apply_defaults(values: dict, defaults: DefaultStyles) -> dict:
    """Fill the fields a request left empty from the configured default styles."""
    filled = dict(values)
    for name in ("retouch", "makeup", "output_format"):
        if not filled.get(name) and getattr(defaults, name):
            filled[name] = getattr(defaults, name)
    for name in ("backdrops", "lights", "crops"):
        if not filled.get(name) and getattr(defaults, name):
            filled[name] = list(getattr(defaults, name))
    return filled


# The command line's names of the options `check_options` checks; the API names them by field.
CLI_OPTION_NAMES = {
    "retouch": "--retouch", "makeup": "--makeup", "backdrop": "--backdrop", "light": "--light", "crop": "--crop",
    "output_format": "--format", "bit_depth": "--bit-depth", "top": "--top", "jpeg_quality": "--jpeg-quality",
}


def check_options(request: JobRequest, option_names: dict[str, str] | None = None, given_only: bool = False) -> None:
    """Raise `invalid_option` for a preset, style, format or number that the pipeline does not offer.

    Errors name an option by its API field, or as `option_names` maps it. With `given_only`, fields left
    unset (empty, or 0 for the numbers) pass: the daemon fills them from its settings.
    """
    names = option_names or {}

    def check(option: str, value, allowed) -> None:
        if given_only and value in ("", 0):
            return
        _check_choice(names.get(option, option), value, allowed)

    # 1. Presets and style names, from the style registry when it is installed.
    check("retouch", request.retouch, _style_names("retouch"))
    check("makeup", request.makeup, _style_names("makeup"))
    for option, values, kind in (("backdrop", request.backdrops, "backdrop"), ("light", request.lights, "light"),
                                 ("crop", request.crops, "crop")):
        if not values and not given_only:
            raise HeadshotError("invalid_option", None, f"no {option} given", option=names.get(option, option), value='""',
                                allowed=", ".join(_style_names(kind) or ("…",)))
        for name in values:
            if kind == "backdrop":
                _check_backdrop(name, names.get(option, option))
            elif _style_names(kind) is not None:
                check(option, name, _style_names(kind))

    # 2. Output settings and numbers.
    check("output_format", request.output_format, OUTPUT_FORMATS)
    _check_choice(names.get("bit_depth", "bit_depth"), request.bit_depth, (0, 8, 16))
    _check_choice("language", request.language, ("", "en", "nl"))
    top, quality = request.top, request.jpeg_quality
    if not (given_only and top == 0) and (not isinstance(top, int) or top < 1):
        raise HeadshotError("invalid_option", None, f"top={top!r}", option=names.get("top", "top"), value=top,
                            allowed="≥ 1")
    if not (given_only and quality == 0) and (not isinstance(quality, int) or not 1 <= quality <= 100):
        raise HeadshotError("invalid_option", None, f"jpeg_quality={quality!r}",
                            option=names.get("jpeg_quality", "jpeg_quality"), value=quality, allowed="1–100")


def check_frames(frames: list[str]) -> None:
    """Raise for a frame that is missing or not a regular file, and when no frame is a usable image.

    As with `headshot process`, a frame that is there but cannot be read (empty, damaged, not a photo) does not
    stop the others: the job reports it as skipped. When no frame is usable, the error raised is the first frame's,
    with the other frames' errors in its params under `frame_errors`.
    """
    if not frames:
        raise HeadshotError("no_frames", None, "the request lists no frames")
    unusable = []
    for frame in frames:
        check_frame_path(frame)
        try:
            _photo_probe()(frame)
        except HeadshotError as error:
            unusable.append(error)
    if len(unusable) == len(frames):
        # The first frame's error becomes the job's. The others go with it, so a client can show every frame's problem.
        unusable[0].params["frame_errors"] = unusable[1:]
        raise unusable[0]


def check_frame(frame: str) -> None:
    """Raise for a frame that is missing, not a regular file, unreadable or not a usable image."""
    check_frame_path(frame)
    _photo_probe()(frame)


def check_frame_path(frame: str) -> None:
    """Raise for a frame path that is not absolute, missing or not a regular file."""
    # The daemon's working folder means nothing to a client, so paths are absolute.
    if not os.path.isabs(frame):
        raise HeadshotError("path_not_absolute", frame, "frame paths must be absolute")
    try:
        mode = os.stat(frame).st_mode
    except FileNotFoundError:
        raise HeadshotError("file_not_found", frame, "frame does not exist") from None
    except OSError as error:
        raise HeadshotError("file_unreadable", frame, repr(error), reason=error.strerror or str(error)) from None
    if not stat.S_ISREG(mode):
        raise HeadshotError("not_a_file", frame, "frame is not a regular file")


def check_output_dir(output_dir: str, language: str | None = None) -> None:
    """Raise for an output folder that is not absolute, is a file, or cannot be written or created.

    The reason is worded in `language`. A missing folder is checked through the nearest folder above it that exists,
    because the job creates it there.
    """
    if not output_dir:
        return
    if not os.path.isabs(output_dir):
        raise HeadshotError("path_not_absolute", output_dir, "output_dir must be absolute")
    _ = gettext_for(language)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise HeadshotError("write_failed", output_dir, "output_dir exists and is not a folder",
                            reason=_(N_("it is a file, not a folder")))
    existing = Path(output_dir)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HeadshotError("write_failed", output_dir, f"{existing} is not a folder",
                            reason=_(N_("a part of the path is a file, not a folder")))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = _(WRITE_ERROR_REASONS[error.errno]) if error.errno in WRITE_ERROR_REASONS else error.strerror or str(error)
        raise HeadshotError("write_failed", output_dir, f"cannot create a file in {existing}: {error!r}", reason=reason) from None


def _photo_probe():
    try:
        module = importlib.import_module("pipeline.photo_io")
    except ModuleNotFoundError as error:
        if error.name != "pipeline.photo_io":
            raise
        return _fallback_probe
    return module.probe


def _fallback_probe(frame: str) -> None:
    """Read only the image header with Pillow: empty, unknown and oversized files are rejected."""
    from PIL import Image, UnidentifiedImageError

    # NOTE: used only where pipeline.photo_io is absent; HEIC and some TIFF variants are then rejected.
    if os.path.getsize(frame) == 0:
        raise HeadshotError("file_empty", frame, "0 bytes")
    try:
        with Image.open(frame) as image:
            width, height = image.size
    except UnidentifiedImageError as error:
        raise HeadshotError("not_an_image", frame, str(error)) from None
    except Image.DecompressionBombError as error:
        raise HeadshotError("image_too_large", frame, str(error), width="?", height="?",
                            limit=FALLBACK_MAX_MEGAPIXELS) from None
    except OSError as error:
        raise HeadshotError("file_unreadable", frame, repr(error), reason=error.strerror or str(error)) from None
    if width < 1 or height < 1:
        raise HeadshotError("image_empty", frame, f"{width}x{height}", width=width, height=height)
    if width * height > FALLBACK_MAX_MEGAPIXELS * 1_000_000:
        raise HeadshotError("image_too_large", frame, f"{width}x{height}", width=width, height=height,
                            limit=FALLBACK_MAX_MEGAPIXELS)


def _style_names(kind: str) -> tuple[str, ...] | None:
    """Return the registry's names of a kind, the built-in fallback, or None where neither lists the kind."""
    try:
        styles = importlib.import_module("pipeline.styles")
    except ModuleNotFoundError as error:
        if error.name != "pipeline.styles":
            raise
        return FALLBACK_STYLE_NAMES.get(kind)
    return tuple(styles.style_names(kind))


def _check_choice(option: str, value, allowed) -> None:
    allowed = tuple(allowed or ())
    if value not in allowed:
        displayed_value = value if value != "" else '""'
        raise HeadshotError("invalid_option", None, f"{option}={value!r}", option=option, value=displayed_value,
                            allowed=", ".join(str(name) for name in allowed), suggestions=similar_names(value, allowed))


def _check_backdrop(name: str, option: str = "backdrop") -> None:
    """Accept a listed backdrop, a `color:#RRGGBB`, or an `image:PATH` whose file exists."""
    names = [listed for listed in (_style_names("backdrop") or ()) if listed not in ("color:#RRGGBB", "image:PATH")]
    if name in names or HEX_COLOR.match(name):
        return
    if name.startswith("image:"):
        check_frame(name[len("image:"):])
        return
    raise HeadshotError("invalid_option", None, f"backdrop={name!r}", option=option, value=name,
                        allowed=", ".join([*names, "color:#RRGGBB", "image:PATH"]), suggestions=similar_names(name, names))


def normalized_request(values: dict, defaults: DefaultStyles) -> JobRequest:
    """Return the request with defaults applied, its options checked; the frames are checked separately."""
    request = JobRequest.from_dict({"frames": [], **apply_defaults(values, defaults)})
    request.frames = [str(Path(frame)) for frame in request.frames]
    check_options(request)
    return request
