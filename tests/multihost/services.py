"""The processes of a Flowbin deployment, each started on a lab host: Redis and PostgreSQL on
the services host, the API (gunicorn) and beat on the API host, Celery workers on worker hosts.
Each process is a real server bound to its host's own address, so everything between hosts
crosses the lab's network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import requests

from shared.config import Settings
from shared.ops.embedded_redis import find_redis_server
from tests.multihost.netns import Host
from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]
POSTGRES_BIN = Path("/usr/lib/postgresql")
REDIS_PORT = 6379
POSTGRES_PORT = 5432
API_PORT = 8000


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian's layout), if any."""
    versions = sorted(POSTGRES_BIN.glob("*/bin/postgres"), key=lambda p: p.parent.parent.name)
    return versions[-1].parent if versions else None


@dataclass
class Processes:
    """Every process started for the lab, stopped together at the end."""

    logs: Path
    running: dict[str, subprocess.Popen] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)  # removed after the processes stop

    def start(self, name: str, host: Host, command: list[str], env=None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            host.command(command), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)

    def tail(self, name: str, size: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""


def start_redis(processes: Processes, host: Host, folder: Path) -> str:
    processes.start(
        "redis",
        host,
        [
            find_redis_server(),
            "--bind",
            host.address,
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            # Clients come from other hosts; the lab's network is the protection.
            "--protected-mode",
            "no",
            "--dir",
            str(folder),
        ],
    )
    url = f"redis://{host.address}:{REDIS_PORT}"

    wait_for(lambda: _answers(lambda: redis.Redis.from_url(url).ping()), timeout=20)
    return url


def start_postgres(processes: Processes, host: Host, network: str) -> str:
    """A PostgreSQL cluster of its own, run as the postgres user, listening on the host's
    address only and trusting the lab's ``network``; returns the SQLAlchemy URL of its
    database ``flowbin``."""
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    # The postgres user must own the cluster's folder; pytest's tmp folders are root's only.
    folder = Path(tempfile.mkdtemp(prefix="flowbin-lab-pg-"))
    processes.folders.append(folder)
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(data)]
        + ["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {network} trust\n")
    processes.start(
        "postgres",
        host,
        ["runuser", "-u", "postgres", "--", str(bin_dir / "postgres"), "-D", str(data)]
        + ["-c", f"listen_addresses={host.address}", "-c", f"port={POSTGRES_PORT}"]
        + ["-c", f"unix_socket_directories={folder}", "-c", "fsync=off"]
        + ["-c", "max_connections=200"],
    )
    server = f"host={host.address} port={POSTGRES_PORT} user=postgres dbname=postgres"
    wait_for(lambda: _answers(lambda: psycopg.connect(server, connect_timeout=2).close()), 30)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE flowbin")
    return f"postgresql+psycopg://postgres@{host.address}:{POSTGRES_PORT}/flowbin"


def child_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **settings.to_env()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def start_api(processes: Processes, host: Host, settings: Settings) -> str:
    processes.start(
        "api",
        host,
        [sys.executable, "-m", "gunicorn", "--config", "python:api.gunicorn_conf"]
        + ["--bind", f"{host.address}:{API_PORT}", "--workers", "2", "--threads", "4"]
        + ["api.wsgi:app"],
        env=child_env(settings),
    )
    url = f"http://{host.address}:{API_PORT}"
    wait_for(lambda: _answers(lambda: requests.get(f"{url}/health", timeout=2).ok), 60)
    return url


def start_beat(processes: Processes, host: Host, settings: Settings, folder: Path) -> None:
    processes.start(
        "beat",
        host,
        [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO"]
        + ["--schedule", str(folder / "celerybeat-schedule")],
        env=child_env(settings),
    )


def start_worker(
    processes: Processes, host: Host, settings: Settings, name: str, concurrency: int
) -> subprocess.Popen:
    return processes.start(
        name,
        host,
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool", "prefork"]
        + ["--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", f"{name}@%h"]
        + ["--without-gossip", "--without-mingle"],
        env=child_env(settings),
    )


def _answers(call) -> bool:
    try:
        return call() is not False
    except Exception:  # noqa: BLE001 - any failure means "not up yet"
        return False
