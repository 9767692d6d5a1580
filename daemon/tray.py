"""The tray icon: the daemon's state at a glance (idle, busy with a count, error) and a menu for the hot folders.

`TrayModel` contains the state, menu and icon drawing and needs no display, so it
is tested as plain code. `run_tray` binds it to pystray. Where there is no
display, the daemon runs without the icon and logs that once.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.i18n import N_, _

log = logging.getLogger(__name__)

IDLE = "idle"
BUSY = "busy"
ERROR = "error"
STATE_COLORS = {IDLE: (84, 98, 110), BUSY: (31, 111, 209), ERROR: (198, 40, 40)}
ICON_SIZE = 64
RECENT_JOB_COUNT = 5
REFRESH_INTERVAL_S = 2.0
# Windows cuts tray tooltips at 127 characters.
MAX_TOOLTIP_LENGTH = 127

# The badge's text height as a share of the icon, for one, two and three characters.
BADGE_FONT_SCALE = {1: 0.36, 2: 0.28, 3: 0.2}
ORIGIN_WORDS = {"cli": N_("command line"), "gimp": N_("GIMP"), "hotfolder": N_("hot folder")}


@dataclass(frozen=True)
class RecentJob:
    job_id: str
    state: str  # "pending", "in_progress", "completed", "failed", "canceled"
    origin: str
    output_dir: str = ""


@dataclass(frozen=True)
class DaemonState:
    """The daemon as the tray shows it; `running` is False when it stopped or could not be read."""

    running: bool
    queue_length: int = 0
    running_job_id: str | None = None
    recent_jobs: tuple[RecentJob, ...] = ()  # newest first
    problem: str = ""  # why the state could not be read, for the log and the tooltip


@dataclass(frozen=True)
class MenuEntry:
    """One menu line, independent of pystray; `submenu` entries open to the side."""

    text: str
    action: Callable[[], None] | None = None
    enabled: bool = True
    default: bool = False  # the action of a double click on the icon
    submenu: tuple["MenuEntry", ...] = field(default_factory=tuple)
    separator: bool = False


SEPARATOR = MenuEntry("-", separator=True)


class DaemonStateProvider:
    """Read a running `daemon.server.Daemon`: its snapshot, plus the last jobs through its own API."""

    def __init__(self, daemon, job_count: int = RECENT_JOB_COUNT):
        self.daemon = daemon
        self.job_count = job_count
        self._client = None

    def __call__(self) -> DaemonState:
        from .client import DaemonClient, DaemonError
        from .convert import STATE_FROM_PROTO

        snapshot = self.daemon.snapshot()
        if snapshot.state != "running":
            self.close()
            return DaemonState(running=False, problem=f"daemon {snapshot.state}")
        try:
            if self._client is None:
                self._client = DaemonClient(self.daemon.address, self.daemon.token)
            jobs = self._client.jobs(limit=self.job_count)
        except DaemonError as error:
            self.close()
            return DaemonState(running=True, queue_length=snapshot.queue_length, running_job_id=snapshot.running_job_id,
                               problem=error.message)
        recent = tuple(RecentJob(job.job_id, STATE_FROM_PROTO.get(job.state, ""), job.origin, job.request.output_dir)
                       for job in jobs)
        return DaemonState(running=True, queue_length=snapshot.queue_length, running_job_id=snapshot.running_job_id,
                           recent_jobs=recent)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class TrayModel:
    """The tray's state, tooltip, menu and icon, computed from a daemon-state provider and the hot-folder bridge.

    `bridge` is a HotFolderBridge, a callable returning one (it may start later
    than the tray), or None when the hot folders are off.
    """

    def __init__(self, daemon_state: Callable[[], DaemonState], bridge=None, *, output_folder: Path | None = None,
                 log_path: Path | None = None, open_path: Callable[[Path], None] | None = None,
                 on_quit: Callable[[], None] | None = None):
        self.daemon_state = daemon_state
        self._bridge = bridge
        self.output_folder = Path(output_folder) if output_folder else None
        self.log_path = Path(log_path) if log_path else None
        self.open_path = open_path or open_in_file_manager
        self.on_quit = on_quit
        self.daemon = DaemonState(running=False, problem="not read yet")
        self.bridge_status = None
        self._last_shown: tuple | None = None

    @property
    def bridge(self):
        return self._bridge() if callable(self._bridge) and not hasattr(self._bridge, "status") else self._bridge

    # --- State --------------------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the daemon and the bridge again; True when what the icon, tooltip or menu show has changed."""
        try:
            self.daemon = self.daemon_state()
        except Exception as error:
            log.exception("tray: could not read the daemon's state")
            self.daemon = DaemonState(running=False, problem=repr(error))
        bridge = self.bridge
        self.bridge_status = bridge.status() if bridge is not None else None
        displayed = (self.state, self.busy_count, self.tooltip(), self.hot_folders_paused, self.daemon.recent_jobs)
        changed = displayed != self._last_shown
        self._last_shown = displayed
        return changed

    @property
    def hot_folders_paused(self) -> bool:
        return bool(self.bridge_status is not None and self.bridge_status.paused)

    @property
    def busy_count(self) -> int:
        """Jobs queued or running in the daemon, plus hot-folder entries not yet handed to it."""
        waiting = self.bridge_status.waiting if self.bridge_status is not None else 0
        return self.daemon.queue_length + (1 if self.daemon.running_job_id else 0) + waiting

    @property
    def state(self) -> str:
        """ERROR when the daemon is down or the last finished job failed (until a later one completes), else BUSY or IDLE."""
        if not self.daemon.running:
            return ERROR
        if self.busy_count > 0:
            return BUSY
        if self._last_finished_failed():
            return ERROR
        return IDLE

    def _last_finished_failed(self) -> bool:
        for job in self.daemon.recent_jobs:
            if job.state in ("completed", "failed"):
                return job.state == "failed"
        return False

    def tooltip(self) -> str:
        if not self.daemon.running:
            text = _("Headshot Studio: the daemon is not running")
        elif self.state == BUSY:
            text = _("Headshot Studio: busy, {count} jobs").format(count=self.busy_count)
        elif self.state == ERROR:
            text = _("Headshot Studio: the last job failed")
        else:
            text = _("Headshot Studio: idle")
        if self.hot_folders_paused:
            text += "; " + _("hot folders paused")
        return text[:MAX_TOOLTIP_LENGTH]

    # --- Menu ---------------------------------------------------------------------------------------------

    def menu(self) -> list[MenuEntry]:
        entries = [MenuEntry(_("Open output folder"), self.open_output_folder, enabled=self._output_folder() is not None,
                             default=True)]
        if self.bridge is None:
            entries.append(MenuEntry(_("Hot folders are off"), enabled=False))
        elif self.hot_folders_paused:
            entries.append(MenuEntry(_("Resume hot folders"), self.toggle_hot_folders))
        else:
            entries.append(MenuEntry(_("Pause hot folders"), self.toggle_hot_folders))
        entries.append(MenuEntry(_("Recent jobs"), submenu=tuple(self._recent_job_entries())))
        entries.append(MenuEntry(_("Open log"), self.open_log, enabled=self.log_path is not None))
        entries.append(SEPARATOR)
        entries.append(MenuEntry(_("Quit Headshot Studio"), self.quit))
        return entries

    def _recent_job_entries(self) -> list[MenuEntry]:
        from .service import STATE_WORDS

        jobs = self.daemon.recent_jobs[:RECENT_JOB_COUNT]
        if not jobs:
            return [MenuEntry(_("No jobs yet"), enabled=False)]
        entries = []
        for job in jobs:
            origin = ORIGIN_WORDS.get(job.origin.split(":", 1)[0])
            text = f"{job.job_id} — {_(STATE_WORDS.get(job.state, job.state))}"
            if origin:
                text += f" ({_(origin)})"
            folder = Path(job.output_dir) if job.output_dir else None
            action = (lambda folder=folder: self.open_path(folder)) if folder is not None else None
            entries.append(MenuEntry(text, action, enabled=folder is not None and folder.is_dir()))
        return entries

    def _output_folder(self) -> Path | None:
        bridge = self.bridge
        if bridge is not None and getattr(bridge, "folders", None):
            return Path(bridge.folders[0].output)
        return self.output_folder

    def open_output_folder(self) -> None:
        folder = self._output_folder()
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.open_path(folder)

    def open_log(self) -> None:
        if self.log_path is not None:
            self.open_path(self.log_path)

    def toggle_hot_folders(self) -> None:
        bridge = self.bridge
        if bridge is None:
            return
        if bridge.status().paused:
            bridge.resume()
        else:
            bridge.pause()
        self.refresh()

    def quit(self) -> None:
        if self.on_quit is not None:
            self.on_quit()

    # --- Icon ---------------------------------------------------------------------------------------------

    def icon_image(self, size: int = ICON_SIZE):
        return render_icon(self.state, self.busy_count, self.hot_folders_paused, size)


