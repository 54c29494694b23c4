"""gunicorn's configuration for the API (``gunicorn --config python:api.gunicorn_conf ...``):
prometheus_client's multiprocess mode, so that ``/metrics``, answered by any one of gunicorn's
worker processes, counts the requests of all of them (shared/metrics/api_series.py).

Each worker process keeps its series in files of one folder: ``PROMETHEUS_MULTIPROC_DIR`` if
the environment sets it (emptied at start: files of an earlier run would count again), else a
new temporary folder for this gunicorn, removed when it stops. It is set before any worker
process starts, and so before any of them imports prometheus_client, which reads it then.

gunicorn's control socket (for ``gunicornc``) is in the stack's data folder, not at gunicorn's
default, one path for all of a user's gunicorns: a second stack on the machine would take that
over, and the first of them to stop would remove it from under the other."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from shared.config import Settings

FOLDER = "PROMETHEUS_MULTIPROC_DIR"
_made: list[str] = []

# Read by gunicorn as its --control-socket setting. A path longer than a Unix socket address
# allows (about 107 bytes) only costs the socket: gunicorn logs a warning and serves on.
control_socket = str(Settings.from_env().data_dir.resolve() / "gunicorn.ctl")


def on_starting(server) -> None:
    folder = os.environ.get(FOLDER)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="flowbin-api-metrics-")
        _made.append(folder)
        os.environ[FOLDER] = folder


def child_exit(server, worker) -> None:
    # A dead process's gauges (its sync runner pool) stop counting; its counters still do.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
