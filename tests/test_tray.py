"""The tray's model and icon without a display: a real daemon and a real hot-folder bridge behind them."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from daemon.tray import (BUSY, ERROR, IDLE, STATE_COLORS, DaemonState, DaemonStateProvider, RecentJob, TrayModel,
                         render_icon, run_tray)
from pipeline.errors import HeadshotError
from pipeline.request import JobRequest
from test_daemon_fixtures import SlowRunner, daemon_home, start_daemon, write_frames  # noqa: F401


def disc_color(image) -> tuple[int, int, int]:
    """The colour near the top of the disc, where neither the sitter nor the badge is drawn."""
    return tuple(np.asarray(image)[4, image.width // 2, :3])


def badge_pixels(image) -> np.ndarray:
    size = image.width
    return np.asarray(image)[int(size * 0.6):, int(size * 0.6):, :3].astype(int)


class RecordingOpener:
    """Stands in for the desktop's file manager, which a test machine has none of."""

    def __init__(self):
        self.opened = []

    def __call__(self, path):
        self.opened.append(path)


class SelectiveRunner(SlowRunner):
    """Runs like SlowRunner, but fails every frame whose name starts with "bad"."""

    def __call__(self, request, out_dir, on_event=None, should_stop=None):
        if any(frame.rsplit("/", 1)[-1].startswith("bad") for frame in request.frames):
            raise HeadshotError("file_truncated", request.frames[0], "named bad")
        return super().__call__(request, out_dir, on_event, should_stop)


@pytest.fixture
def daemon_with_bridge(start_daemon, daemon_home):
    """A running daemon with a slow runner and a hot-folder bridge on folders of its own."""
    from daemon.config import HotFolder
    from plugins.lightroom_bridge.bridge import start_in_daemon

    daemon, client = start_daemon(runner=SelectiveRunner(seconds_per_frame=1.5))
    daemon.config.hot_folders = [HotFolder(inbox=str(daemon_home / "inbox"), output=str(daemon_home / "output"))]
    bridge = start_in_daemon(daemon.config, daemon.address, daemon.token)
    yield daemon, client, bridge
    bridge.stop()


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# --- The icon ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [IDLE, BUSY, ERROR])
def test_icon_disc_has_state_color(state):
    image = render_icon(state, count=2 if state == BUSY else 0)

    assert image.size == (64, 64)
    assert image.mode == "RGBA"
    color = disc_color(image)
    assert max(abs(int(a) - int(b)) for a, b in zip(color, STATE_COLORS[state])) <= 3
    assert np.asarray(image)[0, 0, 3] == 0


def test_icon_badge_shows_count_and_error():
    plain = badge_pixels(render_icon(BUSY, count=0))
    three = badge_pixels(render_icon(BUSY, count=3))
    twelve = badge_pixels(render_icon(BUSY, count=12))
    error = badge_pixels(render_icon(ERROR))

    assert np.abs(three - plain).mean() > 10
    assert np.abs(twelve - three).mean() > 2
    # The error badge is white with red marks; the plain error disc there would be the sitter only.
    assert (error.min(axis=2) > 240).mean() > 0.3
    assert ((error[..., 0] > 150) & (error[..., 1] < 90)).any()


def test_icon_scales_and_marks_pause():
    large = render_icon(IDLE, size=128)
    paused = render_icon(IDLE, paused=True)

    assert large.size == (128, 128)
    assert np.abs(badge_pixels(paused) - badge_pixels(render_icon(IDLE))).mean() > 10


# --- The model from plain states --------------------------------------------------------------------------------


def test_model_state_rules_from_plain_states():
    states = {
        "down": DaemonState(running=False, problem="daemon stopped"),
        "idle": DaemonState(running=True, recent_jobs=(RecentJob("b", "completed", "cli"), RecentJob("a", "failed", "cli"))),
        "failed": DaemonState(running=True, recent_jobs=(RecentJob("b", "canceled", "cli"), RecentJob("a", "failed", "gimp"))),
        "busy": DaemonState(running=True, queue_length=2, running_job_id="c", recent_jobs=(RecentJob("a", "failed", "cli"),)),
    }
    expected = {"down": (ERROR, 0), "idle": (IDLE, 0), "failed": (ERROR, 0), "busy": (BUSY, 3)}
    for name, state in states.items():
        model = TrayModel(lambda state=state: state)
        model.refresh()
        assert (model.state, model.busy_count) == expected[name], name
    assert "not running" in TrayModel(lambda: states["down"]).tooltip()


def test_model_refresh_reports_changes_only():
    current = {"state": DaemonState(running=True)}
    model = TrayModel(lambda: current["state"])

    assert model.refresh() is True
    assert model.refresh() is False
    current["state"] = DaemonState(running=True, queue_length=1)
    assert model.refresh() is True
    assert model.tooltip() == "Headshot Studio: busy, 1 jobs"


def test_model_without_bridge_or_folders():
    model = TrayModel(lambda: DaemonState(running=True))
    model.refresh()
    texts = {entry.text: entry for entry in model.menu()}

    assert texts["Hot folders are off"].enabled is False
    assert texts["Open output folder"].enabled is False
    assert texts["Open log"].enabled is False
    assert [entry.text for entry in texts["Recent jobs"].submenu] == ["No jobs yet"]


# --- The model with a real daemon and bridge ---------------------------------------------------------------------


