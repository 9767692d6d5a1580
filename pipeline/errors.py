"""Errors that reach a person: a stable code, a translated message naming the file, and the detail.

Every failure the pipeline reports on purpose is a `HeadshotError`. Its `code`
never changes between releases, so clients (the daemon, GIMP, the hot folder)
can act on it; `user_message()` is what a photographer reads, in their language.
"""

from __future__ import annotations

from .i18n import N_, gettext_for

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
        return _(MESSAGES[self.code]).format(**fields)

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
