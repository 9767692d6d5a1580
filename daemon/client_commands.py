"""The daemon's command-line client: `headshot submit`, `status`, `jobs`, `cancel`, `interrupt` and `doctor`.

Importing this module stays light (gRPC, no torch or mediapipe), because a
client that imports the pipeline pays about two seconds before it does anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from pipeline.errors import MESSAGES as ERROR_MESSAGES, HeadshotError, register_messages, skipped_with_code, with_code
from pipeline.i18n import N_, _, current_language

EXIT_FAILED = 1
EXIT_INVALID_OPTION = 2
EXIT_INTERRUPTED = 130

register_messages({
    "job_watch_ended": N_("The daemon stopped sending the progress of job {job} before the job ended. See where it stands with: headshot jobs"),
    "daemon_did_not_stop": N_("The daemon (process {pid}) has not stopped after {seconds} seconds. Look in {log} for what it is doing, or end the process yourself."),
})
# The file names of a job's report and contact sheet, as pipeline.process writes them. Importing that module
# here would load torch.
REPORT_NAME = "report.json"
CONTACT_SHEET_NAME = "contact-sheet.jpg"
# How long `headshot stop` waits for the daemon's process to end; a running job first goes back to the queue.
STOP_WAIT_S = 30

# Stage names as the pipeline sends them (pipeline.jobs.Stage), as a photographer reads them.
STAGE_WORDS = {
    "reading": N_("reading the frames"),
    "analysing": N_("analysing"),
    "selecting": N_("choosing the best frames"),
    "retouching": N_("retouching"),
    "matting": N_("cutting out"),
    "relighting": N_("relighting"),
    "compositing": N_("compositing"),
    "writing": N_("writing the files"),
}


def register(subparsers) -> None:
    """Add `submit`, `status`, `jobs`, `cancel`, `interrupt`, `stop` and `doctor`."""

    # 1. submit
    submit = subparsers.add_parser(
        "submit",
        help=_("Send frames to the Headshot Studio daemon and wait for the headshot variants."),
        description=_("Queue the frames of one session in the daemon, show its progress and write the variants, report.json and contact-sheet.jpg to the output folder. Options left out take the daemon's default styles from its settings, else the defaults shown."),
    )
    submit.add_argument("frames", nargs="+", metavar="FILE", help=_("the frames of one session (JPEG, PNG, TIFF, WebP, HEIC)"))
    submit.add_argument("--out", metavar="DIR", help=_("the folder for the finished files (default: headshot-JOB in the current folder)"))
    add_style_options(submit)
    submit.add_argument("--json", action="store_true", help=_("print each event of the job as one JSON object per line"))
    submit.add_argument("--stream", action="store_true", help=_("send the photos' bytes to the daemon instead of their paths"))
    _add_no_start(submit)
    submit.set_defaults(handler=run_submit)

    # 2. status and jobs
    status = subparsers.add_parser("status", help=_("Show whether the daemon runs, on which device, and what it is doing."),
                                   description=_("Show the daemon's address, process, version, device, queue and running job."))
    status.add_argument("--json", action="store_true", help=_("print the status as JSON"))
    status.set_defaults(handler=run_status)

    jobs = subparsers.add_parser("jobs", help=_("List the daemon's jobs, newest first."),
                                 description=_("List the daemon's jobs with their state, origin and times, newest first."))
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help=_("show at most N jobs (default 20)"))
    jobs.add_argument("--json", action="store_true", help=_("print the list as JSON"))
    _add_no_start(jobs)
    jobs.set_defaults(handler=run_jobs)

    # 3. cancel and interrupt
    cancel = subparsers.add_parser("cancel", help=_("Cancel a job that is still queued."),
                                   description=_("Cancel a job that is still queued. A running job is stopped with headshot interrupt."))
    cancel.add_argument("job", metavar="JOB", help=_("the job's id, as headshot jobs lists it"))
    cancel.add_argument("--json", action="store_true", help=_("print the outcome as JSON"))
    cancel.set_defaults(handler=run_cancel)

    interrupt = subparsers.add_parser("interrupt", help=_("Stop the job that is running."),
                                      description=_("Stop the job that is running; it ends as canceled within a few seconds."))
    interrupt.add_argument("job", metavar="JOB", help=_("the job's id, as headshot jobs lists it"))
    interrupt.add_argument("--json", action="store_true", help=_("print the outcome as JSON"))
    interrupt.set_defaults(handler=run_interrupt)

    stop = subparsers.add_parser("stop", help=_("Stop the daemon; a running job goes back to the queue."),
                                 description=_("Stop the running daemon and wait until it has ended. A job it was running goes back to the queue and starts again when the daemon does."))
    stop.add_argument("--json", action="store_true", help=_("print the outcome as JSON"))
    stop.set_defaults(handler=run_stop)

    # 4. doctor
    doctor = subparsers.add_parser("doctor", help=_("Check the settings, daemon, models, device, hot folders and disk space."),
                                   description=_("Check everything Headshot Studio needs and say what to do about each problem."))
    doctor.add_argument("--json", action="store_true", help=_("print the results as JSON"))
    doctor.set_defaults(handler=run_doctor)


def add_style_options(parser: argparse.ArgumentParser) -> None:
    """Add the style options of `headshot process` with no defaults, so an option left out stays unset.

    `headshot process` could share this by passing its defaults to `parser.set_defaults`.
    """
    parser.add_argument("--top", metavar="N", help=_("how many of the best frames to make headshots of (default 1)"))
    parser.add_argument("--retouch", metavar="PRESET", help=_("retouch preset: off, natural, studio or glamour (default natural)"))
    parser.add_argument("--makeup", metavar="PRESET", help=_("make-up preset: none or natural (default none)"))
    parser.add_argument("--backdrop", metavar="NAME,...", help=_("backdrops, separated by commas (default studio-grey,white,blur); see headshot styles"))
    parser.add_argument("--light", metavar="NAME,...", help=_("lighting styles, separated by commas (default natural); see headshot styles"))
    parser.add_argument("--crop", metavar="NAME,...", help=_("crops, separated by commas (default square,portrait); see headshot styles"))
    parser.add_argument("--format", metavar="FORMAT", help=_("file format: same, jpeg, png or tiff (default same as each frame)"))
    parser.add_argument("--bit-depth", metavar="BITS", help=_("bits per channel: 8 or 16 (default the frame's own)"))


def style_request(arguments: argparse.Namespace, frames: list[str], origin: str = "cli"):
    """Build a JobRequest from the style options; a field left out is empty, so the daemon fills in its defaults.

    Raises HeadshotError("invalid_option") for a number that does not parse; the
    daemon checks every name against the style registry when the job is submitted.
    """
    from pipeline.cli.process import parse_integer, parse_names
    from pipeline.request import JobRequest

    # Empty strings, empty lists and zeros are "unset" in the API (daemon.convert.request_fields).
    request = JobRequest(frames=frames, origin=origin, top=0, retouch="", makeup="", backdrops=[], lights=[], crops=[],
                         output_format="", bit_depth=0, jpeg_quality=0, language=current_language())
    if arguments.top is not None:
        request.top = parse_integer("top", arguments.top)
    if arguments.bit_depth is not None:
        request.bit_depth = parse_integer("bit-depth", arguments.bit_depth)
    request.retouch = (arguments.retouch or "").lower()
    request.makeup = (arguments.makeup or "").lower()
    request.output_format = (arguments.format or "").lower()
    for option, field_name in (("backdrop", "backdrops"), ("light", "lights"), ("crop", "crops")):
        value = getattr(arguments, option)
        if value is not None:
            setattr(request, field_name, parse_names(value))
    return request


def _add_no_start(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-start", action="store_true",
                        help=_("do not start the daemon when none is running; fail instead"))


# --- Connecting ------------------------------------------------------------------------------------------


def connect(start: bool):
    """Return a client of the running daemon; with `start`, start one in the background first if none is serving."""
    from .client import DaemonClient

    if not start:
        return DaemonClient.connect()
    from .autostart import answering_daemon, ensure_daemon

    discovery = answering_daemon()
    if discovery is None:
        progress = _StartProgress(sys.stderr)
        try:
            discovery = ensure_daemon(on_progress=progress)
        finally:
            progress.close()
        print(_("The daemon is running (process {pid}) and listens on {address}.").format(
            pid=discovery.pid, address=discovery.address), file=sys.stderr)
    return DaemonClient(discovery.address, discovery.token)


class _StartProgress:
    """Tell the user that the daemon is starting: a counter on a terminal, one line elsewhere."""

    def __init__(self, stream):
        self.stream = stream
        self.shown_seconds = -1

    def __call__(self, waited: float) -> None:
        seconds = int(waited)
        if seconds == self.shown_seconds:
            return
        first = self.shown_seconds < 0
        self.shown_seconds = seconds
        message = _("Starting the Headshot Studio daemon in the background…")
        if self.stream.isatty():
            self.stream.write(f"\r{message} {seconds} s")
            self.stream.flush()
        elif first:
            print(message, file=self.stream)

    def close(self) -> None:
        if self.shown_seconds >= 0 and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()


# --- submit ----------------------------------------------------------------------------------------------


def run_submit(arguments: argparse.Namespace) -> int:
    """Queue the frames, follow the job, write its files and return 0, 1, 2 (invalid option) or 130 (Ctrl-C)."""
    from .client import DaemonError

    # 1. The request, its options checked here as well, so a wrong name is named as the command line spells it
    #    and reported before any daemon is asked or started.
    from .validation import CLI_OPTION_NAMES, check_options

    frames = [os.path.abspath(frame) for frame in arguments.frames]
    try:
        request = style_request(arguments, frames)
        check_options(request, CLI_OPTION_NAMES, given_only=True)
        if arguments.stream:
            for frame in frames:
                _check_readable(frame)
    except HeadshotError as error:
        return _report_failure(arguments, error.code, error.user_message(), error.detail, error.path or "",
                               EXIT_INVALID_OPTION if error.code == "invalid_option" else EXIT_FAILED)
    out_dir = os.path.abspath(arguments.out) if arguments.out else ""

    # 2. Queue it, starting the daemon when none runs.
    try:
        client = connect(start=not arguments.no_start)
    except DaemonError as error:
        return _report_failure(arguments, error.code, error.message, error.detail, error.file, EXIT_FAILED)
    with client:
        try:
            handle = client.upload(request, out_dir) if arguments.stream else client.submit(request, out_dir)
        except DaemonError as error:
            if not arguments.json:
                from pipeline.cli.process import print_frame_problems

                problems = [(frame["code"], frame["message"]) for frame in error.frames]
                print_frame_problems(problems, error.code, error.message, sys.stderr)
            return _report_failure(arguments, error.code, error.message, error.detail, error.file,
                                   EXIT_INVALID_OPTION if error.code == "invalid_option" else EXIT_FAILED)
        except KeyboardInterrupt:
            print(_("Stopped before the job was queued; nothing was sent to the daemon."), file=sys.stderr)
            return EXIT_INTERRUPTED
        if not arguments.json:
            print(_("Job {job} queued at position {position}.").format(job=handle.job_id, position=handle.position),
                  file=sys.stderr)

        # 3. Follow it until it ends; Ctrl-C stops only the watching.
        try:
            return _follow(client, arguments, handle.job_id, out_dir)
        except KeyboardInterrupt:
            return _stop_watching(client, handle.job_id, out_dir)


def _follow(client, arguments: argparse.Namespace, job_id: str, out_dir: str) -> int:
    from pipeline.cli.process import print_frame_problems

    from .client import DaemonError
    from .convert import event_kind

    # 1. The events, as a progress bar or JSON lines.
    bar = _ProgressBar(sys.stderr, job_id) if not arguments.json and sys.stderr.isatty() else None
    final = None
    skipped = []  # (code, message) of each frame that could not be read, as `headshot process` reports them
    try:
        for event in client.watch(job_id):
            kind = event_kind(event)
            if kind in ("completed", "failed", "canceled"):
                final = event
                break
            if kind == "frame_scored":
                skipped += [(reason.code, reason.message) for reason in event.frame_scored.reasons if reason.code in ERROR_MESSAGES]
            if arguments.json:
                _print_json_line(event_to_dict(event))
            elif bar is not None:
                bar.show(event)
    except DaemonError as error:
        if bar is not None:
            bar.close()
        return _report_failure(arguments, error.code, error.message, error.detail, error.file, EXIT_FAILED)
    if bar is not None:
        bar.close()
    if final is None:
        error = HeadshotError("job_watch_ended", None, "the stream ended without a terminal event", job=job_id)
        return _report_failure(arguments, error.code, error.user_message(), error.detail, "", EXIT_FAILED)

    # 2. A job that failed or was canceled.
    kind = event_kind(final)
    if kind == "failed":
        failed = final.failed
        if arguments.json:
            _print_json_line({**event_to_dict(final), "error": _error_dict(failed.code, failed.message, failed.detail, failed.file)})
        else:
            print_frame_problems(skipped, failed.code, failed.message, sys.stderr)
        print(with_code(failed.code, failed.message) if failed.code else failed.message, file=sys.stderr)
        return EXIT_FAILED
    if kind == "canceled":
        if arguments.json:
            _print_json_line(event_to_dict(final))
        print(_("Job {job} was canceled; no files were written.").format(job=job_id), file=sys.stderr)
        return EXIT_FAILED

    # 3. Completed: the daemon copied the files into --out, or we fetch them into headshot-JOB here.
    try:
        folder, variant_files, other_files = _collect_results(client, job_id, out_dir)
    except (DaemonError, OSError) as error:
        message = error.message if isinstance(error, DaemonError) else str(error)
        return _report_failure(arguments, getattr(error, "code", "write_failed"), message, str(error), "", EXIT_FAILED)
    if arguments.json:
        files = [str(path) for path in variant_files + other_files]
        _print_json_line({**event_to_dict(final), "output_dir": str(folder), "files": files})
    else:
        for code, message in skipped:
            print(skipped_with_code(code, message))
        print(_written_summary(folder, variant_files, other_files))
        for line in _variant_notes(folder / REPORT_NAME):
            print(line)
    return 0


def _written_summary(folder: Path, variant_files: list[Path], other_files: list[Path]) -> str:
    """Return the summary that `headshot process` prints: the number of variants, the contact sheet and the report."""
    other_names = {path.name for path in other_files}
    if REPORT_NAME in other_names and CONTACT_SHEET_NAME in other_names:
        return _("Variants written to {folder}: {count}; contact sheet {sheet}, report {report}.").format(
            folder=folder, count=len(variant_files), sheet=CONTACT_SHEET_NAME, report=REPORT_NAME)
    return _("Variants written to {folder}: {count}.").format(folder=folder, count=len(variant_files))


def _variant_notes(report_path: Path) -> list[str]:
    """Return the notes of report.json's variants as `headshot process` prints them."""
    from pipeline.cli.process import note_lines

    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return note_lines(report) if isinstance(report, dict) else []


