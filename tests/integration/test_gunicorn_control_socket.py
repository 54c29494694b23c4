"""Two stacks on one machine, as the Procfile runs their API: each gunicorn keeps its control
socket (``gunicornc``'s) in its own data folder. At gunicorn's default, one path for all of a
user's gunicorns, the second took the first's socket over, and the first to stop removed it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from gunicorn.ctl.client import ControlClient

from shared.config import Settings
from shared.ops.stack import find_procfile, load_procfile
from shared.store.migrate import upgrade
from tests.conftest import REPO
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration


def start_api(data_dir: Path, home: Path, log: Path) -> subprocess.Popen:
    settings = Settings(data_dir=data_dir, redis_url="redis://127.0.0.1:1/0")
    data_dir.mkdir(parents=True)
    upgrade(settings.sql_url)
    env = {
        **{name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"},
        **settings.to_env(),
        # gunicorn's default socket would be ~/.gunicorn/gunicorn.ctl for both stacks.
        "HOME": str(home),
        "FLOWBIN_API_PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with log.open("wb") as sink:
        return subprocess.Popen(
            load_procfile(find_procfile())["api"], shell=True, cwd=REPO, env=env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def arbiter_data_dir(socket_path: Path) -> str:
    """The data folder of the gunicorn that answers on ``socket_path``, from its environment."""
    with ControlClient(str(socket_path), timeout=10) as client:
        pid = client.send_command("show stats")["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in environ if b"=" in entry)[
        "FLOWBIN_DATA_DIR"
    ]


def is_socket(path: Path) -> bool:
    return path.exists() and stat.S_ISSOCK(path.stat().st_mode)


def stop(api: subprocess.Popen) -> None:
    os.killpg(api.pid, signal.SIGTERM)
    api.wait(timeout=30)


def test_two_stacks_keep_their_own_control_socket(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    first_dir, second_dir = tmp_path / "first" / "var", tmp_path / "second" / "var"
    first = start_api(first_dir, home, tmp_path / "first.log")
    second = start_api(second_dir, home, tmp_path / "second.log")
    try:
        first_socket, second_socket = first_dir / "gunicorn.ctl", second_dir / "gunicorn.ctl"
        wait_for(lambda: is_socket(first_socket) and is_socket(second_socket), timeout=60,
                 message="both control sockets")  # fmt: skip
        assert arbiter_data_dir(first_socket) == str(first_dir)
        assert arbiter_data_dir(second_socket) == str(second_dir)
        assert not (home / ".gunicorn" / "gunicorn.ctl").exists()

        stop(first)
        # The shell that ran the Procfile line exits first; its gunicorn removes its socket as
        # it finishes stopping.
        wait_for(lambda: not first_socket.exists(), timeout=60, message="the first socket gone")
        # The other stack's socket stays, and still reaches its own gunicorn.
        assert arbiter_data_dir(second_socket) == str(second_dir)
    finally:
        for api in (first, second):
            if api.poll() is None:
                stop(api)
