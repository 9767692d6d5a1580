"""Errors that reach a person: a stable code, a translated message naming the file, and the detail.

Every failure the pipeline reports on purpose is a `HeadshotError`. Its `code`
never changes between releases, so clients (the daemon, the hot folder, the planned GIMP plug-in)
can act on it; `user_message()` is what a photographer reads, in their language.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .i18n import N_, current_language, gettext_for

# Each code's message. "{file}" is replaced by the file's name; the other
# fields come from the error's `params`.
MESSAGES: dict[str, str] = {
    "file_not_found": N_("{file} was not found. Check the path and try again."),
    "not_a_file": N_("{file} is not a regular file. Choose a photo file instead."),
    "file_unreadable": N_("{file} could not be read ({reason}). Check its permissions and try again."),
    "file_empty": N_("{file} is empty (0 bytes). Export the photo again."),
    "file_truncated": N_("{file} is incomplete: the image data ends early. Export or copy the photo again."),
    "not_an_image": N_("{file} is not an image Headshot Studio can read. Choose a JPEG, PNG, TIFF, WebP or HEIC photo."),
    "unsupported_format": N_("{file} is in a format Headshot Studio cannot read ({format}). Save it as JPEG, PNG, TIFF, WebP or HEIC."),
    "image_too_large": N_("{file} is too large ({width}×{height} pixels; the limit is {limit} megapixels). Export it smaller, or raise the limit in the settings."),
    "image_empty": N_("{file} has no pixels ({width}×{height}). Export the photo again."),
    "write_failed": N_("{file} could not be written ({reason}). Check that the folder exists, is writable and has free space."),
    "would_overwrite_input": N_("{file} is one of the input photos and will not be overwritten. Choose another output folder."),
    "invalid_option": N_("Invalid option {option}: {value}. Allowed: {allowed}."),
    "internal_error": N_("Something went wrong while processing {file}. The log has the details: {log}."),
}

# Added to any error's message when its params carry `suggestions`, the valid names closest to a mistyped one.
SUGGESTIONS_HINT = N_("Did you mean {names}?")
# The maximum number of names one hint suggests. The message lists every allowed value anyway.
MAX_SUGGESTIONS = 3


def register_messages(messages: dict[str, str]) -> None:
    """Add an area's error codes; a code is registered once and never changes meaning."""
    for code, message in messages.items():
        if MESSAGES.get(code, message) != message:
            raise ValueError(f"error code {code!r} is already registered with another message")
        MESSAGES[code] = message


class HeadshotError(Exception):
    """A failure with a stable code, the file it concerns, and a developer-facing detail."""

    def __init__(self, code: str, path: str | None = None, detail: str = "", **params):
        if code not in MESSAGES:
            raise ValueError(f"unknown error code {code!r}; add it to pipeline.errors.MESSAGES")
        self.code = code
        self.path = str(path) if path is not None else None
        self.detail = detail
        self.params = params
        super().__init__(f"{code}: {self.path or '-'}: {detail or self.user_message('en')}")

    def user_message(self, language: str | None = None) -> str:
        """Return the message for a person, translated into `language` (default: the user's)."""
        _ = gettext_for(language)
        fields = {"file": self.path or "-", "log": "-", **self.params}
        message = _(MESSAGES[self.code]).format(**fields)
        suggestions = self.params.get("suggestions")
        if suggestions:
            names = _alternatives([suggestions] if isinstance(suggestions, str) else list(suggestions), language)
            message = f"{message} {_(SUGGESTIONS_HINT).format(names=names)}"
        return message

    def terminal_message(self, language: str | None = None) -> str:
        """Return the message with its stable code, as a command prints it: "Error file_empty: x.jpg is empty …"."""
        return with_code(self.code, self.user_message(language), language)

    def to_dict(self, language: str | None = None) -> dict:
        return {
            "code": self.code,
            "file": self.path,
            "message": self.user_message(language),
            "detail": self.detail,
        }


def with_code(code: str, message: str, language: str | None = None) -> str:
    """Put an error's stable code before its message, so it can be searched for and quoted in a support request."""
    return gettext_for(language)(N_("Error {code}: {message}")).format(code=code, message=message)


def skipped_with_code(code: str, message: str, language: str | None = None) -> str:
    """Return the line for a frame a job left out, with its error code as `with_code` gives it: "Skipped (file_empty): …"."""
    return gettext_for(language)(N_("Skipped ({code}): {message}")).format(code=code, message=message)


def similar_names(value, names: Iterable) -> list[str]:
    """Return up to MAX_SUGGESTIONS of `names` that a mistyped `value` may have meant, for an error's `suggestions`.

    Names that start with `value` come first ("rembrandt" finds rembrandt-left and rembrandt-right), then
    difflib's close matches, closest first. Case is ignored. A value shorter than two characters matches
    no prefix, because many names would start with it, and a number gets no suggestion (1 is no typo of 16).
    """
    word = str(value).strip().lower()
    if not word or word.isdigit():
        return []
    by_lower = {str(name).lower(): str(name) for name in names if str(name)}
    by_lower.pop(word, None)
    starting = [lower for lower in by_lower if len(word) >= 2 and lower.startswith(word)]
    close = difflib.get_close_matches(word, list(by_lower), n=MAX_SUGGESTIONS)
    return [by_lower[lower] for lower in dict.fromkeys(starting + close)][:MAX_SUGGESTIONS]


def _alternatives(names: list[str], language: str | None) -> str:
    """Join names as alternatives in the language: "a, b or c" in Dutch, "a, b, or c" in English."""
    from babel.core import UnknownLocaleError
    from babel.lists import format_list

    try:
        return format_list(names, style="or", locale=language or current_language())
    except (UnknownLocaleError, ValueError):
        return ", ".join(names)
