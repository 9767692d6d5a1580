"""`headshot doctor` on this machine: real mediapipe, torch, folders and daemons, in English and Dutch."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import default_folders
from daemon.doctor import INFO, OK, PROBLEM, WARNING, check_daemon, check_disk, check_gimp, check_hot_folders
from test_daemon_fixtures import daemon_home, start_daemon  # noqa: F401


@pytest.fixture
def private_user(daemon_home, monkeypatch):
    """A HOME and settings folder inside the test folder, with no GIMP on PATH."""
    user = daemon_home / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user / ".config"))
    monkeypatch.setenv("PATH", os.pathsep.join(entry for entry in os.environ["PATH"].split(os.pathsep)
                                               if not any(Path(entry, name).exists() for name in ("gimp-3.0", "gimp-console-3.0"))))
    return user


def write_config(text: str) -> None:
    config_file = default_folders().config_file
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(text, encoding="utf-8")


def doctor_lines(capsys, *arguments: str) -> tuple[int, list[str]]:
    code = main(["doctor", *arguments])
    return code, capsys.readouterr().out.splitlines()


def line_for(lines: list[str], title: str) -> str:
    [line] = [line for line in lines if line.split("  ", 1)[-1].lstrip().startswith(title + ":")]
    return line


def test_doctor_in_english(private_user, capsys):
    code, lines = doctor_lines(capsys)

    assert code == 0
    assert line_for(lines, "Settings") == f"OK       Settings: {default_folders().config_file} does not exist, so the defaults apply."
    assert line_for(lines, "Daemon").startswith("WARNING  Daemon: not running.")
    assert line_for(lines, "Models").startswith("OK       Models: mediapipe 0.10.21: face detection and face mesh run.")
    assert line_for(lines, "Device").startswith("OK       Device: torch ")
    assert line_for(lines, "GIMP") == "INFO     GIMP: the GIMP plug-in is planned but not part of this version, so there is nothing to install."
    assert lines[lines.index(line_for(lines, "GIMP")) + 1].startswith("OK       Hot folder: ")
    assert line_for(lines, "Hot folder").startswith("OK       Hot folder: inbox ")
    assert line_for(lines, "Disk space").startswith(("OK", "WARNING", "PROBLEM"))
    advice = lines[lines.index(line_for(lines, "Daemon")) + 1]
    assert advice.strip() == "→ Start it with: headshot daemon (headshot submit starts it by itself)."
    assert lines[-1] == "All required checks passed."


def test_doctor_in_dutch(private_user, capsys, monkeypatch):
    monkeypatch.setenv("HEADSHOT_LANG", "nl")

    code, lines = doctor_lines(capsys)

    assert code == 0
    assert line_for(lines, "Instellingen").startswith("OK        Instellingen: ")
    assert line_for(lines, "Achtergronddienst").startswith("LET OP    Achtergronddienst: draait niet.")
    assert line_for(lines, "Modellen").startswith("OK        Modellen: mediapipe 0.10.21: gezichtsdetectie en gezichtsmesh werken.")
    assert line_for(lines, "Rekeneenheid").startswith("OK        Rekeneenheid: torch ")
    assert line_for(lines, "GIMP") == "INFO      GIMP: de GIMP-plug-in is gepland maar zit niet in deze versie, dus er valt niets te installeren."
    assert line_for(lines, "Hotfolder").startswith("OK        Hotfolder: invoermap ")
    assert line_for(lines, "Schijfruimte")
    assert lines[-1] == "Alle vereiste controles zijn geslaagd."


def test_doctor_with_running_daemon(start_daemon, private_user, capsys):
    daemon, _client = start_daemon()

    result = check_daemon()

    assert result.status == OK
    assert result.message == f"running (version {daemon.version}, process {os.getpid()}, {daemon.address}), health SERVING."


def test_doctor_daemon_that_does_not_answer(private_user):
    # A discovery file naming a live process (this one) and a socket without a listener.
    folders = default_folders()
    folders.runtime.mkdir(parents=True)
    address = f"unix:{folders.runtime / 'nobody.sock'}"
    folders.discovery_file.write_text(json.dumps({"address": address, "pid": os.getpid(), "transport": "unix"}))

    result = check_daemon()

    assert result.status == PROBLEM
    assert result.message.startswith(f"process {os.getpid()} does not answer on {address}")
    assert result.advice == f"Stop process {os.getpid()} and start the daemon again: headshot daemon"


def test_doctor_fails_on_unusable_hot_folder(private_user, daemon_home, capsys):
    blocker = daemon_home / "not-a-folder"
    blocker.write_text("a file where the inbox's parent should be")
    write_config(f"[[hot_folders]]\ninbox = '{blocker / 'inbox'}'\noutput = '{daemon_home / 'output'}'\n")

    code, lines = doctor_lines(capsys)

    assert code == 1
    line = line_for(lines, "Hot folder")
    assert line.startswith(f"PROBLEM  Hot folder: {blocker / 'inbox'} cannot be created in {blocker}")
    assert lines[-1] == "Required checks that found a problem: 1."


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "PROBLEM  Settings: Error config_invalid: The settings file {file} is invalid: default_styles.crops is \"squar\""),
    ("nl", "PROBLEEM  Instellingen: Fout config_invalid: Het instellingenbestand {file} is ongeldig: default_styles.crops is \"squar\""),
])
def test_doctor_reports_invalid_config(private_user, capsys, monkeypatch, language, expected):
    monkeypatch.setenv("HEADSHOT_LANG", language)
    write_config('[default_styles]\ncrops = ["squar"]\n')

    code, lines = doctor_lines(capsys)

    assert code == 1
    assert lines[0].startswith(expected.format(file=default_folders().config_file))
    assert lines[0].endswith({"en": "Did you mean square?", "nl": "Bedoelde je square?"}[language])
    assert lines[-1] == {"en": "Required checks that found a problem: 1.", "nl": "Vereiste controles die een probleem vonden: 1."}[language]


def test_doctor_json_names_config_error_code(private_user, capsys):
    write_config("max_queue = 0\n")

    code, lines = doctor_lines(capsys, "--json")

    [config_result] = [result for result in json.loads("\n".join(lines)) if result["area"] == "config"]
    assert code == 1
    assert config_result["status"] == PROBLEM
    assert config_result["code"] == "config_invalid"
    assert "max_queue is 0" in config_result["message"]


def test_hot_folder_inbox_that_is_a_file(private_user, daemon_home):
    from daemon.config import load_config

    (daemon_home / "inbox").write_text("not a folder")
    write_config(f"[[hot_folders]]\ninbox = '{daemon_home / 'inbox'}'\noutput = '{daemon_home / 'output'}'\n")

    [result] = check_hot_folders(load_config())

    assert result.status == PROBLEM
    assert result.message == f"{daemon_home / 'inbox'} is a file, not a folder."


def test_hot_folders_that_exist(private_user, daemon_home):
    from daemon.config import load_config

    for name in ("inbox", "output"):
        (daemon_home / name).mkdir()
    write_config(f"[[hot_folders]]\ninbox = '{daemon_home / 'inbox'}'\noutput = '{daemon_home / 'output'}'\n")

    [result] = check_hot_folders(load_config())

    assert result.status == OK
    assert result.message == f"inbox {daemon_home / 'inbox'} and output {daemon_home / 'output'} are writable."


def test_gimp_plugin_not_offered_even_with_gimp(private_user, daemon_home, monkeypatch):
    bin_dir = daemon_home / "bin"
    bin_dir.mkdir()
    program = bin_dir / "gimp-console-3.0"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    result = check_gimp()

    assert result.status == INFO
    assert result.message == "the GIMP plug-in is planned but not part of this version, so there is nothing to install."
    assert result.advice == ""


def test_disk_check_reports_free_space(private_user):
    from daemon.config import load_config

    config = load_config()
    free_gb = shutil.disk_usage(Path(os.environ["HEADSHOT_HOME"])).free / 1e9

    result = check_disk(config)

    reported = float(result.message.split(" GB", 1)[0])
    assert abs(reported - free_gb) < 0.5
    assert result.message.endswith(f"GB free in {config.data_path}.")
    expected = OK
    if free_gb < 5 * 1024**3 / 1e9:
        expected = WARNING
    if free_gb < 1024**3 / 1e9:
        expected = PROBLEM
    assert result.status == expected


def test_doctor_json(private_user, capsys):
    code, lines = doctor_lines(capsys, "--json")

    results = json.loads("\n".join(lines))
    assert code == 0
    assert [result["area"] for result in results] == ["config", "daemon", "models", "device", "gimp", "hot_folders", "disk"]
    assert {result["status"] for result in results} <= {OK, WARNING, PROBLEM, INFO}
    assert [result["status"] for result in results if result["area"] == "gimp"] == [INFO]
