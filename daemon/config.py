"""The daemon's folders and settings: a TOML file in the user's config folder, defaults for everything else.

`HEADSHOT_HOME`, when set, puts the config, data, runtime and log folders under
one folder, so tests and portable installs never touch the user's own folders.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import HeadshotError, register_messages, similar_names
from pipeline.i18n import N_, _

APP_NAME = "headshot-studio"
CONFIG_FILE_NAME = "config.toml"
TRANSPORTS = ("unix", "tcp")
LOOPBACK_HOST = "127.0.0.1"
HEX_COLOR = re.compile(r"^color:#[0-9a-fA-F]{6}$")  # a brand-colour backdrop in sRGB

# Registered here rather than in daemon.errors, because the config is loaded before anything imports gRPC.
register_messages({
    "config_invalid": N_("The settings file {file} is invalid: {reason}. Correct it, or remove it to use the defaults."),
})


@dataclass(frozen=True)
class Folders:
    config: Path
    data: Path
    runtime: Path
    logs: Path

    @property
    def config_file(self) -> Path:
        return self.config / CONFIG_FILE_NAME

    @property
    def discovery_file(self) -> Path:
        """The JSON file that tells clients where the daemon listens."""
        return self.runtime / "daemon.json"

    @property
    def lock_file(self) -> Path:
        return self.runtime / "daemon.lock"

    @property
    def socket_path(self) -> Path:
        return self.runtime / "daemon.sock"

    @property
    def log_file(self) -> Path:
        return self.logs / "daemon.log"


def default_folders() -> Folders:
    """Return the user's folders, or those under HEADSHOT_HOME when it is set."""
    home = os.environ.get("HEADSHOT_HOME", "").strip()
    if home:
        root = Path(home).expanduser().resolve()
        return Folders(config=root / "config", data=root / "data", runtime=root / "runtime", logs=root / "logs")

    import platformdirs
    import warnings

    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR platformdirs warns and falls back to a private folder under /tmp.
        warnings.simplefilter("ignore")
        runtime = Path(platformdirs.user_runtime_dir(APP_NAME))
    return Folders(
        config=Path(platformdirs.user_config_dir(APP_NAME)),
        data=Path(platformdirs.user_data_dir(APP_NAME)),
        runtime=runtime,
        logs=Path(platformdirs.user_log_dir(APP_NAME)),
    )


@dataclass
class HotFolder:
    inbox: str
    output: str
    polling: bool = False  # poll the folder instead of relying on file-system events (network shares)


@dataclass
class DefaultStyles:
    """What a request gets when it leaves a field empty."""

    retouch: str = ""
    makeup: str = ""
    backdrops: list[str] = field(default_factory=list)
    lights: list[str] = field(default_factory=list)
    crops: list[str] = field(default_factory=list)
    output_format: str = ""


