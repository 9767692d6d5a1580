"""The daemon process: one lock, one socket, one database, one worker; `Daemon` is what the command and the tray drive.

`Daemon.start()` takes the lock (a second daemon gets `DaemonAlreadyRunning`),
resets jobs a killed daemon left running, listens, writes the discovery file
and starts the worker. `snapshot()` is cheap enough for a tray to poll.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import secrets
import socket
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pipeline.atomic import fsync_folder
from pipeline.errors import HeadshotError
from protos.headshot.v1 import headshot_pb2 as pb
from protos.headshot.v1 import headshot_pb2_grpc as pb_grpc

from .config import LOOPBACK_HOST, Config, load_config
from .convert import event_message
from .events import EventHub
from .files import remove_tree
from .service import HeadshotService
from .store import JobStore
from .worker import Runner, Worker, pipeline_runner

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["HeadshotService"].full_name
DATABASE_NAME = "jobs.sqlite3"
JOBS_FOLDER = "jobs"
RETENTION_SWEEP_INTERVAL_S = 3600.0
# sockaddr_un.sun_path is 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_SOCKET_PATH = 100
EXIT_ALREADY_RUNNING = 3


class DaemonAlreadyRunning(Exception):
    def __init__(self, pid: int | None, address: str | None):
        super().__init__(f"a daemon is already running (pid {pid}, address {address})")
        self.pid = pid
        self.address = address


@dataclass(frozen=True)
class DaemonSnapshot:
    """The daemon's state, queue length and running job, as a tray icon shows them."""

    state: str  # "stopped", "starting", "running", "stopping"
    address: str
    queue_length: int
    running_job_id: str | None


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("headshot-studio")
    except PackageNotFoundError:
        return "0+unknown"


