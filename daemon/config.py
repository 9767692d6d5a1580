"""The daemon's folders and settings: a TOML file in the user's config folder, defaults for everything else.

`HEADSHOT_HOME`, when set, puts the config, data, runtime and log folders under
one folder, so tests and portable installs never touch the user's own folders.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import HeadshotError

APP_NAME = "headshot-studio"
CONFIG_FILE_NAME = "config.toml"
TRANSPORTS = ("unix", "tcp")
LOOPBACK_HOST = "127.0.0.1"


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

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else self.folders.data

    def to_dict(self) -> dict:
        """Return the effective settings, folders included, as plain TOML-ready values."""
        values = dataclasses.asdict(self)
        values["data_dir"] = str(self.data_path)
        values["folders"] = {name: str(path) for name, path in dataclasses.asdict(self.folders).items()}
        values["folders"]["config_file"] = str(self.folders.config_file)
        values["folders"]["log_file"] = str(self.folders.log_file)
        return values


def load_config(path: Path | None = None, folders: Folders | None = None) -> Config:
    """Read the TOML file (default: config.toml in the config folder); a missing default file gives the defaults."""

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
    config = Config(folders=folders)
    for key, value in values.items():
        if key == "hot_folders":
            config.hot_folders = [_hot_folder(entry, config_path) for entry in _expect(value, list, key, config_path)]
        elif key == "default_styles":
            config.default_styles = _default_styles(_expect(value, dict, key, config_path), config_path)
        elif key in Config.__dataclass_fields__ and key != "folders":
            default = getattr(config, key)
            expected = (int, float) if isinstance(default, float) else type(default)
            setattr(config, key, _expect(value, expected, key, config_path))
        else:
            raise HeadshotError("config_invalid", config_path, f"unknown key {key!r}", reason=f"unknown key {key!r}")

    # 3. Check the values that have a fixed range.
    _check(config.transport in TRANSPORTS, "transport", config.transport, " / ".join(TRANSPORTS), config_path)
    _check(0 <= config.port <= 65535, "port", config.port, "0..65535", config_path)
    _check(config.retention_days > 0, "retention_days", config.retention_days, "> 0", config_path)
    _check(config.max_queue >= 1, "max_queue", config.max_queue, ">= 1", config_path)
    _check(config.max_attempts >= 1, "max_attempts", config.max_attempts, ">= 1", config_path)
    _check(config.rpc_threads >= 4, "rpc_threads", config.rpc_threads, ">= 4", config_path)
    return config


def _expect(value, expected, key: str, config_path: Path):
    if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
        reason = f"{key} has the wrong type ({type(value).__name__})"
        raise HeadshotError("config_invalid", config_path, reason, reason=reason)
    return value


def _check(condition: bool, key: str, value, allowed: str, config_path: Path) -> None:
    if not condition:
        raise HeadshotError("invalid_option", config_path, f"{key}={value!r}", option=key, value=value, allowed=allowed)


def _hot_folder(entry, config_path: Path) -> HotFolder:
    entry = _expect(entry, dict, "hot_folders", config_path)
    try:
        return HotFolder(inbox=str(entry["inbox"]), output=str(entry["output"]), polling=bool(entry.get("polling", False)))
    except KeyError as error:
        reason = f"a hot folder lacks {error.args[0]!r}"
        raise HeadshotError("config_invalid", config_path, reason, reason=reason) from error


def _default_styles(values: dict, config_path: Path) -> DefaultStyles:
    styles = DefaultStyles()
    for key, value in values.items():
        if key not in DefaultStyles.__dataclass_fields__:
            reason = f"unknown key default_styles.{key}"
            raise HeadshotError("config_invalid", config_path, reason, reason=reason)
        setattr(styles, key, _expect(value, type(getattr(styles, key)), f"default_styles.{key}", config_path))
    return styles
