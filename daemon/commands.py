"""The `headshot daemon` command: run the daemon in the foreground, or start it in the background."""

from __future__ import annotations

import os
import signal
import threading
import subprocess
import sys
import time
from pathlib import Path

from pipeline.errors import HeadshotError, with_code
from pipeline.i18n import _

from .config import load_config
from .server import EXIT_ALREADY_RUNNING

BACKGROUND_START_TIMEOUT_S = 60.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "daemon",
        help=_("Run the Headshot Studio daemon, which queues jobs from hot folders and the command line."),
        description=_("Run the Headshot Studio daemon, which queues jobs from hot folders and the command line."),
    )
    parser.add_argument("--foreground", action="store_true",
                        help=_("Stay in this terminal and log to it, instead of starting in the background."))
    parser.add_argument("--no-tray", action="store_true", help=_("Do not show the icon in the system tray."))
    parser.add_argument("--log-file-only", action="store_true",
                        help=_("Log only to the log file, not to this terminal (for a daemon whose output goes to a file)."))
    parser.add_argument("--print-config", action="store_true",
                        help=_("Print the effective settings and folders, then exit."))
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help=_("Read the settings from FILE instead of config.toml in the settings folder."))
    parser.set_defaults(handler=run_daemon_command)


def run_daemon_command(arguments) -> int:
    # 1. The settings.
    try:
        config = load_config(arguments.config)
    except HeadshotError as error:
        print(error.terminal_message(), file=sys.stderr)
        return 2
    if arguments.print_config:
        import tomli_w

        sys.stdout.write(tomli_w.dumps(config.to_dict()))
        return 0

    # 2. In the background: a new session of this same command, in the foreground there.
    if not arguments.foreground:
        return _start_in_background(arguments, config)
    return run_foreground(config, tray=not arguments.no_tray, log_to_terminal=not arguments.log_file_only)


def run_foreground(config, tray: bool = True, log_to_terminal: bool = True) -> int:
    """Run the daemon in this process until SIGINT or SIGTERM, or until the tray's Quit."""
    from .server import Daemon, DaemonAlreadyRunning, configure_logging

    configure_logging(config.folders.log_file, to_stderr=log_to_terminal)

    # Signals are taken before start(), since the discovery file tells clients (and scripts that stop us)
    # about the daemon before start() returns. Stopping waits for the worker, so it runs in its own thread.
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda signal_number, frame: stop_requested.set())
    signal.signal(signal.SIGINT, lambda signal_number, frame: stop_requested.set())

    daemon = Daemon(config, hot_folders=True)
    try:
        daemon.start()
    except DaemonAlreadyRunning as running:
        print(_already_running_message(running.pid, running.address), file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except HeadshotError as error:
        print(error.terminal_message(), file=sys.stderr)
        return 2

    def stop_when_requested():
        stop_requested.wait()
        daemon.stop()

    threading.Thread(target=stop_when_requested, name="headshot-stop", daemon=True).start()

    # The tray icon is optional: daemon.tray provides run_tray(daemon), which returns when the user quits.
    if tray:
        try:
            from .tray import run_tray
        except ImportError:
            run_tray = None
        if run_tray is not None:
            run_tray(daemon)
            daemon.stop()
    while not daemon.wait(timeout=0.5):
        pass
    return 0


def _start_in_background(arguments, config) -> int:
    command = [sys.executable, "-m", "daemon.cli", "daemon", "--foreground"]
    if arguments.no_tray:
        command.append("--no-tray")
    if arguments.config:
        command += ["--config", str(Path(arguments.config).resolve())]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)

    # Wait until the child has written its discovery file, or has ended.
    from .client import read_discovery

    deadline = time.monotonic() + BACKGROUND_START_TIMEOUT_S
    while time.monotonic() < deadline:
        status = process.poll()
        if status == EXIT_ALREADY_RUNNING:
            discovery = read_discovery(config.folders)
            print(_already_running_message(discovery.pid if discovery else None,
                                           discovery.address if discovery else None), file=sys.stderr)
            return EXIT_ALREADY_RUNNING
        if status is not None:
            print(with_code("daemon_start_failed", _("The daemon stopped while starting. The log has the details: {log}").format(
                log=config.folders.log_file)), file=sys.stderr)
            return status or 1
        discovery = read_discovery(config.folders)
        if discovery is not None and discovery.pid == process.pid:
            print(_("The daemon is running (process {pid}) and listens on {address}.").format(
                pid=process.pid, address=discovery.address))
            return 0
        time.sleep(0.1)
    print(_("The daemon did not start within {seconds} seconds. The log has the details: {log}").format(
        seconds=int(BACKGROUND_START_TIMEOUT_S), log=config.folders.log_file), file=sys.stderr)
    return 1


def _already_running_message(pid, address) -> str:
    message = _("The Headshot Studio daemon is already running (process {pid}, {address}). Stop it first (headshot stop), or use it as it is.").format(
        pid=pid if pid is not None else "?", address=address or "?")
    return with_code("daemon_already_running", message)