def _collect_results(client, job_id: str, out_dir: str) -> tuple[Path, list[Path], list[Path]]:
    """Return the folder, the job's variants in it and its other files, fetched first when the request named no folder."""
    from .files import copy_atomically
    from .server import JOBS_FOLDER
    from .worker import RESULT_FOLDER

    # 1. What the job wrote: its variants, and the other files (report, contact sheet) of its result folder.
    # NOTE: the API has no call that lists or sends those other files, so they are read from the
    # daemon's folder, which only a client on the daemon's computer can do.
    status = client.job(job_id)
    variant_names = [variant.file_name for variant in status.variants]
    result_dir = Path(client.info().data_dir) / JOBS_FOLDER / job_id / RESULT_FOLDER
    other_files = []
    if result_dir.is_dir():
        other_files = [path for path in sorted(result_dir.iterdir()) if path.is_file() and path.name not in variant_names]

    # 2. With --out the daemon has copied everything there before it reported the job completed.
    if out_dir:
        folder = Path(out_dir)
        variant_files = [folder / name for name in variant_names if (folder / name).is_file()]
        copies = [folder / path.name for path in other_files if (folder / path.name).is_file()]
        return folder, variant_files, copies

    # 3. Otherwise fetch the variants through the API, each checked against its SHA-256, then copy the rest.
    folder = Path.cwd() / f"headshot-{job_id}"
    folder.mkdir(parents=True, exist_ok=True)
    variant_files = [client.download_variant(job_id, variant.variant_id, folder / variant.file_name)
                     for variant in status.variants]
    copies = []
    for source in other_files:
        copy_atomically(source, folder / source.name)
        copies.append(folder / source.name)
    return folder, variant_files, copies


