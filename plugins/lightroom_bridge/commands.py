"""The `headshot hotfolder` subcommand: the bridge on its own, outside the daemon."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from pipeline.errors import HeadshotError, with_code
from pipeline.i18n import _

LOG_FILE_NAME = "hotfolder.log"  # in the daemon's log folder


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "hotfolder",
        help=_("Watch a Lightroom export folder and turn every photo dropped into it into headshots."),
        description=_(
            "Watch the inbox: a photo dropped into it is one job, a folder dropped into it is one session of one person. "
            "Results go to the output folder; the photo then moves to done/ (or failed/, with the reason)."
        ),
    )
    parser.add_argument("--in", dest="inbox", metavar="DIR", help=_("the inbox to watch (default: the configured hot folders, or Pictures/Headshot Studio/Inbox)"))
    parser.add_argument("--out", dest="output", metavar="DIR", help=_("the folder for the results (default: Pictures/Headshot Studio/Output)"))
    parser.add_argument("--polling", action="store_true", help=_("check the inbox every few seconds instead of using file-system events (for network shares)"))
    parser.add_argument("--settle", type=float, default=2.0, metavar="SECONDS", help=_("how long a file must stay unchanged before it is taken, in seconds (default: 2)"))
    parser.add_argument("--rescan", type=float, default=30.0, metavar="SECONDS", help=_("how often the whole inbox is scanned again, in seconds (default: 30)"))
    parser.add_argument("--in-process", action="store_true", help=_("process in this program instead of sending the jobs to the Headshot Studio daemon"))
    parser.add_argument(
        "--write-preset",
        nargs="?",
        const="",
        metavar="DIR",
        help=_("write the Lightroom Classic export preset for the inbox into DIR (default: Lightroom's user presets folder) and exit"),
    )
    parser.add_argument("--config", metavar="FILE", help=_("the daemon's config file (default: config.toml in the user's config folder)"))
    parser.set_defaults(handler=run_hotfolder)


def write_preset(inbox: Path, folder: str) -> int:
    """Write the export preset for `inbox` into `folder` (empty: Lightroom's user presets folder)."""
    from .filing import write_atomically
    from .preset import PRESET_FILE_NAME, lightroom_user_presets_dir, render_export_preset

    target_dir = Path(folder).expanduser() if folder else lightroom_user_presets_dir()
    if target_dir is None:
        print(with_code("invalid_option", _("Lightroom Classic runs on macOS and Windows only; give a folder: --write-preset DIR")),
              file=sys.stderr)
        return 2
    target_dir.mkdir(parents=True, exist_ok=True)
    target = write_atomically(target_dir / PRESET_FILE_NAME, render_export_preset(inbox).encode("utf-8"))
    print(_("Wrote the export preset {preset}; restart Lightroom Classic to see it under User Presets.").format(preset=target))
    return 0


def watched_folders(arguments: argparse.Namespace, config) -> list:
    """Return the folders to watch: `--in`/`--out` when given, else the config's hot folders; both with its default styles."""
    from .bridge import WatchedFolder, default_inbox, default_output, default_style_options, folders_from_config

    if arguments.inbox or arguments.output:
        inbox, output = arguments.inbox or default_inbox(), arguments.output or default_output()
        return [WatchedFolder(inbox, output, polling=arguments.polling, options=default_style_options(config))]
    folders = folders_from_config(config)
    for folder in folders:
        folder.polling = folder.polling or arguments.polling
    return folders


def run_hotfolder(arguments: argparse.Namespace) -> int:
    """Run the bridge until Ctrl+C or SIGTERM; return the exit status."""
    from daemon.config import load_config
    from daemon.server import configure_logging

    from .bridge import HotFolderBridge
    from .processors import InProcessProcessor

    stop_requested = threading.Event()

    # 1. Folders, log and processor. The log is a file of its own, because the daemon's is not where this process writes.
    #    The terminal shows a line per photo done or filed as failed, and errors; the file has every INFO record too.
    try:
        config = load_config(Path(arguments.config) if arguments.config else None)
        folders = watched_folders(arguments, config)
        if arguments.write_preset is not None:
            return write_preset(folders[0].inbox, arguments.write_preset)
        # The bridge writes results, and files photos as done or failed next to the inbox: a folder it cannot write
        # would fail every photo, so it is refused before anything is watched.
        from daemon.validation import check_output_dir

        for folder in folders:
            check_output_dir(os.path.abspath(folder.output))
            check_output_dir(os.path.abspath(folder.inbox))
        log_path = config.folders.logs / LOG_FILE_NAME
        configure_logging(log_path, to_stderr=True, stderr_level=logging.ERROR)
        if arguments.in_process:
            processor = InProcessProcessor(should_stop=stop_requested.is_set, log_path=log_path)
        else:
            from .processors import DaemonProcessor

            processor = DaemonProcessor.from_config(config)
        bridge = HotFolderBridge(folders, processor, settle_s=arguments.settle, rescan_s=arguments.rescan, log_path=log_path,
                                 report=lambda line: print(line, flush=True))

        # 2. Watch until stopped.
        bridge.start()
    except HeadshotError as error:
        print(error.terminal_message(), file=sys.stderr)
        return 1
    for folder in folders:
        print(_("Watching {inbox}; results go to {output}.").format(inbox=folder.inbox, output=folder.output))
    print(_("Press Ctrl+C to stop."))
    signal.signal(signal.SIGTERM, lambda number, frame: stop_requested.set())
    try:
        while not stop_requested.wait(1.0):
            pass
    except KeyboardInterrupt:
        stop_requested.set()
    print(_("Stopping after the photo being processed…"))
    bridge.stop()
    return 0
