"""`headshot doctor`: check the settings, the daemon, the models, the device, the hot folders and the free disk space.

Each check returns one `CheckResult` with a translated line and what to do.
A "problem" fails a required check; a "warning" concerns an optional part.
An "info" line states a fact, such as the GIMP plug-in not being part of this version.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.i18n import N_, _, format_decimal

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"
INFO = "info"  # a fact about an area with nothing to check

STATUS_WORDS = {OK: N_("OK"), WARNING: N_("WARNING"), PROBLEM: N_("PROBLEM"), INFO: N_("INFO")}
AREA_TITLES = {
    "config": N_("Settings"),
    "daemon": N_("Daemon"),
    "models": N_("Models"),
    "device": N_("Device"),
    "gimp": N_("GIMP"),
    "hot_folders": N_("Hot folder"),
    "disk": N_("Disk space"),
}

# The model files mediapipe 0.10.21 ships in its wheel that the pipeline loads: full-range face
# detection, the refined face mesh, and the general selfie segmentation.
MEDIAPIPE_MODEL_FILES = (
    "modules/face_detection/face_detection_full_range_sparse.tflite",
    "modules/face_landmark/face_landmark_with_attention.tflite",
    "modules/selfie_segmentation/selfie_segmentation.tflite",
)
# A 24-megapixel frame written as a 16-bit TIFF is about 144 MB, so one job with a few variants
# can take a gigabyte. These limits are estimates, not measurements.
DISK_PROBLEM_BYTES = 1 * 1024**3
DISK_WARNING_BYTES = 5 * 1024**3


@dataclass
class CheckResult:
    """The outcome of one check: the area, ok / warning / problem, a line for a person, what to do and an error code."""

    area: str
    status: str
    message: str
    advice: str = ""
    code: str = ""  # the stable error code, where the problem is a `HeadshotError`


# --- The checks ---------------------------------------------------------------------------------------------


def check_config(path: Path | None = None):
    """Load the daemon's settings file; return the check's result and the settings, or None when they are invalid."""
    from pipeline.errors import HeadshotError

    from .config import default_folders, load_config

    try:
        config = load_config(path)
    except HeadshotError as error:
        return CheckResult("config", PROBLEM, error.user_message(), code=error.code), None
    config_file = Path(path) if path else default_folders().config_file
    if not config_file.is_file():
        return CheckResult("config", OK, _("{file} does not exist, so the defaults apply.").format(file=config_file)), config
    return CheckResult("config", OK, _("{file} is valid.").format(file=config_file)), config


def check_daemon(folders=None) -> CheckResult:
    """Check that the daemon runs and its health check returns SERVING; a stopped daemon is only a warning."""
    from .client import DaemonClient, DaemonError, process_exists, read_discovery

    discovery = read_discovery(folders)
    if discovery is None or not process_exists(discovery.pid):
        return CheckResult("daemon", WARNING, _("not running."),
                           _("Start it with: headshot daemon (headshot submit starts it by itself)."))
    try:
        with DaemonClient(discovery.address, discovery.token) as client:
            health = client.health(timeout=3.0)
            info = client.info(timeout=3.0)
    except DaemonError as error:
        return CheckResult("daemon", PROBLEM,
                           _("process {pid} does not answer on {address} ({reason}).").format(
                               pid=discovery.pid, address=discovery.address, reason=error.detail or error.code),
                           _("Stop process {pid} and start the daemon again: headshot daemon").format(pid=discovery.pid))
    if health != "SERVING":
        return CheckResult("daemon", PROBLEM,
                           _("process {pid} answers, but its health is {health}.").format(pid=discovery.pid, health=health),
                           _("Wait a moment; if it stays so, restart the daemon. The log: {log}").format(log=info.log_path))
    return CheckResult("daemon", OK, _("running (version {version}, process {pid}, {address}), health SERVING.").format(
        version=info.version, pid=info.pid, address=info.address))


def check_models() -> CheckResult:
    """Check that mediapipe imports, its bundled model files are present, and face detection runs."""

    # 1. The package and its model files, before the slow import.
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return CheckResult("models", PROBLEM, _("mediapipe is not installed."),
                           _("Install the dependencies again: make install"))
    package_dir = Path(list(spec.submodule_search_locations)[0])
    missing = [name for name in MEDIAPIPE_MODEL_FILES if not (package_dir / name).is_file()]
    if missing:
        return CheckResult("models", PROBLEM,
                           _("mediapipe lacks its model files: {files}.").format(files=", ".join(missing)),
                           _("Reinstall mediapipe 0.10.21: make install"))

    # 2. Face detection on a small generated image: no face is expected, only that the model runs.
    try:
        import numpy as np

        from pipeline.faces import FaceFinder

        rows = np.linspace(60, 200, 128, dtype=np.float32)
        image = np.repeat(np.repeat(rows[:, None, None], 128, axis=1), 3, axis=2).astype(np.uint8)
        FaceFinder().find(image, with_mesh=True)
        import mediapipe
    except ImportError as error:
        advice = _("Install the system libraries OpenCV needs: make system-packages") if "libGL" in str(error) \
            else _("Install the dependencies again: make install")
        return CheckResult("models", PROBLEM, _("the face models cannot be loaded ({reason}).").format(reason=error), advice)
    except Exception as error:
        return CheckResult("models", PROBLEM, _("face detection failed ({reason}).").format(reason=error),
                           _("Install the dependencies again: make install"))
    return CheckResult("models", OK, _("mediapipe {version}: face detection and face mesh run.").format(
        version=getattr(mediapipe, "__version__", "?")))


def check_device() -> CheckResult:
    """Check that torch imports and computes on the device the pipeline picks; report CUDA and MPS."""
    try:
        import torch

        from pipeline.device import current_device

        device = current_device()
        torch.ones(16, device=device).sum().item()
    except ImportError as error:
        return CheckResult("device", PROBLEM, _("torch cannot be loaded ({reason}).").format(reason=error),
                           _("Install the dependencies again: make install"))
    except Exception as error:
        advice = _("Unset HEADSHOT_DEVICE, or set it to cpu.") if os.environ.get("HEADSHOT_DEVICE") \
            else _("Update the graphics driver, or set HEADSHOT_DEVICE=cpu.")
        return CheckResult("device", PROBLEM, _("computing on the device failed ({reason}).").format(reason=error), advice)

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else _("not available")
    mps_backend = getattr(torch.backends, "mps", None)
    mps = _("available") if mps_backend is not None and mps_backend.is_available() else _("not available")
    message = _("torch {version} computes on {device}; CUDA: {cuda}; MPS: {mps}.").format(
        version=torch.__version__, device=device, cuda=cuda, mps=mps)
    if device.type == "cpu":
        return CheckResult("device", OK, message, _("Jobs run on the CPU, which is slower than a GPU but gives the same results."))
    return CheckResult("device", OK, message)


def check_gimp() -> CheckResult:
    """Say that the GIMP plug-in is not part of this version, so that no one installs GIMP for it."""
    return CheckResult("gimp", INFO, _("the GIMP plug-in is planned but not part of this version, so there is nothing to install."))


def check_hot_folders(config) -> list[CheckResult]:
    """Check that each hot folder's inbox and output exist and are writable, or can be created.

    A configured folder that fails is a problem; the default Pictures folders only warn.
    """
    from plugins.lightroom_bridge.bridge import folders_from_config

    severity = PROBLEM if config.hot_folders else WARNING
    results = []
    for watched in folders_from_config(config):
        failures = [reason for reason in (_folder_problem(watched.inbox), _folder_problem(watched.output)) if reason]
        if failures:
            results.append(CheckResult("hot_folders", severity, " ".join(failures),
                                       _("Create the folders and make them writable, or change hot_folders in {file}.").format(
                                           file=config.folders.config_file)))
            continue
        pending = [str(path) for path in (watched.inbox, watched.output) if not path.exists()]
        message = _("inbox {inbox} and output {output} are writable.").format(inbox=watched.inbox, output=watched.output)
        if pending:
            message += " " + _("The daemon creates {folders} when it starts.").format(folders=", ".join(pending))
        results.append(CheckResult("hot_folders", OK, message))
    return results


def _folder_problem(folder: Path) -> str:
    """Return why `folder` cannot be used (translated), or "" when it is writable or can be created."""
    if folder.exists() and not folder.is_dir():
        return _("{folder} is a file, not a folder.").format(folder=folder)
    existing = _nearest_existing(folder)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        if existing == folder:
            return _("{folder} is not writable ({reason}).").format(folder=folder, reason=error.strerror or error)
        return _("{folder} cannot be created in {parent} ({reason}).").format(
            folder=folder, parent=existing, reason=error.strerror or error)
    return ""


def check_disk(config) -> CheckResult:
    """Check the free space where the daemon keeps its jobs."""
    folder = _nearest_existing(config.data_path)
    free = shutil.disk_usage(folder).free
    message = _("{free} GB free in {folder}.").format(free=format_decimal(free / 1e9, 1), folder=config.data_path)
    if free < DISK_PROBLEM_BYTES:
        return CheckResult("disk", PROBLEM, message, _("Free at least {size} GB, or set data_dir in {file} to another disk.").format(
            size=DISK_WARNING_BYTES // 1024**3, file=config.folders.config_file))
    if free < DISK_WARNING_BYTES:
        return CheckResult("disk", WARNING, message, _("Large jobs may not fit; free some space soon."))
    return CheckResult("disk", OK, message)


def _nearest_existing(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# --- Running them -------------------------------------------------------------------------------------------


def run_checks(config_path: Path | None = None) -> list[CheckResult]:
    """Run every check in a fixed order; a check that raises becomes a problem line instead of a crash.

    Invalid settings are the first problem; the hot-folder and disk checks depend on them, so they are left out then.
    """
    from .config import default_folders

    config_result, config = check_config(config_path)
    folders = config.folders if config is not None else default_folders()
    checks = [
        ("daemon", lambda: [check_daemon(folders)]),
        ("models", lambda: [check_models()]),
        ("device", lambda: [check_device()]),
        ("gimp", lambda: [check_gimp()]),
    ]
    if config is not None:
        checks += [
            ("hot_folders", lambda: check_hot_folders(config)),
            ("disk", lambda: [check_disk(config)]),
        ]
    results = [config_result]
    for area, check in checks:
        try:
            results.extend(check())
        except Exception as error:
            results.append(CheckResult(area, PROBLEM, _("the check itself failed ({reason}).").format(reason=repr(error)),
                                       _("Report this with the output of headshot doctor.")))
    return results


def format_result(result: CheckResult) -> list[str]:
    """Return the result as lines: `OK       Device: ...`, then an indented line with what to do."""
    from pipeline.errors import with_code

    width = max(len(_(word)) for word in STATUS_WORDS.values())
    status = _(STATUS_WORDS[result.status]).ljust(width)
    message = with_code(result.code, result.message) if result.code else result.message
    lines = [f"{status}  {_(AREA_TITLES[result.area])}: {message}"]
    if result.advice:
        lines.append(f"{' ' * width}  → {result.advice}")
    return lines


def run_doctor_command(arguments: argparse.Namespace) -> int:
    """Print each check; exit 0 when no required check found a problem, else 1."""
    results = run_checks()
    if getattr(arguments, "json", False):
        print(json.dumps([asdict(result) for result in results], ensure_ascii=False, indent=2))
    else:
        for result in results:
            print("\n".join(format_result(result)))
        problems = sum(result.status == PROBLEM for result in results)
        print()
        print(_("All required checks passed.") if not problems else
              _("Required checks that found a problem: {count}.").format(count=problems))
    return 0 if all(result.status != PROBLEM for result in results) else 1
