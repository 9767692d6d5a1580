"""The `headshot` entry point: its subcommands and argparse's own words in Dutch and English."""

from __future__ import annotations

import argparse
import json

import pytest

from daemon import cli


@pytest.mark.parametrize(
    ("language", "usage_word", "required_phrase"),
    [("en", "usage:", "the following arguments are required"), ("nl", "gebruik:", "deze argumenten zijn verplicht")],
)
def test_usage_error_in_user_language(monkeypatch, capsys, language, usage_word, required_phrase):
    monkeypatch.setenv("HEADSHOT_LANG", language)

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze"])

    assert exit_info.value.code == 2
    error_output = capsys.readouterr().err
    assert error_output.startswith(usage_word)
    assert required_phrase in error_output
    assert "usage_error: " in error_output
    assert "FILE" in error_output


@pytest.mark.parametrize("arguments", [["process", "frame.jpg", "--json"], ["submit", "frame.jpg", "--json", "--bogus"]])
def test_usage_error_with_json_is_also_json(capsys, arguments):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)

    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert exit_info.value.code == 2
    assert error["code"] == "usage_error"
    assert sorted(error) == ["code", "detail", "file", "message"]
    assert error["message"] in captured.err


# Each subcommand with the arguments it requires, so that only the unknown option is wrong.
REQUIRED_ARGUMENTS = {
    "analyze": ["frame.jpg"], "select": ["frame.jpg"], "process": ["frame.jpg", "--out", "out"], "styles": [],
    "daemon": [], "submit": ["frame.jpg"], "status": [], "jobs": [], "cancel": ["0123456789abcdef"],
    "interrupt": ["0123456789abcdef"], "stop": [], "doctor": [], "hotfolder": [],
}


def test_required_arguments_cover_every_command():
    parser = cli.build_parser()
    [subcommands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]

    assert sorted(subcommands.choices) == sorted(REQUIRED_ARGUMENTS)


@pytest.mark.parametrize("command", sorted(REQUIRED_ARGUMENTS))
def test_unknown_option_shows_command_usage(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, *REQUIRED_ARGUMENTS[command], "--bogus"])

    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert captured.out == ""
    assert captured.err.startswith(f"usage: headshot {command} ")
    assert captured.err.splitlines()[-1] == f"headshot {command}: Error usage_error: unrecognized arguments: --bogus"


def test_unknown_option_in_dutch(monkeypatch, capsys):
    monkeypatch.setenv("HEADSHOT_LANG", "nl")

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cancel", "0123456789abcdef", "--bogus"])

    error_output = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert error_output.startswith("gebruik: headshot cancel ")
    assert error_output.splitlines()[-1] == "headshot cancel: Fout usage_error: onbekende argumenten: --bogus"


def test_unknown_option_with_json_shows_command_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["submit", "frame.jpg", "--json", "--bogus"])

    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert exit_info.value.code == 2
    assert error["code"] == "usage_error"
    assert error["message"] == "unrecognized arguments: --bogus"
    assert captured.err.startswith("usage: headshot submit ")


def test_unknown_option_before_command_shows_top_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--bogus", "status"])

    error_output = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert error_output.startswith("usage: headshot [-h]")
    assert error_output.splitlines()[-1] == "headshot: Error usage_error: unrecognized arguments: --bogus"


def test_every_area_registers_its_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])

    help_text = capsys.readouterr().out
    for command in ("analyze", "select", "process", "styles", "daemon", "submit", "status", "jobs", "cancel",
                    "interrupt", "stop", "doctor", "hotfolder"):
        assert f"    {command}" in help_text, command
