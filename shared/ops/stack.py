"""What `flowbin up` does: the whole stack on embedded defaults, in one foreground process.

The order matters: the database and the admin come first (the API needs them), Redis next (every
process needs it), then the Procfile's processes under honcho. On Ctrl-C or SIGTERM honcho stops
its children first and Redis last, so workers can still requeue or finish their work. If this
process is killed instead, its reaper (shared/ops/reaper.py) stops them. The stop is warm: each
process gets its SIGTERM alone (not its pool processes), and ``FLOWBIN_SHUTDOWN_GRACE`` seconds to
finish its running steps before what is left is killed. The console shows a line
per process started or stopped; each process's output goes to its log file (process_logs.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.process import Popen, Process

from shared.accounts import credentials, users
from shared.config import Settings
from shared.drive import Drive
from shared.errors import NotFound
from shared.ops import reaper
from shared.ops.embedded_redis import EmbeddedRedis
from shared.ops.process_logs import ProcessLogs
from shared.storage.locate import drive_storage
from shared.store import db, migrate

ADMIN_TOKEN_FILE = "admin_token"
LOGS_FOLDER = "logs"


def find_procfile(explicit: Path | None = None) -> Path:
    """The Procfile given, else ./Procfile, else the one of the checkout this code runs from."""
    checkout = Path(__file__).parents[2] / "Procfile"
    candidates = [explicit] if explicit else [Path("Procfile"), checkout]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise NotFound(
        f"no Procfile at {', '.join(str(c) for c in candidates)}: run `flowbin up` from the "
        "Flowbin checkout or pass --procfile"
    )


def load_procfile(path: Path) -> dict[str, str]:
    """Process name to shell command, parsed the way honcho parses it."""
    return dict(parse_procfile(path.read_text()).processes)


def resolve_admin_token(settings: Settings) -> str:
    """FLOWBIN_ADMIN_TOKEN if set, else a token generated once and kept in the data folder."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / ADMIN_TOKEN_FILE
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    token = credentials.new_token()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start, so the token is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def ensure_admin_user(settings: Settings, token: str) -> None:
    """The user ``admin``, authenticated by ``token``, with its drive folder."""
    with db.session_scope(settings.sql_url) as session:
        credentials.ensure_admin(session, token)
    Drive(drive_storage(settings)).space_home(users.ADMIN_USERNAME)


def bootstrap(settings: Settings) -> str:
    """Data folder, migrations and the admin user; returns the admin token."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.sql_url)
    token = resolve_admin_token(settings)
    ensure_admin_user(settings, token)
    # The children open their own connections; this process needs none while it supervises.
    db.engine_for(settings.sql_url).dispose()
    return token


def child_environment(settings: Settings, redis_url: str, admin_token: str) -> dict[str, str]:
    """os.environ overlaid with the resolved settings, so every child sees the same stack."""
    resolved = replace(
        settings,
        # Absolute, so children agree with this process whatever their working directory.
        data_dir=settings.data_dir.resolve(),
        drive_dir=str(settings.drive_root),
        redis_url=redis_url,
        admin_token=admin_token,
        flower_password=settings.flower_password or admin_token,
    )
    env = {**os.environ, **resolved.to_env()}
    # `celery` and `gunicorn` live beside this interpreter, which may be an unactivated venv.
    bin_dir = str(Path(sys.executable).parent)
    path = env.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join(filter(None, [bin_dir, path]))
    return env


@dataclass(frozen=True)
class Urls:
    api: str
    docs: str
    flower: str


def urls(settings: Settings) -> Urls:
    host = settings.api_host
    # A wildcard bind is reachable on loopback; print an address a browser can open.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    return Urls(
        api=f"http://{host}:{settings.api_port}/api/v1",
        docs=f"http://{host}:{settings.api_port}/docs",
        flower=f"http://{host}:{settings.flower_port}",
    )


def _without_password(url: str) -> str:
    """The URL to show: an embedded Redis's password stays in its data folder."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def banner(settings: Settings, admin_token: str, redis_url: str) -> str:
    """What `flowbin up` prints before handing over; the first two lines are meant to be parsed."""
    found = urls(settings)
    password = "FLOWBIN_FLOWER_PASSWORD" if settings.flower_password else "the admin token"
    return "\n".join(
        [
            f"Flowbin API: {found.api}",
            f"Admin token: {admin_token}",
            f"API docs: {found.docs}",
            f"Flower: {found.flower} (user {settings.flower_user}, password: {password})",
            f"Redis: {_without_password(redis_url)}",
            f"Data folder: {settings.data_dir.resolve()}",
            f"Process logs: {(settings.data_dir / LOGS_FOLDER).resolve()}/<process>.log",
            "Press Ctrl-C to stop.",
        ]
    )


