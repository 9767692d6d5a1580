"""The hot-folder bridge: watches inboxes, hands each settled file or session folder to a processor, files the source.

A source leaves the inbox only after all its outputs are published, so after a
crash the start-up scan finds it again. The ledger gives the new attempt the
same output folder, whose files are then replaced, never duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import HeadshotError, register_messages
from pipeline.i18n import N_, gettext_for

from .filing import entry_stem, file_as_done, file_as_failed, numbered_name, remove_partial_files
from .ledger import COMPLETED, FAILED, InboxLock, Ledger, inbox_lock_path
from .processors import Processor, ProcessorUnavailable, ReportedError, check_decodable
from .scanner import FAILED_FOLDER, InboxEventHandler, InboxTracker, entry_signature, session_frames

log = logging.getLogger(__name__)

register_messages(
    {
        "hotfolder_in_use": N_("{file} is already watched by another Headshot Studio process (process {pid}). Stop that one first, or choose another inbox."),
        "hotfolder_overlap": N_("The inbox {file} and the output folder {output} overlap. Choose two separate folders."),
        "job_canceled": N_("Processing {file} was canceled before it finished. Put it back into the inbox to process it again."),
        "outputs_incomplete": N_("Processing {file} ended without writing {missing}. The log has the details: {log}."),
        "too_many_attempts": N_("{file} was tried {attempts} times and each attempt was cut off. The log has the details: {log}. Put the photo back into the inbox to try once more."),
    }
)

APP_FOLDER_NAME = "Headshot Studio"
REQUIRED_OUTPUTS = ("report.json", "contact-sheet.jpg")
HASH_CHUNK_BYTES = 1024 * 1024


def default_hot_folder_root() -> Path:
    """Return Pictures/Headshot Studio, or HEADSHOT_HOME/Pictures/Headshot Studio when HEADSHOT_HOME is set."""
    home = os.environ.get("HEADSHOT_HOME", "").strip()
    if home:
        return Path(home).expanduser().resolve() / "Pictures" / APP_FOLDER_NAME

    import platformdirs

    return Path(platformdirs.user_pictures_dir()) / APP_FOLDER_NAME


def default_inbox() -> Path:
    return default_hot_folder_root() / "Inbox"


def default_output() -> Path:
    return default_hot_folder_root() / "Output"


def default_state_dir() -> Path:
    """Return the daemon's data folder's `hotfolder/` (under HEADSHOT_HOME when that is set)."""
    from daemon.config import default_folders

    return default_folders().data / "hotfolder"


@dataclass
class WatchedFolder:
    """One inbox, the folder its results go to, and the request options its jobs get."""

    inbox: Path
    output: Path
    polling: bool = False  # poll instead of file-system events, for network shares
    options: dict = field(default_factory=dict)  # JobRequest fields, e.g. {"backdrops": ["white"]}

    def __post_init__(self):
        self.inbox = Path(self.inbox).expanduser().absolute()
        self.output = Path(self.output).expanduser().absolute()


def default_style_options(config) -> dict:
    """Return the request fields that the daemon config's `[default_styles]` sets, e.g. {"backdrops": ["white"]}.

    The bridge sends them with every job, because a request that leaves a
    field out gets the pipeline's own default, not the configured one.
    """
    return {name: value for name, value in vars(config.default_styles).items() if value}


def folders_from_config(config) -> list[WatchedFolder]:
    """Return the daemon config's hot folders (the Pictures defaults when it lists none), with its default styles."""
    options = default_style_options(config)
    return [WatchedFolder(entry.inbox, entry.output, polling=entry.polling, options=dict(options))
            for entry in config.effective_hot_folders()]


def start_in_daemon(config, address: str, token: str | None = None) -> "HotFolderBridge":
    """Start the bridge inside the daemon's process, as a gRPC client of that daemon at `address`."""
    from daemon.client import DaemonClient

    from .processors import DaemonProcessor

    processor = DaemonProcessor(lambda: DaemonClient(address, token))
    bridge = HotFolderBridge(folders_from_config(config), processor, log_path=config.folders.log_file)
    bridge.start()
    return bridge