def configure_logging(log_file: Path, to_stderr: bool = True, level: int = logging.INFO,
                      stderr_level: int = logging.NOTSET) -> None:
    """Log to a rotating file (5 MB, 5 kept) and, in the foreground, to stderr; one line per event.

    `stderr_level` keeps records below it out of the terminal only; the file still gets every record from `level` up.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(log_file, maxBytes=5_000_000, backupCount=5, encoding="utf-8")
    ]
    if to_stderr:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setLevel(stderr_level)
        handlers.append(terminal)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)


class Daemon:
    """The whole daemon: start() it, stop() it from any thread, wait() for it to end."""

    def __init__(self, config: Config | None = None, runner: Runner | None = None, hot_folders: bool = False):
        self.config = config or load_config()
        self.start_hot_folders = hot_folders
        # The hot-folder bridge (plugins.lightroom_bridge) once started; a tray reads its status() and pauses it.
        self.hot_folders = None
        self.folders = self.config.folders
        self.runner = runner
        self.version = package_version()
        self.address = ""
        self.token: str | None = None
        self.state = "stopped"
        self._lock_handle = None
        self._socket_path: Path | None = None
        self._server: grpc.Server | None = None
        self._health: health.HealthServicer | None = None
        self._store: JobStore | None = None
        self._hub: EventHub | None = None
        self._worker: Worker | None = None
        self._stopped = threading.Event()
        self._janitor_stop = threading.Event()
        self._janitor: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._wrote_discovery = False

    @property
    def jobs_dir(self) -> Path:
        return self.config.data_path / JOBS_FOLDER

    @property
    def log_path(self) -> Path:
        return self.folders.log_file

    # --- Start and stop ------------------------------------------------------------

    def start(self) -> None:
        """Take the lock, recover the queue, listen and start the worker; raises DaemonAlreadyRunning."""
        self.state = "starting"
        self._stopped.clear()
        self._janitor_stop.clear()
        try:
            # 1. Private folders and the single-instance lock.
            _make_private_folder(self.folders.runtime)
            self.config.data_path.mkdir(parents=True, exist_ok=True)
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            self._lock_handle = _acquire_lock(self.folders.lock_file, self.folders.discovery_file)

            # 2. The queue: reset what a killed daemon left running, drop expired and orphaned jobs.
            self._store = JobStore(self.config.data_path / DATABASE_NAME)
            self._hub = EventHub(self._store)
            self._recover()
            self._sweep_expired()
            self._remove_orphans()

            # 3. The gRPC server with health and reflection.
            self._worker = Worker(self._store, self._hub, self.jobs_dir, self.log_path, self.runner)
            self._server = self._build_server()
            self._listen()
            self._server.start()

            # 4. Tell clients where we are, then start working.
            _write_discovery(self.folders.discovery_file, {
                "address": self.address, "transport": self.config.transport, "pid": os.getpid(),
                "version": self.version, "token": self.token, "started": time.time(),
            })
            self._wrote_discovery = True
            self._worker.start()
            self._janitor = threading.Thread(target=self._janitor_loop, name="headshot-retention", daemon=True)
            self._janitor.start()
            if self.start_hot_folders:
                self._start_hot_folders()
        except BaseException:
            if self._server is not None:
                self._server.stop(0)
            if self._worker is not None:
                self._worker.stop(timeout=5.0)
            self._release()
            self.state = "stopped"
            self._stopped.set()
            raise
        self.state = "running"
        log.info("daemon %s listening on %s (pid %d, data %s)", self.version, self.address, os.getpid(),
                 self.config.data_path)

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving; the running job goes back to the queue. Safe to call twice and from any thread."""
        with self._state_lock:
            if self.state in ("stopping", "stopped"):
                return
            self.state = "stopping"
        log.info("daemon stopping")
        if self.hot_folders is not None:
            self.hot_folders.stop()
            self.hot_folders = None
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        if self._hub is not None:
            self._hub.close()
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1.0)
        if self._worker is not None and not self._worker.stop(timeout=30.0):
            log.error("the worker did not stop within 30 s; its job is recovered on the next start")
        self._janitor_stop.set()
        self._release()
        self.state = "stopped"
        self._stopped.set()
        log.info("daemon stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the daemon has stopped; False when `timeout` passed first."""
        return self._stopped.wait(timeout)

    def snapshot(self) -> DaemonSnapshot:
        queue_length = 0
        if self.state == "running" and self._store is not None:
            try:
                queue_length = self._store.pending_count()
            except Exception:
                log.exception("could not count the queue")
        running = self._worker.current_job_id if self._worker is not None else None
        return DaemonSnapshot(self.state, self.address, queue_length, running)

    # --- Parts of start -----------------------------------------------------------------

    def _build_server(self) -> grpc.Server:
        interceptors = []
        if self.config.transport == "tcp":
            self.token = secrets.token_urlsafe(32)
            interceptors.append(_TokenInterceptor(self.token))
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.config.rpc_threads, thread_name_prefix="grpc"),
            interceptors=interceptors,
        )
        pipeline_check = _pipeline_check if self.runner in (None, pipeline_runner) else None
        service = HeadshotService(self.config, self._store, self._hub, self._worker, self.jobs_dir, self.log_path,
                                  self.version, lambda: self.address, pipeline_check)
        pb_grpc.add_HeadshotServiceServicer_to_server(service, server)

        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        return server

    def _listen(self) -> None:
        if self.config.transport == "tcp":
            port = self._server.add_insecure_port(f"{self.config.host}:{self.config.port}")
            host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
            self.address = f"{host}:{port}"
            if self.config.host != LOOPBACK_HOST:
                log.warning("listening on %s, beyond this computer; every call needs the token", self.address)
            return

        path = _socket_path(self.folders.socket_path)
        _remove_stale_socket(path)
        previous_umask = os.umask(0o177)
        try:
            self._server.add_insecure_port(f"unix:{path}")
        finally:
            os.umask(previous_umask)
        os.chmod(path, 0o600)
        self._socket_path = path
        self.address = f"unix:{path}"

    def _start_hot_folders(self) -> None:
        """Start the hot-folder bridge as a client of this daemon; the daemon runs on without it if it fails."""
        try:
            from plugins.lightroom_bridge.bridge import start_in_daemon
        except ImportError as error:
            log.warning("hot folders are off: the bridge cannot be imported (%s)", error)
            return
        try:
            self.hot_folders = start_in_daemon(self.config, self.address, self.token)
        except Exception:
            log.exception("hot folders are off: the bridge failed to start")

    def _recover(self) -> None:
        def queued_event(job_id: str, position: int):
            return "queued", event_message(job_id, 0, queued=pb.Queued(position=position)).SerializeToString()

        def crashed_error(job):
            error = HeadshotError("job_crashed", None, f"{job.attempts} attempts", job=job.id,
                                  attempts=job.attempts, log=str(self.log_path))
            failed = pb.Failed(code=error.code, message=error.user_message(job.language or None),
                               detail=error.detail, log_path=str(self.log_path))
            event = ("failed", event_message(job.id, job.attempts, failed=failed).SerializeToString())
            return error.code, failed.message, error.detail, {"file": None, **error.params}, event

        requeued, given_up = self._store.recover(self.config.max_attempts, queued_event, crashed_error)
        for job in requeued:
            for leftover in (self.jobs_dir / job.id).glob("attempt-*"):
                remove_tree(leftover)
            log.warning("job %s: was running when the daemon stopped (attempt %d); queued again", job.id, job.attempts)
        for job in given_up:
            log.error("job %s: given up after %d attempts that ended with the daemon stopping", job.id, job.attempts)

    def _sweep_expired(self) -> None:
        cutoff = time.time() - self.config.retention_days * 86400
        expired = self._store.expired_jobs(cutoff)
        for job in expired:
            remove_tree(self.jobs_dir / job.id)
            self._store.delete_job(job.id)
        if expired:
            log.info("removed %d jobs finished more than %g days ago", len(expired), self.config.retention_days)

    def _remove_orphans(self) -> None:
        """Remove job folders without a database row: uploads cut off by a crash before they were queued."""
        known = self._store.known_job_ids()
        for folder in self.jobs_dir.iterdir():
            if folder.is_dir() and folder.name not in known:
                remove_tree(folder)
                log.info("removed the orphaned folder %s", folder)

    def _janitor_loop(self) -> None:
        while not self._janitor_stop.wait(RETENTION_SWEEP_INTERVAL_S):
            try:
                self._sweep_expired()
            except Exception:
                log.exception("the retention sweep failed; retrying in an hour")
        if self._store is not None:
            self._store.close()

    def _release(self) -> None:
        """Remove the socket and the discovery file (if they are ours) and drop the lock."""
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)
            self._socket_path = None
        if self._wrote_discovery:
            self.folders.discovery_file.unlink(missing_ok=True)
            self._wrote_discovery = False
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None


