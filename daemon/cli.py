"""The `headshot` command: one entry point whose subcommands come from the pipeline and the adapters.

Each area registers its own subcommands, so `headshot analyze` imports nothing of
gRPC and `headshot daemon` nothing of the hot folder until it is used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from pipeline.i18n import _, current_language, translations

# Modules that provide `register(subparsers)`; each adds its subcommands.
COMMAND_MODULES = (
    "pipeline.cli.analyze",
    "pipeline.cli.process",
    "daemon.commands",
    "daemon.client_commands",
    "plugins.lightroom_bridge.commands",
)


def translate_argparse() -> None:
    """Let argparse's own words (usage, options, its errors) follow the user's language too.

    argparse looks its strings up through the module-level `_` and `ngettext` it
    imported from gettext; our catalogs carry Dutch for the ones a user meets.
    """
    catalog = translations(current_language())
    argparse._ = catalog.gettext
    argparse.ngettext = catalog.ngettext


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error line: usage, then the stable code usage_error before argparse's message.

    Subcommand parsers are made of its subclass `_CommandParser`, so every command's option errors read alike.
    """

    # Whether the command line asked for --json, so a usage error is also given as JSON on stdout.
    json_requested = False

    def error(self, message: str):
        from pipeline.errors import with_code

        if _Parser.json_requested:
            error = {"code": "usage_error", "file": None, "message": message, "detail": ""}
            print(json.dumps({"error": error}, ensure_ascii=False), flush=True)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: {with_code('usage_error', message)}\n")


class _CommandParser(_Parser):
    """The parser of one subcommand, which rejects an unknown argument with its own usage line.

    argparse would hand such an argument up to the top-level parser, whose error shows `headshot`'s usage instead.
    """

    def parse_known_args(self, args=None, namespace=None):
        arguments, unknown = super().parse_known_args(args, namespace)
        if unknown:
            self.error(_("unrecognized arguments: %s") % " ".join(unknown))
        return arguments, unknown


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="headshot", description=_("Headshot Studio: professional headshots from your own photos, on your own computer."))
    parser.add_argument("--version", action="version", version=f"Headshot Studio {_installed_version()}",
                        help=_("print the version and exit"))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("headshot-studio")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    translate_argparse()
    parser = build_parser()
    _Parser.json_requested = "--json" in (sys.argv[1:] if argv is None else argv)
    arguments = parser.parse_args(argv)
    if not getattr(arguments, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(arguments.handler(arguments) or 0)
    except BrokenPipeError:
        # The reader went away (`headshot styles | head`); stop quietly as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