@dataclass
class BridgeStatus:
    """The counts a tray icon shows: whether the bridge takes new files, and how many wait or run."""

    paused: bool
    waiting: int  # entries in the inboxes not yet taken (still settling, or queued)
    processing: int
    completed: int  # since the bridge started
    failed: int
    folders: list[str]


class HotFolderBridge:
    """Watches one or more inboxes and processes what is dropped into them, one entry per worker at a time."""

    def __init__(
        self,
        folders: list[WatchedFolder],
        processor: Processor,
        *,
        state_dir: Path | None = None,
        settle_s: float = 2.0,
        rescan_s: float = 30.0,
        polling_interval_s: float = 2.0,
        open_write_timeout_s: float = 60.0,
        retry_after_s: float = 5.0,
        workers: int = 1,
        max_attempts: int = 3,
        language: str | None = None,
        log_path: Path | str | None = None,
        report: Callable[[str], None] | None = None,
    ):
        self.folders = list(folders)
        self.report = report  # receives a line for a person, in `language`, as each photo is done or filed as failed
        self.processor = processor
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.settle_s = settle_s
        self.rescan_s = rescan_s
        self.polling_interval_s = polling_interval_s
        self.retry_after_s = retry_after_s
        self.workers = max(1, workers)
        self.max_attempts = max_attempts
        self.language = language or None
        self.log_path = str(log_path) if log_path else "-"
        self._check_folders()

        self.trackers = {folder.inbox: InboxTracker(folder.inbox, settle_s, open_write_timeout_s) for folder in self.folders}
        self.ledger: Ledger | None = None
        self._locks: list[InboxLock] = []
        self._observers: list = []
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._rescan_requested = threading.Event()
        self._claims = threading.Lock()  # makes "look up content, then claim it" one step across workers
        self._active_keys: set[tuple[Path, str]] = set()
        self._counts_lock = threading.Lock()
        self._processor_back_at = 0.0  # monotonic time before which no entry is handed to an unavailable processor
        self._processing = 0
        self._completed = 0
        self._failed = 0

    def _check_folders(self) -> None:
        for folder in self.folders:
            inbox, output = folder.inbox, folder.output
            if inbox == output or inbox in output.parents or output in inbox.parents:
                raise HeadshotError("hotfolder_overlap", inbox, f"output {output}", output=str(output))

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Lock the inboxes, clean up after an interrupted run, scan, and start watching and processing.

        1. Take each inbox's lock (HeadshotError hotfolder_in_use if another process holds it).
        2. Delete temporary files that an interrupted attempt left in its output folder.
        3. Start the observers, then scan every inbox for what arrived while the bridge was down.
        4. Start the scheduler and the workers.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for folder in self.folders:
            folder.inbox.mkdir(parents=True, exist_ok=True)
            folder.output.mkdir(parents=True, exist_ok=True)
            lock = InboxLock(inbox_lock_path(self.state_dir, folder.inbox))
            if not lock.acquire():
                self._release_locks()
                raise HeadshotError("hotfolder_in_use", folder.inbox, f"lock {lock.path}", pid=lock.holder_pid())
            self._locks.append(lock)
        self.ledger = Ledger(self.state_dir / "ledger.sqlite3")

        for folder in self.folders:
            for output_dir in self.ledger.in_progress_output_dirs(folder.inbox):
                removed = remove_partial_files(output_dir)
                if removed:
                    log.info("hot folder %s: removed %d temporary files of an interrupted attempt in %s", folder.inbox, removed, output_dir)
            remove_partial_files(folder.inbox / FAILED_FOLDER)

        self._start_observers()
        for folder in self.folders:
            added = self.trackers[folder.inbox].scan()
            log.info("hot folder %s: watching (%s), %d entries waiting, results go to %s", folder.inbox, "polling" if folder.polling else "events", added, folder.output)

        self._stopping.clear()
        self._threads = [threading.Thread(target=self._schedule, name="hotfolder-scheduler", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"hotfolder-worker-{index}", daemon=True) for index in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def _start_observers(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        for folder in self.folders:
            handler = InboxEventHandler(self.trackers[folder.inbox])
            observer = PollingObserver(timeout=self.polling_interval_s) if folder.polling else Observer()
            try:
                observer.schedule(handler, str(folder.inbox), recursive=True)
                observer.start()
            except OSError as error:
                # inotify watches are a per-user limit; polling works without them.
                log.warning("hot folder %s: file-system events unavailable (%s); polling instead", folder.inbox, error)
                observer = PollingObserver(timeout=self.polling_interval_s)
                observer.schedule(handler, str(folder.inbox), recursive=True)
                observer.start()
            self._observers.append(observer)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking entries, let running ones finish (up to `timeout` seconds), and release the inboxes."""
        self._stopping.set()
        for _ in range(self.workers):
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(5)
        self._observers.clear()
        self._threads.clear()
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None
        self._release_locks()

    def _release_locks(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks.clear()

    # -- tray API -------------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Take no new entries; entries already processing finish."""
        self._paused.set()
        log.info("hot folder: paused")

    def resume(self) -> None:
        """Take entries again, starting with a full scan of every inbox."""
        self._paused.clear()
        self._rescan_requested.set()
        log.info("hot folder: resumed")

    def status(self) -> BridgeStatus:
        waiting = sum(tracker.waiting_count() for tracker in self.trackers.values()) + self._queue.qsize()
        with self._counts_lock:
            return BridgeStatus(
                paused=self._paused.is_set(),
                waiting=waiting,
                processing=self._processing,
                completed=self._completed,
                failed=self._failed,
                folders=[str(folder.inbox) for folder in self.folders],
            )

    # -- threads ------------------------------------------------------------------------------------------------

    def _schedule(self) -> None:
        tick_s = min(0.25, self.settle_s / 4) if self.settle_s > 0 else 0.05
        next_rescan = time.monotonic() + self.rescan_s
        while not self._stopping.is_set():
            if time.monotonic() >= next_rescan or self._rescan_requested.is_set():
                self._rescan_requested.clear()
                next_rescan = time.monotonic() + self.rescan_s
                for tracker in self.trackers.values():
                    added = tracker.scan()
                    if added:
                        log.info("hot folder %s: rescan found %d entries without events", tracker.inbox, added)
            if not self._paused.is_set() and time.monotonic() >= self._processor_back_at:
                for folder in self.folders:
                    for entry in self.trackers[folder.inbox].take_ready():
                        self._queue.put((folder, entry))
            self._stopping.wait(tick_s)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            folder, entry = item
            tracker = self.trackers[folder.inbox]
            if self._paused.is_set() or self._stopping.is_set():
                tracker.release(entry)
                continue
            if time.monotonic() < self._processor_back_at:
                tracker.release(entry, self.retry_after_s)
                continue
            with self._counts_lock:
                self._processing += 1
            retry_after_s = 0.0
            try:
                retry_after_s = self._handle(folder, entry)
            except Exception:
                log.exception("hot folder %s: unexpected error on %s; trying again later", folder.inbox, entry.name)
                retry_after_s = self.retry_after_s
            finally:
                with self._counts_lock:
                    self._processing -= 1
                tracker.release(entry, retry_after_s)

    # -- one entry ------------------------------------------------------------------------------------------------

    def _handle(self, folder: WatchedFolder, entry: Path) -> float:
        """Process one settled inbox entry; return after how many seconds it may be taken again, if still there.

        1. Read its frames and compute the content key.
        2. Content already completed is filed without processing: a duplicate,
           or a source whose outputs were published just before a stop. Content
           that failed is tried again, since a photo is put back once its
           problem is solved, and the cause may lie outside the file.
        3. Otherwise claim the content (reusing the output folder of an earlier,
           interrupted attempt) and process it.
        """

        # 1. Frames and content key.
        signature = entry_signature(entry)
        if signature is None:
            return 0.0
        frames = session_frames(entry) if signature[0] == "session" else [entry]
        try:
            content_key = self._content_key(frames, folder.options)
        except FileNotFoundError:
            return 0.0

        # 2. Known content.
        with self._claims:
            known = self.ledger.lookup(folder.inbox, content_key)
            if (folder.inbox, content_key) in self._active_keys:
                log.info("hot folder %s: %s has the same content as an entry being processed; waiting for it", folder.inbox, entry.name)
                return self.settle_s
            if known is not None and known.state == COMPLETED:
                target = file_as_done(folder.inbox, entry)
                log.info("hot folder %s: %s has the same content and options as %s, already processed into %s; filed as %s without processing", folder.inbox, entry.name, known.source_name, known.output_dir, target)
                return 0.0
            if known is not None and known.state == FAILED:
                log.info("hot folder %s: %s has the same content and options as %s, which failed (%s); trying it again", folder.inbox, entry.name, known.source_name, (known.error or {}).get("code", "-"))
            elif known is not None and known.attempts >= self.max_attempts:
                error = HeadshotError("too_many_attempts", entry.name, f"{known.attempts} attempts were cut off", attempts=known.attempts, log=self.log_path)
                self.ledger.mark_failed(folder.inbox, content_key, _error_to_dict(error))
                self._file_failed(folder, entry, error)
                return 0.0
            output_dir = known.output_dir if known is not None else self._new_output_dir(folder, entry)
            self.ledger.start_attempt(folder.inbox, content_key, entry.name, output_dir)
            self._active_keys.add((folder.inbox, content_key))

        # 3. Process.
        try:
            return self._process(folder, entry, frames, signature, content_key, output_dir)
        finally:
            with self._claims:
                self._active_keys.discard((folder.inbox, content_key))

    def _process(self, folder: WatchedFolder, entry: Path, frames: list[Path], signature: tuple, content_key: str, output_dir: Path) -> float:
        """Run the processor for one claimed entry, then file the entry by the outcome.

        1. Check every frame decodes, so a truncated export fails here with a clear reason.
        2. Let the processor publish into the output folder and check that it published everything.
        3. File the source as done, unless it changed while it was processed.
        """

        # 1. and 2.
        started = time.monotonic()
        try:
            for frame in frames:
                check_decodable(frame)
            output_dir.mkdir(parents=True, exist_ok=True)
            remove_partial_files(output_dir)
            self.processor.process(frames, output_dir, self._request_options(folder))
            self._check_outputs(entry, output_dir)
        except HeadshotError as error:
            _name_relative_to(folder.inbox, error)
            self.ledger.mark_failed(folder.inbox, content_key, _error_to_dict(error))
            _remove_if_empty(output_dir)
            self._file_failed(folder, entry, error)
            return 0.0
        except ProcessorUnavailable as error:
            self.ledger.forget_attempt(folder.inbox, content_key)
            self._note_processor_unavailable(folder, entry, error)
            return self.retry_after_s

        # 3. File the source.
        self._note_processor_available()
        self.ledger.mark_completed(folder.inbox, content_key)
        if entry_signature(entry) != signature:
            log.warning("hot folder %s: %s changed while it was processed; its outputs in %s stay, and it is taken again", folder.inbox, entry.name, output_dir)
            return 0.0
        target = file_as_done(folder.inbox, entry)
        with self._counts_lock:
            self._completed += 1
        log.info("hot folder %s: %s processed into %s in %.1f s; filed as %s", folder.inbox, entry.name, output_dir, time.monotonic() - started, target)
        self._report(N_("{name}: done, the headshots are in {folder}."), name=entry.name, folder=output_dir)
        return 0.0

    def _report(self, message: str, **fields) -> None:
        if self.report is not None:
            self.report(gettext_for(self.language)(message).format(**fields))

    def _note_processor_unavailable(self, folder: WatchedFolder, entry: Path, error: Exception) -> None:
        """Hold back every entry for the retry time; log the first failure of an outage as a warning."""
        with self._counts_lock:
            first = self._processor_back_at == 0.0
            self._processor_back_at = time.monotonic() + self.retry_after_s
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "hot folder %s: %s waits, the processor is unavailable (%s); trying again every %.1f s", folder.inbox, entry.name, error, self.retry_after_s)
        if first:
            self._report(N_("{name} waits: the daemon cannot be reached. Trying again every {seconds:.0f} s."),
                         name=entry.name, seconds=self.retry_after_s)

    def _note_processor_available(self) -> None:
        with self._counts_lock:
            was_unavailable = self._processor_back_at != 0.0
            self._processor_back_at = 0.0
        if was_unavailable:
            log.info("hot folder: the processor is available again")

    def _request_options(self, folder: WatchedFolder) -> dict:
        options = {**folder.options, "origin": f"hotfolder:{folder.inbox}"}
        if self.language and not options.get("language"):
            options["language"] = self.language
        return options

    def _content_key(self, frames: list[Path], options: dict) -> str:
        """Return the sha256 of the frames' sha256s (in sorted order, so names do not count) and the request options."""
        digests = sorted(_file_sha256(frame) for frame in frames)
        description = json.dumps({"frames": digests, "options": options}, sort_keys=True, default=str)
        return hashlib.sha256(description.encode("utf-8")).hexdigest()

    def _new_output_dir(self, folder: WatchedFolder, entry: Path) -> Path:
        """Return `output/<name>`, or `<name>-2`, `<name>-3`, … when that folder exists or belongs to other content."""
        stem = entry_stem(entry)
        number = 1
        while True:
            candidate = folder.output / numbered_name(stem, len(stem), number)
            if not os.path.lexists(candidate) and not self.ledger.output_dir_claimed(candidate):
                return candidate
            number += 1

    def _check_outputs(self, entry: Path, output_dir: Path) -> None:
        missing = [name for name in REQUIRED_OUTPUTS if not (output_dir / name).is_file()]
        if missing:
            raise HeadshotError("outputs_incomplete", entry.name, f"missing in {output_dir}: {missing}", missing=", ".join(missing), log=self.log_path)

    def _file_failed(self, folder: WatchedFolder, entry: Path, error: HeadshotError) -> None:
        _name_relative_to(folder.inbox, error)
        target = file_as_failed(folder.inbox, entry, error, self.language)
        with self._counts_lock:
            self._failed += 1
        log.warning("hot folder %s: %s failed (%s: %s); filed as %s", folder.inbox, entry.name, error.code, error.detail or error.user_message("en"), target)
        self._report(N_("{name}: {error} It was moved to {target}."), name=entry.name, error=error.terminal_message(self.language), target=target)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _name_relative_to(inbox: Path, error: HeadshotError) -> None:
    """Name the file in an error relative to the inbox, because its inbox path is gone once it is filed.

    A daemon's message arrives already formatted, with the frame's absolute
    path in it, so the inbox part is cut out of the text as well.
    """
    if error.path and Path(error.path).is_absolute() and inbox in Path(error.path).parents:
        error.path = str(Path(error.path).relative_to(inbox))
    if isinstance(error, ReportedError):
        error.message = error.message.replace(f"{inbox}{os.sep}", "")


def _error_to_dict(error: HeadshotError) -> dict:
    return {"code": error.code, "path": error.path, "detail": error.detail, "params": error.params, "message": error.user_message()}