@dataclass
class Config:
    """Every setting of the daemon; `load_config` fills it from the TOML file."""

    transport: str = "tcp" if sys.platform == "win32" else "unix"
    host: str = LOOPBACK_HOST  # tcp only; any other interface always requires the token
    port: int = 0  # tcp only; 0 picks a free port
    data_dir: str = ""  # empty: the user's data folder
    retention_days: float = 14.0
    max_queue: int = 100  # pending jobs; a full queue answers RESOURCE_EXHAUSTED
    max_attempts: int = 3  # runs of one job that may end with the daemon killed before it is failed
    rpc_threads: int = 64  # each WatchJob stream holds one thread while it waits
    max_frame_bytes: int = 2 * 1024**3  # per uploaded frame
    hot_folders: list[HotFolder] = field(default_factory=list)
    default_styles: DefaultStyles = field(default_factory=DefaultStyles)
    folders: Folders = field(default_factory=default_folders)
    source_file: Path | None = None  # the file `load_config` read or looked for; not a setting


    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else self.folders.data

    def to_dict(self) -> dict:
        """Return the effective settings, folders included, as plain TOML-ready values.

        Settings left out of the file show what the daemon uses in their place: the default hot folder under
        Pictures, and the pipeline's own default styles.
        """
        values = dataclasses.asdict(self)
        del values["source_file"]
        values["data_dir"] = str(self.data_path)
        values["hot_folders"] = [dataclasses.asdict(entry) for entry in self.effective_hot_folders()]
        values["default_styles"] = dataclasses.asdict(self.effective_default_styles())
        values["folders"] = {name: str(path) for name, path in dataclasses.asdict(self.folders).items()}
        values["folders"]["config_file"] = str(Path(self.source_file or self.folders.config_file).absolute())
        values["folders"]["log_file"] = str(self.folders.log_file)
        return values

    def effective_hot_folders(self) -> list[HotFolder]:
        """Return the configured hot folders, or the one the daemon watches when none is configured."""
        if self.hot_folders:
            return list(self.hot_folders)
        from plugins.lightroom_bridge.bridge import default_inbox, default_output

        return [HotFolder(inbox=str(default_inbox()), output=str(default_output()))]

    def effective_default_styles(self) -> DefaultStyles:
        """Return the default styles, each one the file leaves out taken from the pipeline's request defaults."""
        from pipeline.request import JobRequest

        pipeline_defaults = JobRequest(frames=[])
        effective = DefaultStyles()
        for name in DefaultStyles.__dataclass_fields__:
            configured = getattr(self.default_styles, name)
            setattr(effective, name, configured or getattr(pipeline_defaults, name))
        return effective


def load_config(path: Path | None = None, folders: Folders | None = None) -> Config:
    """Read the TOML file (default: config.toml in the config folder); a missing default file gives the defaults.

    Raises `config_invalid`, naming the file and the key, for a value the daemon could not use, so the daemon,
    the hot folder and doctor stop at start-up instead of failing every job later.
    """

    # 1. Find and read the file.
    folders = folders or default_folders()
    config_path = Path(path) if path else folders.config_file
    if path is not None and not config_path.is_file():
        raise HeadshotError("file_not_found", config_path, "config file given on the command line does not exist")
    values: dict = {}
    if config_path.is_file():
        try:
            values = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise HeadshotError("config_invalid", config_path, str(error), reason=str(error)) from error

    # 2. Take the known keys, checking types as we go.
    config = Config(folders=folders, source_file=config_path)
    known_keys = [key for key in Config.__dataclass_fields__ if key not in ("folders", "source_file")]
    for key, value in values.items():
        if key == "hot_folders":
            config.hot_folders = [_hot_folder(entry, config_path) for entry in _expect(value, list, key, config_path)]
        elif key == "default_styles":
            config.default_styles = _default_styles(_expect(value, dict, key, config_path), config_path)
        elif key in known_keys:
            default = getattr(config, key)
            expected = (int, float) if isinstance(default, float) else type(default)
            setattr(config, key, _expect(value, expected, key, config_path))
        else:
            _reject(config_path, key, N_("{key} is not a setting"), suggestions=similar_names(key, known_keys))

    # 3. Check the values that have a fixed range.
    _check(config.transport in TRANSPORTS, "transport", config.transport, ", ".join(TRANSPORTS), config_path)
    _check(0 <= config.port <= 65535, "port", config.port, "0–65535", config_path)
    _check(config.retention_days > 0, "retention_days", config.retention_days, "> 0", config_path)
    _check(config.max_queue >= 1, "max_queue", config.max_queue, "≥ 1", config_path)
    _check(config.max_attempts >= 1, "max_attempts", config.max_attempts, "≥ 1", config_path)
    _check(config.rpc_threads >= 4, "rpc_threads", config.rpc_threads, "≥ 4", config_path)
    _check(config.max_frame_bytes >= 1, "max_frame_bytes", config.max_frame_bytes, "≥ 1", config_path)
    _check_default_styles(config.default_styles, config_path)
    return config


def _reject(config_path: Path, key: str, reason: str, suggestions: list[str] | None = None, **fields) -> None:
    """Raise `config_invalid` with `reason` (a message id) translated into the user's language."""
    text = _(reason).format(key=key, **fields)
    raise HeadshotError("config_invalid", config_path, f"{key}: {text}", reason=text, suggestions=suggestions or [])