def _pipeline_check(request) -> None:
    """Let the pipeline check the request the way run_job will, so its errors reach the client up front."""
    from pipeline.process import validate_request

    validate_request(request)


class _TokenInterceptor(grpc.ServerInterceptor):
    """Reject every call without `authorization: Bearer <token>`; used on TCP."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        def deny(request, context):
            from .errors import abort_with
            from .errors import language_from

            error = HeadshotError("unauthenticated", None, "missing or wrong bearer token")
            abort_with(context, error, language_from(context.invocation_metadata()), "")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and hmac.compare_digest(str(value).encode(), self._expected):
                return continuation(handler_call_details)
        log.warning("rejected a call to %s without a valid token", handler_call_details.method)
        return self._deny


def _make_private_folder(folder: Path) -> None:
    """Create `folder` with mode 0700 and refuse one that another user owns."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name != "posix":
        return
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(errno.EPERM, "the runtime folder belongs to another user", str(folder))
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def _socket_path(preferred: Path) -> Path:
    """Return `preferred`, or a short private folder's socket when the path is too long for a Unix socket."""
    if len(os.fsencode(preferred)) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"headshot-{os.getuid()}-{digest}"
    _make_private_folder(folder)
    log.info("socket path %s is too long; using %s", preferred, folder / "daemon.sock")
    return folder / "daemon.sock"


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket a killed daemon left; anything else at that path, or a live listener, is an error."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise HeadshotError("socket_in_use", path, "a non-socket file is in the way")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        log.info("removed the stale socket %s", path)
        return
    finally:
        probe.close()
    raise HeadshotError("socket_in_use", path, "another process accepts connections on the socket")


def _acquire_lock(lock_file: Path, discovery_file: Path):
    """Hold an exclusive lock on `lock_file` for the daemon's lifetime; raise DaemonAlreadyRunning if taken."""
    handle = open(lock_file, "a+")
    try:
        os.chmod(lock_file, 0o600)
        if os.name == "posix":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        handle.close()
        pid = address = None
        try:
            discovery = json.loads(discovery_file.read_text(encoding="utf-8"))
            pid, address = discovery.get("pid"), discovery.get("address")
        except (OSError, ValueError):
            pass
        raise DaemonAlreadyRunning(pid, address) from None
    return handle


def _write_discovery(path: Path, values: dict) -> None:
    """Write the discovery file atomically with mode 0600, because it contains the token."""
    descriptor, temporary = tempfile.mkstemp(prefix=".daemon.", suffix=".json", dir=path.parent)
    try:
        os.chmod(temporary, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(values, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