def render_icon(state: str, count: int = 0, paused: bool = False, size: int = ICON_SIZE):
    """Draw the icon: a disc in the state's colour with a head-and-shoulders outline, and a badge.

    The badge shows the job count when busy, "!" on error, and two bars when the
    hot folders are paused and nothing else needs the corner.
    """
    from PIL import Image, ImageChops, ImageDraw, ImageFont

    # 1. Draw at four times the size and scale down, for smooth edges.
    scale = 4
    side = size * scale
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    color = STATE_COLORS[state]
    draw.ellipse((0, 0, side - 1, side - 1), fill=color + (255,))

    # 2. The sitter: a head and the shoulders, cut to the disc.
    sitter = Image.new("L", (side, side), 0)
    sitter_draw = ImageDraw.Draw(sitter)
    sitter_draw.ellipse((side * 0.34, side * 0.18, side * 0.66, side * 0.52), fill=255)
    sitter_draw.ellipse((side * 0.16, side * 0.58, side * 0.84, side * 1.10), fill=255)
    disc = Image.new("L", (side, side), 0)
    ImageDraw.Draw(disc).ellipse((0, 0, side - 1, side - 1), fill=255)
    sitter = ImageChops.darker(sitter, disc)
    image.paste((255, 255, 255, 235), (0, 0), sitter)

    # 3. The badge in the lower right corner.
    badge = ""
    if state == BUSY and count > 0:
        badge = str(count) if count < 100 else "99+"
    elif state == ERROR:
        badge = "!"
    if badge or paused:
        box = (side * 0.52, side * 0.52, side - 1, side - 1)
        draw.ellipse(box, fill=(255, 255, 255, 255), outline=color + (255,), width=scale * 2)
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        if badge:
            font_size = side * BADGE_FONT_SCALE[min(len(badge), 3)]
            font = ImageFont.load_default(size=font_size)
            draw.text(center, badge, fill=color + (255,), font=font, anchor="mm")
        else:
            bar_width, bar_height = side * 0.05, side * 0.2
            for offset in (-side * 0.06, side * 0.06):
                draw.rectangle((center[0] + offset - bar_width / 2, center[1] - bar_height / 2,
                                center[0] + offset + bar_width / 2, center[1] + bar_height / 2), fill=color + (255,))
    return image.resize((size, size), Image.Resampling.LANCZOS)


