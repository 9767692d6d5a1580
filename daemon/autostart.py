"""Start the daemon in the background for a client that finds none, and wait until its health service is SERVING.

The child is a detached `headshot daemon --foreground --no-tray` whose output
goes to a file in the log folder, so a crash before logging starts is not lost.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from pipeline.errors import HeadshotError, register_messages
from pipeline.i18n import N_

from .client import DaemonClient, DaemonError, Discovery, process_exists, read_discovery
from .config import Folders, default_folders

log = logging.getLogger(__name__)

register_messages({
    "daemon_start_failed": N_("The Headshot Studio daemon stopped while starting (exit status {status}). Its output is in {log}."),
    "daemon_start_timed_out": N_("The Headshot Studio daemon did not answer within {seconds} seconds of starting. Its output is in {log}."),
})

START_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2
HEALTH_TIMEOUT_S = 1.0
OUTPUT_FILE_NAME = "daemon-output.log"
# The exit status of a daemon that found another one holding the lock (daemon.server.EXIT_ALREADY_RUNNING).
# It is repeated here so that a client does not import the server and its gRPC services.
EXIT_ALREADY_RUNNING = 3
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

ProgressCallback = Callable[[float], None]


def answering_daemon(folders: Folders | None = None) -> Discovery | None:
    """Return the discovery of a daemon whose health check returns SERVING, or None."""
    discovery = read_discovery(folders)
    if discovery is None or not process_exists(discovery.pid):
        return None
    try:
        with DaemonClient(discovery.address, discovery.token) as client:
            if client.health(timeout=HEALTH_TIMEOUT_S) == "SERVING":
                return discovery
    except DaemonError:
        return None
    return None


def ensure_daemon(folders: Folders | None = None, timeout: float = START_TIMEOUT_S,
                  on_progress: ProgressCallback | None = None, language: str | None = None) -> Discovery:
    """Return the running daemon's discovery, starting one in the background first when none is serving.

    `on_progress(seconds_waited)` is called about every 200 ms while waiting.
    Raises DaemonError (`daemon_start_failed`, `daemon_start_timed_out`) with a
    translated message naming the file the child's output went to.
    """
    folders = folders or default_folders()

    # 1. A daemon that is already serving needs nothing.
    running = answering_daemon(folders)
    if running is not None:
        return running

    # 2. Start one, detached from this terminal and this client's process group.
    output_path = folders.logs / OUTPUT_FILE_NAME
    process = spawn_daemon(output_path)
    log.info("started a daemon in the background (pid %d); its output goes to %s", process.pid, output_path)

    # 3. Wait for SERVING. A child that lost the race to another client's daemon exits at once;
    #    the winner's discovery file then appears like our own.
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        status = process.poll()
        if status is not None and status != EXIT_ALREADY_RUNNING:
            error = HeadshotError("daemon_start_failed", None, f"exit status {status}", status=status,
                                  log=str(output_path))
            raise DaemonError(error.code, error.user_message(language), error.detail, log_path=str(output_path))
        running = answering_daemon(folders)
        if running is not None:
            return running
        if waited >= timeout:
            error = HeadshotError("daemon_start_timed_out", None, f"no SERVING within {timeout:g} s",
                                  seconds=f"{timeout:g}", log=str(output_path))
            raise DaemonError(error.code, error.user_message(language), error.detail, log_path=str(output_path))
        if on_progress is not None:
            on_progress(waited)
        time.sleep(POLL_INTERVAL_S)


def spawn_daemon(output_path: Path) -> subprocess.Popen:
    """Start `python -m daemon.cli daemon --foreground --no-tray --log-file-only` in its own session.

    Its log goes to the log file alone; `output_path` receives what else it prints, such as a crash before logging starts.
    """
    output_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "daemon.cli", "daemon", "--foreground", "--no-tray", "--log-file-only"]
    options: dict = {}
    if os.name == "nt":
        options["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True
    with open(output_path, "ab") as output:
        return subprocess.Popen(command, cwd=REPOSITORY_ROOT, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, close_fds=True, **options)