def _stop_watching(client, job_id: str, out_dir: str) -> int:
    """Say that the job goes on without us, and how to stop it; the daemon is not asked to stop anything."""
    from .client import DaemonError
    from .convert import STATE_FROM_PROTO

    from .server import JOBS_FOLDER
    from .worker import RESULT_FOLDER

    if sys.stderr.isatty():
        sys.stderr.write("\n")
    state, result_dir = "", ""
    try:
        state = STATE_FROM_PROTO.get(client.job(job_id).state, "")
        result_dir = str(Path(client.info().data_dir) / JOBS_FOLDER / job_id / RESULT_FOLDER)
    except (DaemonError, KeyboardInterrupt):
        pass
    if state in ("completed", "failed", "canceled"):
        print(_("Stopped watching; job {job} has already ended ({state}).").format(
            job=job_id, state=_state_word(state)), file=sys.stderr)
        return EXIT_INTERRUPTED
    command = f"headshot interrupt {job_id}" if state == "in_progress" else f"headshot cancel {job_id}"
    if out_dir or result_dir:
        where = _("Its files will be written to {folder}.").format(folder=out_dir or result_dir)
    else:
        where = ""
    message = _("Stopped watching. Job {job} goes on in the daemon.").format(job=job_id)
    print(" ".join(part for part in (message, where, _("To stop it: {command}").format(command=command)) if part),
          file=sys.stderr)
    return EXIT_INTERRUPTED