# --- Binding to pystray -------------------------------------------------------------------------------------


def missing_display() -> str:
    """Return why no tray icon can be shown here, or "" when a display may be present."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no DISPLAY or WAYLAND_DISPLAY is set"
    return ""


def run_tray(daemon, bridge=None) -> None:
    """Show the tray icon until Quit or until the daemon stops; without a display, wait for the daemon to stop.

    `bridge` defaults to the daemon's hot-folder bridge (`daemon.hot_folders`).
    The caller stops the daemon after this returns.
    """

    # 1. No display, or pystray cannot load: the daemon runs on without the icon.
    reason = missing_display()
    if reason:
        log.info("tray icon off: %s", reason)
        _wait_until_stopped(daemon)
        return
    try:
        import pystray
    except Exception as error:  # pystray's X11 back end raises Xlib errors, not ImportError, without a display
        log.warning("tray icon off: pystray cannot start (%s)", error)
        _wait_until_stopped(daemon)
        return

    # 2. The model, and the icon bound to it.
    quit_requested = threading.Event()
    provider = DaemonStateProvider(daemon)
    model = TrayModel(provider, bridge if bridge is not None else (lambda: daemon.hot_folders),
                      output_folder=_configured_output_folder(daemon.config), log_path=daemon.log_path)
    model.refresh()
    icon = pystray.Icon("headshot-studio", model.icon_image(), model.tooltip(),
                        menu=pystray.Menu(lambda: pystray_items(pystray, model.menu())))

    def quit_tray() -> None:
        quit_requested.set()
        icon.stop()

    model.on_quit = quit_tray

    # 3. Keep the icon current from pystray's setup thread until Quit or the daemon stops.
    def keep_current(icon) -> None:
        icon.visible = True
        while not quit_requested.is_set() and not daemon.wait(timeout=REFRESH_INTERVAL_S):
            if model.refresh():
                icon.icon = model.icon_image()
                icon.title = model.tooltip()
                icon.update_menu()
        if not quit_requested.is_set():
            icon.stop()

    try:
        icon.run(setup=keep_current)
    except Exception as error:
        log.warning("tray icon off: pystray failed (%s)", error)
        _wait_until_stopped(daemon)
    finally:
        provider.close()


def pystray_items(pystray, entries: list[MenuEntry]) -> tuple:
    """Turn MenuEntry objects into pystray menu items."""
    items = []
    for entry in entries:
        if entry.separator:
            items.append(pystray.Menu.SEPARATOR)
        elif entry.submenu:
            items.append(pystray.MenuItem(entry.text, pystray.Menu(*pystray_items(pystray, list(entry.submenu))),
                                          enabled=entry.enabled))
        else:
            action = _menu_action(entry.action) if entry.action else None
            items.append(pystray.MenuItem(entry.text, action, enabled=entry.enabled and action is not None,
                                          default=entry.default))
    return tuple(items)


def _menu_action(action: Callable[[], None]):
    # pystray counts an action's parameters and rejects more than two (icon, item).
    def on_click(icon, item) -> None:
        action()

    return on_click


def open_in_file_manager(path: Path) -> None:
    """Open a folder or file with the desktop's default program; a failure is logged, not raised."""
    try:
        if sys.platform == "win32":
            os.startfile(str(path))  # noqa: S606
        elif sys.platform == "darwin":
            subprocess.Popen(["open", str(path)])
        else:
            subprocess.Popen(["xdg-open", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as error:
        log.warning("tray: could not open %s: %s", path, error)


def _configured_output_folder(config) -> Path | None:
    try:
        from plugins.lightroom_bridge.bridge import folders_from_config
    except ImportError:
        return None
    return folders_from_config(config)[0].output


def _wait_until_stopped(daemon) -> None:
    # A timeout, so that the main thread still runs signal handlers while it waits.
    while not daemon.wait(timeout=0.5):
        pass