def test_model_follows_daemon_jobs(daemon_with_bridge, daemon_home):
    daemon, client, bridge = daemon_with_bridge
    opener = RecordingOpener()
    model = TrayModel(DaemonStateProvider(daemon), bridge, log_path=daemon.log_path, open_path=opener)
    frames = write_frames(daemon_home / "in", 2)

    # 1. Idle, nothing done yet.
    model.refresh()
    assert model.state == IDLE
    assert model.tooltip() == "Headshot Studio: idle"

    # 2. One job running, one waiting: busy with 2.
    first = client.submit(JobRequest(frames=frames[:1], origin="gimp"), output_dir=daemon_home / "out-a")
    second = client.submit(JobRequest(frames=frames[1:]))
    wait_for(lambda: model.refresh() or model.busy_count == 2)
    assert model.state == BUSY
    assert model.tooltip() == "Headshot Studio: busy, 2 jobs"
    assert disc_color(model.icon_image()) == disc_color(render_icon(BUSY, 2))

    # 3. Both done: idle, and the recent jobs list them newest first, with state and origin.
    client.wait(second.job_id, timeout=30)
    model.refresh()
    assert model.state == IDLE
    recent = next(entry for entry in model.menu() if entry.text == "Recent jobs").submenu
    assert [entry.text for entry in recent] == [f"{second.job_id} — completed (command line)",
                                                f"{first.job_id} — completed (GIMP)"]
    assert recent[0].enabled is False
    assert recent[1].enabled is True
    recent[1].action()
    assert opener.opened == [daemon_home / "out-a"]

    # 4. A failed job turns the icon red until a later job completes.
    bad_frame = daemon_home / "bad.jpg"
    Path(frames[0]).rename(bad_frame)
    client.wait(client.submit(JobRequest(frames=[str(bad_frame)])).job_id, timeout=30)
    model.refresh()
    assert model.state == ERROR
    assert model.tooltip() == "Headshot Studio: the last job failed"
    assert disc_color(model.icon_image()) == disc_color(render_icon(ERROR))


def test_model_pauses_and_resumes_bridge(daemon_with_bridge, daemon_home):
    daemon, _client, bridge = daemon_with_bridge
    opener = RecordingOpener()
    model = TrayModel(DaemonStateProvider(daemon), lambda: daemon_bridge[0], open_path=opener)
    daemon_bridge = [bridge]
    model.refresh()

    pause = next(entry for entry in model.menu() if entry.text == "Pause hot folders")
    pause.action()
    assert bridge.status().paused is True
    assert model.tooltip() == "Headshot Studio: idle; hot folders paused"

    resume = next(entry for entry in model.menu() if entry.text == "Resume hot folders")
    resume.action()
    assert bridge.status().paused is False

    open_output = model.menu()[0]
    assert open_output.default is True
    open_output.action()
    assert opener.opened == [daemon_home / "output"]


def test_model_menu_in_dutch(daemon_with_bridge, monkeypatch):
    daemon, _client, bridge = daemon_with_bridge
    monkeypatch.setenv("HEADSHOT_LANG", "nl")
    quit_calls = []
    model = TrayModel(DaemonStateProvider(daemon), bridge, log_path=daemon.log_path, on_quit=lambda: quit_calls.append(1))
    model.refresh()

    texts = [entry.text for entry in model.menu() if not entry.separator]

    assert texts == ["Uitvoermap openen", "Hotfolders pauzeren", "Recente taken", "Logboek openen",
                     "Headshot Studio afsluiten"]
    assert model.tooltip() == "Headshot Studio: niets te doen"
    model.menu()[-1].action()
    assert quit_calls == [1]


def test_provider_after_daemon_stops(start_daemon):
    daemon, _client = start_daemon()
    provider = DaemonStateProvider(daemon)
    assert provider().running is True

    daemon.stop(grace=0.5)
    model = TrayModel(provider)
    model.refresh()

    assert model.state == ERROR
    assert model.tooltip() == "Headshot Studio: the daemon is not running"


def test_run_tray_without_display_waits_for_daemon(start_daemon, monkeypatch, caplog):
    daemon, _client = start_daemon()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    stopper = threading.Timer(0.5, daemon.stop, kwargs={"grace": 0.5})

    stopper.start()
    with caplog.at_level(logging.INFO, logger="daemon.tray"):
        run_tray(daemon)

    assert daemon.state == "stopped"
    messages = [record.getMessage() for record in caplog.records if record.name == "daemon.tray"]
    assert messages == ["tray icon off: no DISPLAY or WAYLAND_DISPLAY is set"]


def test_pystray_items_bind_the_menu():
    # pystray's package import picks a back end and fails without a display, so load its
    # back-end-free module, which defines Menu and MenuItem, from its file.
    import importlib.util
    import types

    from daemon.tray import pystray_items

    package = importlib.util.find_spec("pystray")
    spec = importlib.util.spec_from_file_location("pystray_base", Path(package.origin).parent / "_base.py")
    _base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(_base)

    calls = []
    current = {"state": DaemonState(running=True, recent_jobs=(RecentJob("a1", "completed", "hotfolder:/in"),))}
    model = TrayModel(lambda: current["state"], on_quit=lambda: calls.append("quit"))
    model.refresh()
    pystray = types.SimpleNamespace(Menu=_base.Menu, MenuItem=_base.MenuItem)

    menu = _base.Menu(lambda: pystray_items(pystray, model.menu()))
    items = list(menu.items)

    assert [item.text for item in items] == ["Open output folder", "Hot folders are off", "Recent jobs", "Open log",
                                             _base.Menu.SEPARATOR.text, "Quit Headshot Studio"]
    assert [item.enabled for item in items if item is not _base.Menu.SEPARATOR] == [False, False, True, False, True]
    assert items[0].default is True
    assert [item.text for item in items[2].submenu.items] == ["a1 — completed (hot folder)"]
    items[-1](None)
    assert calls == ["quit"]
