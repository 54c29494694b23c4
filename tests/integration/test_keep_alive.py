"""The API as the Procfile runs it (gunicorn, its gthread workers) keeps an idle keep-alive
connection open longer than clients poll: a client that polls every 2.0 s, gunicorn's default
keep-alive timeout, once got a connection reset in 30 requests, its request racing the server's
close. Now the timeout is 75 s, above any common polling interval (1-60 s)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.config import Settings
from shared.ops.stack import find_procfile, load_procfile
from shared.store.migrate import upgrade
from tests.conftest import REPO
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration
OLD_TIMEOUT = 2.0  # gunicorn's default keep-alive, seconds


def test_polls_at_the_old_timeout_keep_their_connection(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", redis_url="redis://127.0.0.1:1/0")
    settings.data_dir.mkdir()
    upgrade(settings.sql_url)
    port = free_port()
    env = {
        **os.environ,
        **settings.to_env(),
        "FLOWBIN_API_PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = load_procfile(find_procfile())["api"]
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen(
        command, shell=True, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def answers() -> bool:
            try:
                connection.request("GET", "/health")
                return connection.getresponse().read() is not None
            except OSError:  # refused while it binds
                connection.close()
                return False

        wait_for(answers, timeout=60, message="the API to answer")
        local = connection.sock.getsockname()
        # A few polls idle exactly the old timeout, and one a little past it: each on the same
        # connection (http.client never reconnects by itself: a closed one raises here).
        for idle in (OLD_TIMEOUT, OLD_TIMEOUT, OLD_TIMEOUT, OLD_TIMEOUT + 1.0):
            time.sleep(idle)  # the idle time under test, not a wait for something
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200 and b"OK" in response.read()
            assert connection.sock.getsockname() == local, "the connection was replaced"
        connection.close()
    finally:
        os.killpg(api.pid, 15)
        api.wait(timeout=30)
        log.close()
