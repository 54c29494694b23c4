"""Fixtures for every tier: a real Redis, real SQL stores, real Celery worker processes.

Redis: FLOWBIN_TEST_REDIS_URL if set, else an embedded redis-server started for the session.
SQL: SQLite always; PostgreSQL when FLOWBIN_TEST_DATABASE_URL is set. Under CI=true a missing
PostgreSQL is a failure, not a skip, so CI cannot go green without testing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.config import Settings
from shared.drive import Drive
from shared.store.db import engine_for, session_scope
from shared.store.migrate import upgrade
from tests.support import wait_for

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgresql"]
REDIS_DB = {"sqlite": 1, "postgresql": 2}


@pytest.fixture(scope="session")
def redis_server_url():
    given = os.environ.get("FLOWBIN_TEST_REDIS_URL")
    if given:
        yield given.rstrip("/")
        return
    from shared.ops.embedded_redis import EmbeddedRedis

    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"flowbin-test-redis-{os.getpid()}"
    server = EmbeddedRedis(data_dir)
    server.start()
    try:
        yield server.base_url.rstrip("/")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def postgres_url() -> str | None:
    url = os.environ.get("FLOWBIN_TEST_DATABASE_URL")
    if not url:
        if IN_CI:
            pytest.fail(
                "CI=true but FLOWBIN_TEST_DATABASE_URL is not set: store tests must run "
                "against PostgreSQL in CI"
            )
        pytest.skip("PostgreSQL tests need FLOWBIN_TEST_DATABASE_URL")
    return url


def fresh_database(backend: str, tmp_path: Path, schema: str) -> str:
    """An empty database URL. On PostgreSQL each kind of user gets its own ``schema`` (through
    the connection's search_path) in the one database CI provides: the session's worker and beat
    keep querying the stack's schema while store tests drop and recreate theirs, and dropping a
    schema those processes read would deadlock with them."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'flowbin.db'}"
    server = make_url(postgres_url())
    url = server.update_query_dict({"options": f"-csearch_path={schema}"})
    with engine_for(server.render_as_string(hide_password=False)).begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """A migrated, empty store on each backend (function scope, for store tests)."""
    url = fresh_database(request.param, tmp_path, schema="store_tests")
    upgrade(url)
    return url


@pytest.fixture
def postgresql_store(tmp_path) -> str:
    """A migrated, empty store on PostgreSQL alone, for what only PostgreSQL runs."""
    url = fresh_database("postgresql", tmp_path, schema="store_tests")
    upgrade(url)
    return url


class ApiUser:
    """Calls the API's test client as one of the session's users (``tokens`` by name)."""

    client: object
    tokens: dict[str, str]

    def headers(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def upload(self, path: str, data: bytes, user: str = "alice") -> None:
        response = self.client.put(f"/api/v1/drive/{path}", data=data, headers=self.headers(user))
        assert response.status_code == 200, response.get_json()


@dataclass
class Stack(ApiUser):
    """A migrated store, a real worker process, and the API's test client, on one backend."""

    backend: str
    settings: Settings
    client: object
    tokens: dict[str, str]
    worker: subprocess.Popen
    worker_log: Path


def start_celery(settings: Settings, arguments: list[str], log_path: Path) -> subprocess.Popen:
    """A real `celery -A workers ...` process with the settings' environment."""
    env = {**os.environ, **settings.to_env()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "celery", "-A", "workers", *arguments]
    log = log_path.open("ab")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_worker(
    settings: Settings,
    name: str,
    log_path: Path,
    concurrency: int = 2,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen:
    return start_celery(
        settings,
        [
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            *extra_args,
        ],
        log_path,
    )


def wait_worker_ready(app, name: str, timeout: float = 60.0) -> None:
    def answered():
        replies = app.control.ping(timeout=0.5) or []
        return any(name in "".join(reply) for reply in replies)

    wait_for(answered, timeout=timeout, message=f"worker {name} to answer ping")


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request, redis_server_url, tmp_path_factory):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"stack-{backend}")
    url = fresh_database(backend, tmp, schema="stack")
    upgrade(url)
    settings = Settings(
        data_dir=tmp / "var",
        database_url=url,
        redis_url=f"{redis_server_url}/{REDIS_DB[backend]}",
        default_step_timeout=60,
        visibility_timeout=300,
        # The http step tests' services listen on 127.0.0.1; other loopback addresses stay
        # refused, which the guard's tests use.
        allowed_networks="127.0.0.1/32",
    )
    settings.data_dir.mkdir(parents=True)
    tokens = {}
    with session_scope(url) as session:
        for username, admin in (("alice", False), ("bob", False), ("root", True)):
            create_user(session, username, is_admin=admin)
            tokens[username] = create_token(session, username)
            Drive(settings.drive_root).space_home(username)

    from api.app import create_app

    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    log_path = tmp / "worker.log"
    worker = start_worker(settings, f"test-{backend}", log_path)
    try:
        wait_worker_ready(celery_app, f"test-{backend}")
        yield Stack(backend, settings, app.test_client(), tokens, worker, log_path)
    finally:
        stop_worker(worker)
        if request.session.testsfailed and log_path.exists():
            sys.stderr.write(f"\n--- worker log ({backend}) ---\n")
            sys.stderr.write(log_path.read_text(errors="replace")[-6000:])


@pytest.fixture
def stack_settings(stack) -> Settings:
    return replace(stack.settings)


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """A real S3-compatible object store (SeaweedFS) with a bucket, for the session."""
    from tests import seaweedfs

    yield from seaweedfs.serve(tmp_path_factory.mktemp("seaweedfs"))
