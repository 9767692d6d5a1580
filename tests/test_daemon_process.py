"""The daemon as a real process: kill -9 mid-job and restart, one daemon per home, the command's options."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.client import DaemonClient, read_discovery
from daemon.config import default_folders
from pipeline.errors import HeadshotError
from pipeline.request import JobRequest
from protos.headshot.v1 import headshot_pb2 as pb
from test_daemon_fixtures import REPO_ROOT, SlowRunner, daemon_home, start_daemon_process, write_frames  # noqa: F401

ONE_VARIANT = {"backdrops": ["white"], "lights": ["natural"], "crops": ["square"]}


def run_command(*arguments: str, home: Path, timeout: float = 60, language: str = "en") -> subprocess.CompletedProcess:
    # HOME too, so the hot folders' default inbox (under the user's Pictures folder) lands in the test folder.
    environment = {**os.environ, "HEADSHOT_HOME": str(home), "HEADSHOT_LANG": language, "HOME": str(home / "user"),
                   "XDG_CONFIG_HOME": str(home / "user" / ".config")}
    return subprocess.run([sys.executable, "-m", "daemon.cli", *arguments], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def stop_process(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def test_kill_during_job_then_restart_completes_everything(daemon_home):
    # 1. A daemon with a slow runner: job A (two frames) runs, B and C wait behind it.
    process = start_daemon_process(daemon_home, seconds_per_frame=1.6)
    frames = write_frames(daemon_home / "in", 4)
    output_dir = daemon_home / "out"
    with DaemonClient(read_discovery().address) as client:
        job_a = client.submit(JobRequest(frames=frames[:2], **ONE_VARIANT), output_dir=output_dir)
        behind = [client.submit(JobRequest(frames=[frame], **ONE_VARIANT)) for frame in frames[2:]]

        # 2. Kill it once A's first variant is written and its second is half-way.
        for event in client.watch(job_a.job_id, timeout=60):
            if event.WhichOneof("kind") == "variant_ready":
                break
        time.sleep(0.5)
    process.kill()
    process.wait(10)
    socket_path = Path(read_discovery().address.removeprefix("unix:"))
    jobs_dir = default_folders().data / "jobs"
    assert list((jobs_dir / job_a.job_id).glob("attempt-1/*.png")), "the kill came before any file was written"
    assert socket_path.exists()

    # 3. Start again: the stale socket is replaced and every job completes.
    process = start_daemon_process(daemon_home, seconds_per_frame=0.2)
    with DaemonClient(read_discovery().address) as client:
        finals = {handle.job_id: client.wait(handle.job_id, timeout=60) for handle in [job_a, *behind]}
        status_a = client.job(job_a.job_id)
        events_a = list(client.watch(job_a.job_id, timeout=10))
        statuses = [client.job(handle.job_id) for handle in behind]
    assert stop_process(process) == 0

    # 4. No duplicate, truncated or half-published output anywhere.
    assert [final.WhichOneof("kind") for final in finals.values()] == ["completed"] * 3
    assert status_a.attempts == 2
    assert sorted(variant.variant_id for variant in status_a.variants) == ["frame00_0", "frame01_1"]
    assert sorted(path.name for path in (jobs_dir / job_a.job_id).iterdir()) == ["result"]
    for variant in status_a.variants:
        for folder in (jobs_dir / job_a.job_id / "result", output_dir):
            data = (folder / variant.file_name).read_bytes()
            assert len(data) == variant.size_bytes
            assert hashlib.sha256(data).hexdigest() == variant.sha256
            assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (64, 64, 3)
    assert sorted(path.name for path in output_dir.iterdir()) == [
        "contact-sheet.jpg", "frame00_0.png", "frame01_1.png", "report.json"]
    ready = [event for event in events_a if event.WhichOneof("kind") == "variant_ready"]
    assert [event.attempt for event in ready] == [2, 2]
    assert [event.WhichOneof("kind") for event in events_a].count("queued") == 2
    assert all(len(status.variants) == 1 and status.attempts == 1 for status in statuses)


def test_second_daemon_exits_with_code_3(daemon_home):
    process = start_daemon_process(daemon_home, seconds_per_frame=0.0)
    try:
        second = run_command("daemon", "--foreground", "--no-tray", home=daemon_home)
        with DaemonClient(read_discovery().address) as client:
            health = client.health()
    finally:
        stop_code = stop_process(process)

    assert second.returncode == 3
    assert "already running" in second.stderr
    assert str(process.pid) in second.stderr
    assert health == "SERVING"
    assert stop_code == 0
    assert read_discovery() is None


def test_print_config_shows_effective_values(daemon_home):
    config_file = daemon_home / "custom.toml"
    config_file.write_text('max_queue = 7\nretention_days = 3\n[[hot_folders]]\ninbox = "/in"\noutput = "/out"\n'
                           '[default_styles]\nbackdrops = ["white"]\n', encoding="utf-8")

    printed = run_command("daemon", "--print-config", "--config", str(config_file), home=daemon_home)
    bad = run_command("daemon", "--print-config", "--config", str(daemon_home / "missing.toml"), home=daemon_home)

    assert printed.returncode == 0
    import tomllib

    values = tomllib.loads(printed.stdout)
    assert values["max_queue"] == 7
    assert values["retention_days"] == 3
    assert values["hot_folders"] == [{"inbox": "/in", "output": "/out", "polling": False}]
    assert values["default_styles"]["backdrops"] == ["white"]
    assert values["default_styles"]["crops"] == ["square", "portrait"]
    assert values["folders"]["data"] == str(daemon_home / "data")
    assert values["folders"]["config_file"] == str(config_file)
    assert values["transport"] == "unix"
    assert bad.returncode == 2
    assert "missing.toml" in bad.stderr


def test_print_config_without_file_shows_defaults(daemon_home):
    import tomllib

    printed = run_command("daemon", "--print-config", home=daemon_home)

    values = tomllib.loads(printed.stdout)
    pictures = daemon_home / "Pictures" / "Headshot Studio"
    assert printed.returncode == 0
    assert values["hot_folders"] == [{"inbox": str(pictures / "Inbox"), "output": str(pictures / "Output"), "polling": False}]
    assert values["default_styles"] == {"retouch": "natural", "makeup": "none", "backdrops": ["studio-grey", "white", "blur"],
                                        "lights": ["natural"], "crops": ["square", "portrait"], "output_format": "same"}
    assert values["folders"]["config_file"] == str(daemon_home / "config" / "config.toml")
    assert "source_file" not in values


def test_invalid_config_is_reported(daemon_home):
    from daemon.config import load_config

    (daemon_home / "config").mkdir()
    config_file = daemon_home / "config" / "config.toml"
    config_file.write_text("max_queue = 0\n", encoding="utf-8")

    with pytest.raises(HeadshotError) as invalid:
        load_config()

    assert invalid.value.code == "config_invalid"
    assert invalid.value.path == str(config_file)
    assert "max_queue is 0, which is not allowed (allowed: ≥ 1)" in invalid.value.user_message("en")


def write_default_config(home: Path, text: str) -> Path:
    config_file = home / "config" / "config.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(text, encoding="utf-8")
    return config_file


@pytest.mark.parametrize(("language", "expected"), [
    ("en", ["Error config_invalid: The settings file {file} is invalid: default_styles.crops is \"squar\", which is not "
            "allowed (allowed: original, square, portrait, classic, banner, passport, us-passport).",
            "Did you mean square?"]),
    ("nl", ["Fout config_invalid: Het instellingenbestand {file} is ongeldig: default_styles.crops is \"squar\", en dat is "
            "niet toegestaan (toegestaan: original, square, portrait, classic, banner, passport, us-passport).",
            "Bedoelde je square?"]),
])
def test_mistyped_default_style_stops_daemon(daemon_home, language, expected):
    config_file = write_default_config(daemon_home, '[default_styles]\ncrops = ["squar"]\n')

    foreground = run_command("daemon", "--foreground", "--no-tray", home=daemon_home, timeout=30, language=language)
    printed = run_command("daemon", "--print-config", home=daemon_home, timeout=30, language=language)

    assert foreground.returncode == 2
    assert foreground.stderr.strip().startswith(expected[0].format(file=config_file))
    assert foreground.stderr.strip().endswith(expected[1])
    assert read_discovery() is None
    assert printed.returncode == 2
    assert printed.stdout == ""
    assert printed.stderr == foreground.stderr


@pytest.mark.parametrize(("text", "key", "reason", "suggestion"), [
    ('max_queu = 5\n', "max_queu", "max_queu is not a setting", "max_queue"),
    ('port = "80"\n', "port", "port has the type string, but must have the type integer", None),
    ('transport = "tpc"\n', "transport", 'transport is "tpc", which is not allowed (allowed: unix, tcp)', None),
    ('[default_styles]\nretouch = "natral"\n', "default_styles.retouch",
     'default_styles.retouch is "natral", which is not allowed (allowed: off, natural, studio, glamour)', "natural"),
    ('[default_styles]\nbackdrops = ["white", "whit"]\n', "default_styles.backdrops",
     'default_styles.backdrops is "whit", which is not allowed (allowed: original, studio-grey, white, black, blur, '
     'color:#RRGGBB, image:PATH)', "white"),
    ('[default_styles]\nbackdrops = ["color:#RRGGBB"]\n', "default_styles.backdrops",
     'default_styles.backdrops is "color:#RRGGBB", which is not allowed', None),
    ('[default_styles]\nbackdrops = ["image:/no/such/backdrop.png"]\n', "default_styles.backdrops",
     "default_styles.backdrops names the backdrop picture /no/such/backdrop.png, which does not exist", None),
    ('[default_styles]\nlights = ["rembrandt"]\n', "default_styles.lights",
     'default_styles.lights is "rembrandt", which is not allowed', "rembrandt-left"),
    ('[default_styles]\noutput_format = "tif"\n', "default_styles.output_format",
     'default_styles.output_format is "tif", which is not allowed (allowed: same, jpeg, png, tiff)', "tiff"),
    ('[default_styles]\ncrop = ["square"]\n', "default_styles.crop", "default_styles.crop is not a setting", "crops"),
    ('[[hot_folders]]\ninbox = "/in"\noutptu = "/out"\n', "hot_folders.outptu", "hot_folders.outptu is not a setting",
     "output"),
    ('[[hot_folders]]\ninbox = "/in"\n', "hot_folders.output", "hot_folders.output is missing", None),
    ('[[hot_folders]]\ninbox = "/in"\noutput = "/out"\npolling = "yes"\n', "hot_folders.polling",
     "hot_folders.polling has the type string, but must have the type boolean", None),
])
def test_config_value_errors_name_the_key(daemon_home, text, key, reason, suggestion):
    from daemon.config import load_config

    config_file = write_default_config(daemon_home, text)

    with pytest.raises(HeadshotError) as invalid:
        load_config()

    message = invalid.value.user_message("en")
    assert invalid.value.code == "config_invalid"
    assert invalid.value.detail.startswith(f"{key}: ")
    assert message.startswith(f"The settings file {config_file} is invalid: {reason}")
    if suggestion is None:
        assert "Did you mean" not in message
    else:
        assert f"Did you mean {suggestion}" in message


def test_valid_default_styles_are_loaded(daemon_home):
    from daemon.config import load_config

    backdrop = daemon_home / "brand.png"
    backdrop.write_bytes(b"a backdrop picture")
    write_default_config(daemon_home, '[default_styles]\nretouch = "studio"\ncrops = ["square", "passport"]\n'
                                      f'backdrops = ["white", "color:#112233", "image:{backdrop}"]\n'
                                      'lights = ["rembrandt-left"]\noutput_format = "jpeg"\n')

    styles = load_config().default_styles

    assert styles.retouch == "studio"
    assert styles.crops == ["square", "passport"]
    assert styles.backdrops == ["white", "color:#112233", f"image:{backdrop}"]
    assert styles.lights == ["rembrandt-left"]
    assert styles.output_format == "jpeg"


def test_file_in_place_of_socket_stops_start(daemon_home):
    from daemon.config import load_config
    from daemon.server import Daemon

    folders = default_folders()
    folders.runtime.mkdir(parents=True)
    folders.socket_path.write_text("not a socket", encoding="utf-8")
    daemon = Daemon(load_config(), runner=SlowRunner())

    with pytest.raises(HeadshotError) as in_use:
        daemon.start()

    assert in_use.value.code == "socket_in_use"
    assert folders.socket_path.read_text(encoding="utf-8") == "not a socket"
    assert not folders.discovery_file.exists()


def test_daemon_command_starts_in_background(daemon_home):
    started = run_command("daemon", "--no-tray", home=daemon_home)
    discovery = read_discovery()
    try:
        with DaemonClient(discovery.address) as client:
            info = client.info()
            health = client.health()
    finally:
        if discovery is not None:
            os.kill(discovery.pid, signal.SIGTERM)
    # The discovery file goes before the last log line is written, so wait for both.
    deadline = time.monotonic() + 60
    log_file = default_folders().log_file
    while time.monotonic() < deadline and (
        read_discovery() is not None or "daemon stopped" not in log_file.read_text(encoding="utf-8")
    ):
        time.sleep(0.1)

    assert started.returncode == 0, started.stderr
    assert discovery.address in started.stdout
    assert info.pid == discovery.pid != os.getpid()
    assert health == "SERVING"
    assert read_discovery() is None
    log_text = default_folders().log_file.read_text(encoding="utf-8")
    assert "listening on" in log_text
    assert "daemon stopped" in log_text
