"""Dutch and English for every text a person reads, through gettext.

English is the source language. Dutch lives in `locale/nl/*.po`, one file per
area of the program so each can be edited on its own; `python -m pipeline.i18n`
merges them into the `headshot.mo` catalog that gettext loads.
"""

from __future__ import annotations

import functools
import gettext
import locale
import os
import sys
from pathlib import Path

DOMAIN = "headshot"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SUPPORTED_LANGUAGES = ("en", "nl")


def N_(message: str) -> str:
    """Mark a string for translation without translating it yet."""
    return message


def current_language() -> str:
    """Return "nl" or "en" from HEADSHOT_LANG or the usual locale variables."""
    for variable in ("HEADSHOT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if not value:
            continue
        for candidate in value.split(":"):
            language = candidate.split("_")[0].split(".")[0].lower()
            if language in SUPPORTED_LANGUAGES:
                return language
            if language and language not in ("c", "posix"):
                return "en"
    try:
        system_locale = locale.getlocale()[0] or ""
    except ValueError:
        system_locale = ""
    return "nl" if system_locale.lower().startswith("nl") else "en"


@functools.lru_cache(maxsize=None)
def translations(language: str) -> gettext.NullTranslations:
    """Return the catalog for a language, reading the .po sources if no .mo was built."""
    if language == "en":
        return gettext.NullTranslations()
    compiled = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if compiled.exists() and compiled.stat().st_mtime >= _newest_source_mtime(language):
        with compiled.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    return _PoTranslations(_read_sources(language))


def gettext_for(language: str | None = None):
    """Return a `_` function that translates into `language` (default: the user's)."""
    return translations(language or current_language()).gettext


def _(message: str) -> str:
    return translations(current_language()).gettext(message)


def format_decimal(value: float, digits: int, language: str | None = None) -> str:
    """Write `value` with `digits` decimals as the language does: 1.2 in English, 1,2 in Dutch."""
    from babel.core import UnknownLocaleError
    from babel.numbers import format_decimal as babel_format

    pattern = "0." + "0" * digits if digits > 0 else "0"
    try:
        return babel_format(value, format=pattern, locale=language or current_language())
    except (UnknownLocaleError, ValueError):
        return f"{value:.{digits}f}"


def _source_files(language: str) -> list[Path]:
    return sorted((LOCALE_DIR / language).glob("*.po"))


def _newest_source_mtime(language: str) -> float:
    return max((path.stat().st_mtime for path in _source_files(language)), default=0.0)


def _read_sources(language: str) -> dict[str, str]:
    from babel.messages.pofile import read_po

    merged: dict[str, str] = {}
    for path in _source_files(language):
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for message in catalog:
            if message.id and message.string and not message.fuzzy:
                merged[str(message.id)] = str(message.string)
    return merged


class _PoTranslations(gettext.NullTranslations):
    def __init__(self, messages: dict[str, str]):
        super().__init__()
        self._messages = messages

    def gettext(self, message: str) -> str:
        return self._messages.get(message, message)


def compile_catalogs() -> list[Path]:
    """Merge each language's .po files into one LC_MESSAGES/headshot.mo."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    written = []
    for language in SUPPORTED_LANGUAGES:
        if language == "en":
            continue
        catalog = Catalog(locale=language, domain=DOMAIN)
        for message_id, message_string in _read_sources(language).items():
            catalog.add(message_id, message_string)
        target = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".mo.tmp")
        with temporary.open("wb") as handle:
            write_mo(handle, catalog)
        os.replace(temporary, target)
        written.append(target)
    translations.cache_clear()
    return written


if __name__ == "__main__":
    for path in compile_catalogs():
        print(f"compiled {path}", file=sys.stderr)
