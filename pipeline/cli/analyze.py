"""`headshot analyze` (score each frame and say why) and `headshot select` (rank a session's frames).

Importing this module stays light: mediapipe loads only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..i18n import _

EXIT_INVALID_OPTION = 2

SEVERITY_MARKS = {"problem": "!", "warning": "~", "good": "+"}


def register(subparsers) -> None:
    """Add the `analyze` and `select` subcommands."""
    analyze = subparsers.add_parser(
        "analyze",
        help=_("Score each frame and list what is good or wrong with it."),
        description=_("Analyse each frame as a retoucher would (focus, light, eyes, pose, framing, file quality) and print a score from 0 to 100 with the reasons."),
    )
    analyze.add_argument("frames", nargs="+", metavar="FILE", help=_("the frames to analyse (JPEG, PNG, TIFF, WebP, HEIC)"))
    analyze.add_argument("--json", action="store_true", help=_("print one JSON document instead of a table"))
    analyze.add_argument("--landmarks", action="store_true", help=_("include the 478 face-mesh points of every face in the JSON"))
    analyze.set_defaults(handler=run_analyze)

    select = subparsers.add_parser(
        "select",
        help=_("Rank the frames of one session and pick the best different ones."),
        description=_("Analyse the frames, rank them by score with near-duplicates grouped, and explain each place."),
    )
    select.add_argument("frames", nargs="+", metavar="FILE", help=_("the frames of one session (JPEG, PNG, TIFF, WebP, HEIC)"))
    select.add_argument("--top", type=_positive_integer, metavar="N", help=_("how many frames to select (default: every frame with a face)"))
    select.add_argument("--json", action="store_true", help=_("print one JSON document instead of a table"))
    select.add_argument("--landmarks", action="store_true", help=_("include the 478 face-mesh points of every face in the JSON"))
    select.set_defaults(handler=run_select)


def run_analyze(arguments: argparse.Namespace) -> int:
    """Analyse every file; unreadable ones are listed with their error, and only a batch with none readable fails."""
    analyses = _analyze(arguments.frames)
    if arguments.json:
        document = {"frames": [analysis.to_dict(landmarks=arguments.landmarks) for analysis in analyses]}
        _print_json(document)
        return _exit_code(analyses)
    for analysis in analyses:
        print(f"{analysis.score:5.0f}  {analysis.path}")
        _print_reasons(analysis)
    return _exit_code(analyses)


def run_select(arguments: argparse.Namespace) -> int:
    """Analyse and rank every file; print the ranking with a sentence per place."""
    from ..selection import select_frames

    analyses = _analyze(arguments.frames)
    selection = select_frames(analyses, top=arguments.top)
    if arguments.json:
        _print_json(selection.to_dict(landmarks=arguments.landmarks))
        return _exit_code(analyses)
    headers = (_("rank"), _("score"), _("group"), _("file"))
    widths = [max(5, len(header)) for header in headers[:3]]
    print("  ".join(header.rjust(width) for header, width in zip(headers, widths)) + "  " + headers[3])
    for frame in selection.frames:
        chosen = "*" if frame.selected else " "
        cells = (f"{chosen}{frame.rank}", f"{frame.analysis.score:.0f}", str(frame.duplicate_group))
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths)) + "  " + str(frame.analysis.path))
        print(f"       {frame.explain()}")
        _print_reasons(frame.analysis)
    print(_("* = selected"))
    return _exit_code(analyses)


def _exit_code(analyses) -> int:
    """Return 1 when not one file could be read, so a script notices; 0 otherwise."""
    return 1 if analyses and all(analysis.error is not None for analysis in analyses) else 0


def _analyze(paths: list[str]):
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's start-up chatter off the terminal
    from ..analysis import analyze_files

    return analyze_files(paths)


def _print_reasons(analysis) -> None:
    from ..errors import with_code

    for reason in analysis.reasons:
        # A file that could not be read carries its error's stable code, as every command prints it.
        unreadable = analysis.error is not None and reason.code == analysis.error.code
        message = with_code(reason.code, reason.message()) if unreadable else reason.message()
        print(f"       {SEVERITY_MARKS.get(reason.severity, '!')} {message}")


def _print_json(document: dict) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _positive_integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(_("must be a whole number of 1 or more, not {value}").format(value=text))
    return value