class _StackManager(Manager):
    """honcho's Manager, noting whether the stop was asked for (a signal) or a child died, and
    telling the reaper about each process it starts.

    Its stop is a warm one: SIGTERM goes to each process itself, not to its process group as
    honcho sends it, so the Celery worker's pool processes do not get it (the Procfile execs the
    worker, so the process is Celery's main one): the worker stops taking steps and lets the
    running ones finish. A line the shell runs as a child still gets honcho's group signal.
    What still runs ``grace`` seconds later (never less than honcho's own wait) is killed with
    its whole group; a step killed so is not acknowledged and comes back to a worker
    (acks_late)."""

    stop_requested = False

    def __init__(self, printer: ProcessLogs, watcher: reaper.Reaper | None, grace: float):
        super().__init__(printer)
        self._process_ctor = functools.partial(_WatchedProcess, watcher=watcher)
        self._grace = grace
        self._terminated_at: float | None = None

    def _killall(self, force: bool = False) -> None:
        if force:
            super()._killall(force=True)
            return
        self._terminated_at = time.monotonic()
        for name, process in self._processes.items():
            if "returncode" in process:
                continue
            pid = process["pid"]
            self._system_print(f"sending SIGTERM to {name} (pid {pid})\n")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if _is_shell(pid):
                    # A Procfile line the shell did not exec: the shell would not pass the
                    # signal on, so its group gets it, as honcho sends it.
                    os.killpg(pid, signal.SIGTERM)
                else:
                    os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        # honcho calls this on every turn of its loop once its own short wait is over.
        if self._terminated_at is not None and time.monotonic() - self._terminated_at < self._grace:
            return
        super().kill()

    def _start(self) -> None:
        # loop() installs honcho's SIGINT/SIGTERM handlers just before calling _start: wrap them.
        for signum in (signal.SIGINT, signal.SIGTERM):
            honcho_handler = signal.getsignal(signum)

            def handler(received, frame, honcho_handler=honcho_handler):
                self.stop_requested = True
                honcho_handler(received, frame)

            signal.signal(signum, handler)
        super()._start()


SHELLS = frozenset({"sh", "dash", "bash", "zsh"})


def _is_shell(pid: int) -> bool:
    """Whether the process is a shell running a Procfile line (Linux's /proc says; elsewhere
    every process is taken for the command itself)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in SHELLS
    except OSError:
        return False


class _WatchedProcess(Process):
    """honcho's runner of one process (a forked copy of `flowbin up`), telling the reaper the
    session of the process it starts."""

    def __init__(self, *args, watcher: reaper.Reaper | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._watcher = watcher
        self._child_ctor = self._start_watched

    def _start_watched(self, cmd, **kwargs) -> Popen:
        child = Popen(cmd, **kwargs)  # honcho's: in a session of its own
        if self._watcher is not None:
            self._watcher.watch(child.pid)
            self._watcher.forget()
        return child


class _Stop(Exception):
    """SIGTERM before honcho takes over: unwind like Ctrl-C so Redis is stopped too."""


def _raise_stop(signum, frame) -> None:
    raise _Stop()


def up(
    settings: Settings,
    *,
    procfile: Path | None = None,
    concurrency: int | None = None,
    verbose: bool = False,
) -> int:
    """Run the whole stack until Ctrl-C or SIGTERM; 0 on a requested stop."""
    procfile = find_procfile(procfile)
    commands = load_procfile(procfile)
    if concurrency is not None:
        settings = replace(settings, worker_concurrency=concurrency)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_stop)
    embedded: EmbeddedRedis | None = None
    printer = ProcessLogs(settings.data_dir / LOGS_FOLDER, verbose=verbose)
    # Stops what this process starts if it dies without stopping it (a SIGKILL).
    watcher = reaper.Reaper.start() if reaper.available() else None
    try:
        admin_token = bootstrap(settings)
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir / "redis").start()
            if watcher is not None:
                watcher.watch(embedded.process.pid)  # started in a session of its own
            redis_url = embedded.url
        env = child_environment(settings, redis_url, admin_token)
        print(banner(settings, admin_token, redis_url), flush=True)
        manager = _StackManager(printer, watcher, settings.shutdown_grace)
        for name, command in commands.items():
            # Run from the Procfile's folder, as `honcho start` does, so a checkout imports.
            manager.add_process(name, command, env=env, cwd=str(procfile.parent))
        manager.loop()
        if manager.stop_requested:
            return 0
        print("a Flowbin process stopped by itself, so the stack was stopped", file=sys.stderr)
        return manager.returncode if manager.returncode and manager.returncode > 0 else 1
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        # A second Ctrl-C while Redis flushes its AOF must not leave it running: ignore it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if embedded is not None:
            embedded.stop()
        printer.close()
        signal.signal(signal.SIGTERM, previous_sigterm)
        signal.signal(signal.SIGINT, signal.default_int_handler)
