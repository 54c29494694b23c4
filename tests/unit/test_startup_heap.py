"""The API's gunicorn workers and the worker's pool processes freeze what they built at startup,
so that a full garbage collection does not walk it (shared/ops/startup_heap.py). Each runs in a
process of its own: freezing is for the rest of a process's life."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.config import Settings
from tests.conftest import REPO

# An app's startup leaves some 150,000 objects; a bare interpreter a few thousand.
STARTUP_OBJECTS = 50_000


def frozen_after(code: str, tmp_path) -> tuple[int, int]:
    """The freeze count before and after ``code`` runs, in a new interpreter."""
    count = "gc.get_freeze_count()"
    script = "\n".join(["import gc", f"before = {count}", code, f"print(before, {count})"])
    env = {**os.environ, **Settings(data_dir=tmp_path).to_env()}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.split()[-2:]
    return int(before), int(after)


def test_a_gunicorn_worker_freezes_the_app_it_built(tmp_path):
    before, after = frozen_after("import api.wsgi", tmp_path)
    assert before == 0 and after > STARTUP_OBJECTS


def test_a_pool_process_freezes_what_it_inherited(tmp_path):
    # The signal a prefork child sends as it starts, with the worker's receivers connected: a
    # receiver that is not connected freezes nothing.
    code = "\n".join(
        [
            "import workers.tasks, workers.signals",
            "from celery.signals import worker_process_init",
            "worker_process_init.send(sender=None)",
        ]
    )
    before, after = frozen_after(code, tmp_path)
    assert before == 0 and after > STARTUP_OBJECTS