def _expect(value, expected, key: str, config_path: Path):
    if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
        expected_types = expected if isinstance(expected, tuple) else (expected,)
        _reject(config_path, key, N_("{key} has the type {given}, but must have the type {expected}"), given=_TOML_TYPES.get(type(value), type(value).__name__),
                expected=" / ".join(_TOML_TYPES.get(kind, kind.__name__) for kind in expected_types))
    return value


# TOML's names for the Python types a setting can have.
_TOML_TYPES = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}


def _check(condition: bool, key: str, value, allowed: str, config_path: Path, suggestions: list[str] | None = None) -> None:
    if not condition:
        displayed = f'"{value}"' if isinstance(value, str) else value
        _reject(config_path, key, N_("{key} is {value}, which is not allowed (allowed: {allowed})"),
                suggestions=suggestions, value=displayed, allowed=allowed)


def _hot_folder(entry, config_path: Path) -> HotFolder:
    entry = _expect(entry, dict, "hot_folders", config_path)
    for key in entry:
        if key not in HotFolder.__dataclass_fields__:
            _reject(config_path, f"hot_folders.{key}", N_("{key} is not a setting"),
                    suggestions=similar_names(key, HotFolder.__dataclass_fields__))
    for key in ("inbox", "output"):
        if key not in entry:
            _reject(config_path, f"hot_folders.{key}", N_("{key} is missing"))
        if not _expect(entry[key], str, f"hot_folders.{key}", config_path).strip():
            _reject(config_path, f"hot_folders.{key}", N_("{key} is empty"))
    polling = _expect(entry.get("polling", False), bool, "hot_folders.polling", config_path)
    return HotFolder(inbox=entry["inbox"], output=entry["output"], polling=polling)


def _default_styles(values: dict, config_path: Path) -> DefaultStyles:
    styles = DefaultStyles()
    for key, value in values.items():
        if key not in DefaultStyles.__dataclass_fields__:
            _reject(config_path, f"default_styles.{key}", N_("{key} is not a setting"),
                    suggestions=similar_names(key, DefaultStyles.__dataclass_fields__))
        setattr(styles, key, _expect(value, type(getattr(styles, key)), f"default_styles.{key}", config_path))
    return styles


def _check_default_styles(styles: DefaultStyles, config_path: Path) -> None:
    """Check each default style name against the style registry, as the daemon checks a request's names.

    The registry imports the pipeline (torch among it), so it is read only when the file sets a default style.
    """
    from pipeline.request import OUTPUT_FORMATS

    def check_names(key: str, names: list[str], allowed: list[str]) -> None:
        for name in names:
            _check(isinstance(name, str) and name in allowed, f"default_styles.{key}", name, ", ".join(allowed), config_path,
                   suggestions=similar_names(name, allowed))

    if styles.output_format:
        check_names("output_format", [styles.output_format], list(OUTPUT_FORMATS))
    if not any((styles.retouch, styles.makeup, styles.backdrops, styles.lights, styles.crops)):
        return
    from pipeline.styles import BACKDROP_PATTERNS, style_names

    if styles.retouch:
        check_names("retouch", [styles.retouch], style_names("retouch"))
    if styles.makeup:
        check_names("makeup", [styles.makeup], style_names("makeup"))
    check_names("lights", styles.lights, style_names("light"))
    check_names("crops", styles.crops, style_names("crop"))
    backdrops = [name for name in style_names("backdrop") if name not in BACKDROP_PATTERNS]
    for name in styles.backdrops:
        if isinstance(name, str) and HEX_COLOR.match(name):
            continue
        if isinstance(name, str) and name.startswith("image:"):
            if not Path(name[len("image:"):]).expanduser().is_file():
                _reject(config_path, "default_styles.backdrops", N_("{key} names the backdrop picture {path}, which does not exist"),
                        path=name[len("image:"):])
            continue
        _check(name in backdrops, "default_styles.backdrops", name, ", ".join([*backdrops, *BACKDROP_PATTERNS]), config_path,
               suggestions=similar_names(name, backdrops))
