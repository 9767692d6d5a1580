"""`headshot process` (frames in, headshot variants out) and `headshot styles` (what a job can ask for).

Importing this module stays light: the pipeline, torch and mediapipe load only
when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from ..errors import MESSAGES as ERROR_MESSAGES, HeadshotError, skipped_with_code, with_code
from ..i18n import N_, _, gettext_for

EXIT_FAILED = 1
EXIT_INVALID_OPTION = 2
EXIT_CANCELED = 130
# Variant notes about the frame rather than its crop: the summary prints each distinct one once per frame.
FRAME_NOTE_CODES = ("head_levelled", "black_bars")


def register(subparsers) -> None:
    """Add the `process` and `styles` subcommands."""
    process = subparsers.add_parser(
        "process",
        help=_("Make headshot variants from the best of the given frames."),
        description=_("Analyse the frames, choose the best and write every variant (backdrop × light × crop) to the output folder, with report.json and contact-sheet.jpg."),
    )
    process.add_argument("frames", nargs="+", metavar="FILE", help=_("the frames of one session (JPEG, PNG, TIFF, WebP, HEIC)"))
    process.add_argument("--out", required=True, metavar="DIR", help=_("the folder for the finished files; created when missing"))
    process.add_argument("--top", default="1", metavar="N", help=_("how many of the best frames to make headshots of (default 1)"))
    process.add_argument("--retouch", default="natural", metavar="PRESET", help=_("retouch preset: off, natural, studio or glamour (default natural)"))
    process.add_argument("--makeup", default="none", metavar="PRESET", help=_("make-up preset: none or natural (default none)"))
    process.add_argument("--backdrop", metavar="NAME,...", help=_("backdrops, separated by commas (default studio-grey,white,blur); see headshot styles"))
    process.add_argument("--light", metavar="NAME,...", help=_("lighting styles, separated by commas (default natural); see headshot styles"))
    process.add_argument("--crop", metavar="NAME,...", help=_("crops, separated by commas (default square,portrait); see headshot styles"))
    process.add_argument("--format", default="same", metavar="FORMAT", help=_("file format: same, jpeg, png or tiff (default same as each frame)"))
    process.add_argument("--bit-depth", default="0", metavar="BITS", help=_("bits per channel: 8 or 16 (default the frame's own)"))
    process.add_argument("--json", action="store_true", help=_("print the report as JSON instead of a summary"))
    process.set_defaults(handler=run_process)

    styles = subparsers.add_parser(
        "styles",
        help=_("List the backdrops, lights, crops, retouch and make-up presets."),
        description=_("List every style a job can ask for, with its English and Dutch name."),
    )
    styles.add_argument("--json", action="store_true", help=_("print the list as JSON"))
    styles.set_defaults(handler=run_styles)


def run_process(arguments: argparse.Namespace) -> int:
    """Build the request from the options, check them all, run the job and print what was written."""
    from ..request import JobRequest

    # 1. Build and check the request before any photo is read.
    try:
        request = JobRequest(
            frames=list(arguments.frames),
            top=parse_integer("top", arguments.top),
            retouch=arguments.retouch.lower(),
            makeup=arguments.makeup.lower(),
            output_format=arguments.format.lower(),
            bit_depth=parse_integer("bit-depth", arguments.bit_depth),
        )
        for option, field_name in (("backdrop", "backdrops"), ("light", "lights"), ("crop", "crops")):
            value = getattr(arguments, option)
            if value is not None:
                setattr(request, field_name, parse_names(value))

        from ..process import run_job, validate_request

        validate_request(request)
    except HeadshotError as error:
        return _report_error(error, arguments.json, EXIT_INVALID_OPTION if error.code == "invalid_option" else EXIT_FAILED)

    # 2. Run the job. The first Ctrl-C stops it cleanly between stages.
    _configure_logging()
    stop_requested = threading.Event()
    previous_handler = _install_interrupt_handler(stop_requested)
    from ..jobs import EventKind, JobCanceled

    frame_problems = []  # (code, message) of each frame that could not be read

    def show_progress(event) -> None:
        if event.kind == EventKind.frame_scored:
            frame_problems.extend((reason["code"], reason["message"]) for reason in event.reasons or ()
                                  if reason["code"] in ERROR_MESSAGES)
        if arguments.json or event.kind != EventKind.variant_ready:
            return
        print(_("wrote {file}").format(file=event.variant.path), file=sys.stderr)

    try:
        result = run_job(request, arguments.out, on_event=show_progress, should_stop=stop_requested.is_set)
    except JobCanceled:
        print(_("Canceled; the files finished so far are in {folder}.").format(folder=arguments.out), file=sys.stderr)
        return EXIT_CANCELED
    except HeadshotError as error:
        if not arguments.json:
            print_frame_problems(frame_problems, error.code, error.user_message(), sys.stderr)
        return _report_error(error, arguments.json, EXIT_INVALID_OPTION if error.code == "invalid_option" else EXIT_FAILED)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous_handler)

    # 3. Print the report (JSON) or a short summary.
    if arguments.json:
        output = {"report_path": str(result.report_path), "contact_sheet_path": str(result.contact_sheet_path), "report": result.report}
        print(json.dumps(output, ensure_ascii=False, indent=2))
        return 0
    print(
        _("Variants written to {folder}: {count}; contact sheet {sheet}, report {report}.").format(
            count=len(result.variants), folder=arguments.out, sheet=result.contact_sheet_path.name, report=result.report_path.name
        )
    )
    for frame in result.report.get("frames", []):
        if frame.get("error"):
            print(skipped_with_code(frame["error"]["code"], frame["error"]["message"]))
        elif frame.get("selected"):
            # What a retoucher would warn about in a frame that was used anyway: a small face, a cut-off face.
            for reason in frame.get("reasons", []):
                if reason.get("severity") == "problem":
                    print(f"{Path(frame['file']).name}: {reason['message']}")
    for line in note_lines(result.report):
        print(line)
    return 0


def note_lines(report: dict) -> list[str]:
    """Return report.json's variant notes as the summary prints them, one note a line.

    A note in FRAME_NOTE_CODES appears once per frame and distinct message ("obama.jpg: The head was levelled by
    8.0°."). Every other note, such as `enlarged`, stays with the variant file it concerns.
    """
    variants = [variant for variant in report.get("variants", []) if isinstance(variant, dict)]
    frame_notes: dict[str, list[str]] = {}
    variant_lines = []
    for variant in variants:
        for note in variant.get("notes", []):
            if not isinstance(note, dict):
                continue
            if note.get("code") in FRAME_NOTE_CODES:
                frame_name = Path(str(variant.get("frame", ""))).name or str(variant.get("file"))
                frame_notes.setdefault(frame_name, [])
                if note.get("message") not in frame_notes[frame_name]:
                    frame_notes[frame_name].append(note.get("message"))
            else:
                variant_lines.append(f"{variant.get('file')}: {note.get('message')}")
    frame_lines = [f"{frame_name}: {message}" for frame_name, messages in frame_notes.items() for message in messages]
    return frame_lines + variant_lines


def run_styles(arguments: argparse.Namespace) -> int:
    """Print every style with its name in the reader's language (or English and Dutch as JSON)."""
    from ..i18n import current_language
    from ..styles import list_styles

    styles = list_styles()
    if arguments.json:
        print(json.dumps(styles, ensure_ascii=False, indent=2))
        return 0
    language = "nl" if current_language() == "nl" else "en"
    headings = {
        "backdrop": _("Backdrops (--backdrop)"),
        "light": _("Lights (--light)"),
        "crop": _("Crops (--crop)"),
        "retouch": _("Retouch presets (--retouch)"),
        "makeup": _("Make-up presets (--makeup)"),
    }
    width = max(len(style["name"]) for style in styles)
    current_kind = None
    for style in styles:
        if style["kind"] != current_kind:
            current_kind = style["kind"]
            print(("\n" if style is not styles[0] else "") + headings[current_kind])
        print(f"  {style['name']:<{width}}  {style[language]}")
    return 0


def print_frame_problems(problems: list[tuple[str, str]], final_code: str, final_message: str, stream) -> None:
    """Print why each frame could not be used in a job that then failed, before the job's final error is printed.

    `problems` contains (code, message) pairs. When no frame can be read, the final error is the first frame's problem,
    so the line that repeats it is left out, which leaves none for a job of one frame. A heading above the others
    states that none of the photos could be used, since nothing went on without them.
    """
    others = [(code, message) for code, message in problems if (code, message) != (final_code, final_message)]
    if not others:
        return
    print(_("None of the {count} photos could be used:").format(count=len(others) + 1), file=stream)
    for code, message in others:
        print(with_code(code, message), file=stream)


def parse_names(value: str) -> list[str]:
    """Split a comma-separated option into lower-case names, keeping order and dropping repeats.

    `color:#..` and `image:..` stay whole; an `image:` path keeps its own case.
    """
    names = []
    for name in (part.strip() for part in value.split(",")):
        keyword, colon, rest = name.partition(":")
        names.append(keyword.lower() + colon + (rest if keyword.lower() == "image" else rest.lower()))
    return list(dict.fromkeys(names)) if any(names) else []


def parse_integer(option: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        allowed = "8, 16" if option == "bit-depth" else "≥ 1"
        raise _invalid(option, value, allowed) from None


def _invalid(option: str, value, allowed: str) -> HeadshotError:
    return HeadshotError("invalid_option", None, f"{option}={value!r}", option=f"--{option}", value=value, allowed=allowed)


def _report_error(error: HeadshotError, as_json: bool, exit_code: int) -> int:
    if as_json:
        print(json.dumps({"error": error.to_dict()}, ensure_ascii=False, indent=2))
    print(error.terminal_message(), file=sys.stderr)
    return exit_code


def _install_interrupt_handler(stop_requested: threading.Event):
    """Make the first Ctrl-C ask the job to stop; a second one interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread():
        return previous

    def on_interrupt(signum, frame):
        if stop_requested.is_set():
            raise KeyboardInterrupt
        stop_requested.set()
        print(gettext_for()(N_("Stopping after the current step… press Ctrl-C again to stop at once.")), file=sys.stderr)

    signal.signal(signal.SIGINT, on_interrupt)
    return previous


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
