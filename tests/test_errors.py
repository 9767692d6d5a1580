"""HeadshotError's suggestions for a mistyped name, in English and Dutch."""

from __future__ import annotations

import pytest

from pipeline.errors import HeadshotError, similar_names

LIGHTS = ("original", "natural", "soft-studio", "rembrandt-left", "rembrandt-right", "loop-left", "loop-right",
          "butterfly", "split-left", "split-right", "rim-left", "rim-right")


@pytest.mark.parametrize("value, expected", [
    ("rembrandt", ["rembrandt-left", "rembrandt-right"]),
    ("Rembrandt", ["rembrandt-left", "rembrandt-right"]),
    ("rembrant", ["rembrandt-left", "rembrandt-right"]),
    ("natral", ["natural"]),
    ("split-lft", ["split-left", "split-right"]),
    ("r", []),
    ("disco", []),
    ("", []),
    ("natural", []),
])
def test_similar_names_of_lights(value, expected):
    assert similar_names(value, LIGHTS) == expected


def test_similar_names_prefix_first_and_at_most_three():
    names = ("same-a", "same-b", "same-c", "same-d", "sam")

    assert similar_names("same", names) == ["same-a", "same-b", "same-c"]


def test_similar_names_skip_numbers():
    assert similar_names(1, (0, 8, 16)) == []
    assert similar_names("12", ("8", "16")) == []


@pytest.mark.parametrize("suggestions, language, hint", [
    (["white"], "en", "Did you mean white?"),
    (["white"], "nl", "Bedoelde je white?"),
    (["rim-left", "rim-right"], "en", "Did you mean rim-left or rim-right?"),
    (["rim-left", "rim-right"], "nl", "Bedoelde je rim-left of rim-right?"),
    (["a", "b", "c"], "en", "Did you mean a, b, or c?"),
    (["a", "b", "c"], "nl", "Bedoelde je a, b of c?"),
])
def test_suggestions_follow_the_message(suggestions, language, hint):
    error = HeadshotError("invalid_option", None, "test", option="--light", value="x", allowed="a, b",
                          suggestions=suggestions)

    assert error.user_message(language).endswith(f": a, b. {hint}")


def test_no_suggestions_no_hint():
    error = HeadshotError("invalid_option", None, "test", option="--light", value="x", allowed="a, b", suggestions=[])

    assert error.user_message("en") == "Invalid option --light: x. Allowed: a, b."
    assert error.user_message("nl") == "Ongeldige optie --light: x. Toegestaan: a, b."
