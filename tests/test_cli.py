"""The `headshot` entry point: its subcommands and argparse's own words in Dutch and English."""

from __future__ import annotations

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


def test_every_area_registers_its_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])

    help_text = capsys.readouterr().out
    for command in ("analyze", "select", "process", "styles", "daemon", "submit", "status", "jobs", "cancel",
                    "interrupt", "stop", "doctor", "hotfolder"):
        assert f"    {command}" in help_text, command