def _check_readable(frame: str) -> None:
    if not os.path.exists(frame):
        raise HeadshotError("file_not_found", frame, "frame to upload does not exist")
    if not os.path.isfile(frame):
        raise HeadshotError("not_a_file", frame, "frame to upload is not a regular file")


def _report_failure(arguments, code: str, message: str, detail: str, file: str, exit_code: int) -> int:
    if getattr(arguments, "json", False):
        _print_json_line({"event": "error", "error": _error_dict(code, message, detail, file)})
    print(with_code(code, message) if code else message, file=sys.stderr)
    return exit_code


def _error_dict(code: str, message: str, detail: str, file: str) -> dict:
    """Return an error as every --json output shows it, with the keys of `HeadshotError.to_dict` (no file: null)."""
    return {"code": code, "file": file or None, "message": message, "detail": detail}


def _print_json_line(values: dict) -> None:
    sys.stdout.write(json.dumps(values, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def event_to_dict(event) -> dict:
    """Return a JobEvent as a JSON-ready dict with its kind under "event", e.g. {"event": "progress", ...}."""
    from google.protobuf import json_format

    from .convert import event_kind

    values = int64_as_numbers(event, json_format.MessageToDict(event, preserving_proto_field_name=True))
    variant = values.get("variant_ready")
    if isinstance(variant, dict) and "recipe_json" in variant:
        # The recipe travels as JSON text; a JSON reader gets it as an object, with the notes it gives rise to.
        from pipeline.process import variant_notes

        try:
            variant["recipe"] = json.loads(variant.pop("recipe_json"))
        except ValueError:
            variant["recipe"] = {}
        variant["notes"] = variant_notes(variant["recipe"]) if isinstance(variant["recipe"], dict) else []
    return {"event": event_kind(event), **values}


def int64_as_numbers(message, values: dict) -> dict:
    """Turn the 64-bit integers in `MessageToDict(message, preserving_proto_field_name=True)` back into numbers.

    The proto3 JSON mapping writes them as strings, but a script reading `size_bytes` or `sequence` expects a number,
    and Python's json module reads integers of any size exactly.
    """
    from google.protobuf.descriptor import FieldDescriptor

    int64_types = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
                   FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
    for field in message.DESCRIPTOR.fields:
        if field.name not in values:
            continue
        value = getattr(message, field.name)
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.type in int64_types:
            values[field.name] = [int(item) for item in value] if repeated else int(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            pairs = zip(value, values[field.name]) if repeated else [(value, values[field.name])]
            for submessage, subvalues in pairs:
                if isinstance(subvalues, dict):  # well-known types such as Timestamp become strings
                    int64_as_numbers(submessage, subvalues)
    return values



class _ProgressBar:
    """One line on a terminal: the job, a bar, the percentage and the stage."""

    WIDTH = 24

    def __init__(self, stream, job_id: str):
        self.stream = stream
        self.job_id = job_id
        self.fraction: float | None = None
        self.stage = ""
        self.note = ""
        self.variants = 0
        self.shown_length = 0

    def show(self, event) -> None:
        from .convert import event_kind

        kind = event_kind(event)
        if kind == "queued":
            self.note = _("queued at position {position}").format(position=event.queued.position)
        elif kind == "started":
            self.note = _("started")
        elif kind == "stage_started":
            self.stage, self.note = event.stage_started.stage, ""
        elif kind == "progress":
            self.stage = event.progress.stage or self.stage
            self.fraction = event.progress.fraction if event.progress.HasField("fraction") else self.fraction
        elif kind == "variant_ready":
            self.variants += 1
            self.note = _("variants ready: {count}").format(count=self.variants)
        self._draw()

    def _draw(self) -> None:
        filled = round(self.WIDTH * (self.fraction or 0.0))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        percent = f"{100 * self.fraction:3.0f} %" if self.fraction is not None else "  … "
        stage = _(STAGE_WORDS[self.stage]) if self.stage in STAGE_WORDS else self.stage
        text = "  ".join(part for part in (self.job_id, f"[{bar}]", percent, stage, self.note) if part)
        padding = " " * max(0, self.shown_length - len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self.shown_length = len(text)

    def close(self) -> None:
        if self.shown_length:
            self.stream.write("\n")
            self.stream.flush()
            self.shown_length = 0


# --- status and jobs ---------------------------------------------------------------------------------------


def run_status(arguments: argparse.Namespace) -> int:
    """Print the daemon's state; 1 with how to start it when none runs."""
    from .client import DaemonError

    try:
        with connect(start=False) as client:
            info = client.info()
    except DaemonError as error:
        if arguments.json:
            _print_json_line({"running": False, "error": _error_dict(error.code, error.message, error.detail, error.file)})
        print(with_code(error.code, error.message), file=sys.stderr)
        return EXIT_FAILED

    if arguments.json:
        from google.protobuf import json_format

        values = json_format.MessageToDict(info, preserving_proto_field_name=True, including_default_value_fields=True)
        values = int64_as_numbers(info, values)
        print(json.dumps({"running": True, **values}, ensure_ascii=False, indent=2))
        return 0

    running = _("job {job}").format(job=info.running_job_id) if info.running_job_id else _("nothing")
    rows = [
        (_("Address"), info.address),
        (_("Process"), str(info.pid)),
        (_("Device"), info.device or _("not known yet (the worker is starting)")),
        (_("Queue"), _("{count} waiting (at most {limit})").format(count=info.queue_length, limit=info.max_queue)),
        (_("Running"), running),
        (_("Data folder"), info.data_dir),
        (_("Log"), info.log_path),
    ]
    print(_("The Headshot Studio daemon {version} is running.").format(version=info.version))
    width = max(len(label) for label, _value in rows)
    for label, value in rows:
        print(f"  {label + ':':<{width + 1}}  {value}")
    return 0


def run_jobs(arguments: argparse.Namespace) -> int:
    """List the jobs newest first, as a table or as JSON."""
    from .client import DaemonError

    try:
        with connect(start=not arguments.no_start) as client:
            jobs = client.jobs(limit=max(1, arguments.limit))
    except DaemonError as error:
        return _report_failure(arguments, error.code, error.message, error.detail, error.file, EXIT_FAILED)

    if arguments.json:
        print(json.dumps([job_to_dict(job) for job in jobs], ensure_ascii=False, indent=2))
        return 0
    if not jobs:
        print(_("No jobs yet."))
        return 0

    headings = (_("Job"), _("State"), _("Origin"), _("Queued"), _("Started"), _("Finished"))
    rows = [headings]
    errors = {}
    for job in jobs:
        values = job_to_dict(job)
        state = _state_word(values["state"])
        if values["state"] == "pending" and job.position:
            state = f"{state} ({job.position})"
        rows.append((job.job_id, state, job.origin, *(_local_time(values[name]) for name in ("created", "started", "finished"))))
        if values["error"]:
            errors[job.job_id] = values["error"]["message"]
    widths = [max(len(row[column]) for row in rows) for column in range(len(headings))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
        if row[0] in errors:
            print(f"    {errors[row[0]]}")
    return 0


def job_to_dict(job) -> dict:
    """Return a JobStatus as plain JSON values: state words as the daemon stores them, times in ISO 8601 (UTC)."""
    from .convert import STATE_FROM_PROTO

    times = {name: getattr(job, name).ToJsonString() if job.HasField(name) else None
             for name in ("created", "started", "finished")}
    error = None
    if job.HasField("error"):
        error = {"code": job.error.code, "message": job.error.message, "detail": job.error.detail,
                 "log": job.error.log_path}
    return {
        "job_id": job.job_id, "state": STATE_FROM_PROTO.get(job.state, "unknown"), "origin": job.origin, **times,
        "attempts": job.attempts, "position": job.position, "output_dir": job.request.output_dir,
        "frames": list(job.request.frames), "error": error,
    }


def _state_word(state: str) -> str:
    from .service import STATE_WORDS

    return _(STATE_WORDS.get(state, state))


def _local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# --- cancel and interrupt ----------------------------------------------------------------------------------


def run_cancel(arguments: argparse.Namespace) -> int:
    """Cancel a queued job; the daemon's translated error when it is running, finished or unknown."""
    return _change_job(arguments, "cancel", _("Job {job} was canceled."))


def run_interrupt(arguments: argparse.Namespace) -> int:
    """Stop the running job; the daemon's translated error when it is not running."""
    return _change_job(arguments, "interrupt", _("Job {job} is being stopped; it ends as canceled within a few seconds."))


def _change_job(arguments: argparse.Namespace, call: str, done_message: str) -> int:
    """Call the daemon's `cancel` or `interrupt` for one job, without starting a daemon, and print the outcome."""
    from .client import DaemonError

    try:
        with connect(start=False) as client:
            getattr(client, call)(arguments.job)
    except DaemonError as error:
        return _report_failure(arguments, error.code, error.message, error.detail, error.file, EXIT_FAILED)
    if arguments.json:
        _print_json_line({"job_id": arguments.job, "done": call, "message": done_message.format(job=arguments.job)})
    else:
        print(done_message.format(job=arguments.job))
    return 0


def run_stop(arguments: argparse.Namespace) -> int:
    """Ask the running daemon to stop, as Ctrl-C or the tray's Quit would, and wait for its process to end."""
    import signal

    from .client import DaemonError, process_exists

    # 1. The process of the daemon reached here, not merely the one a discovery file names.
    try:
        with connect(start=False) as client:
            info = client.info()
    except DaemonError as error:
        return _report_failure(arguments, error.code, error.message, error.detail, error.file, EXIT_FAILED)

    # 2. SIGTERM, which the daemon handles like Ctrl-C (on Windows this ends the process at once; the queue is
    #    kept on disk either way), then wait.
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while process_exists(info.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_exists(info.pid):
        error = HeadshotError("daemon_did_not_stop", None, f"pid {info.pid} alive after SIGTERM", pid=info.pid,
                              seconds=STOP_WAIT_S, log=info.log_path)
        return _report_failure(arguments, error.code, error.user_message(), error.detail, "", EXIT_FAILED)
    message = _("The daemon (process {pid}) has stopped.").format(pid=info.pid)
    if arguments.json:
        _print_json_line({"stopped": True, "pid": info.pid, "message": message})
    else:
        print(message)
    return 0


def run_doctor(arguments: argparse.Namespace) -> int:
    from .doctor import run_doctor_command

    return run_doctor_command(arguments)
