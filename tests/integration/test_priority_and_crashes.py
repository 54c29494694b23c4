"""Strict priorities with a busy worker slot; steps whose process is killed, whose claim lapsed
or whose database connection was dropped mid-run."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace

import pytest

from api.app import create_app
from tests.conftest import start_worker, stop_worker, wait_worker_ready
from tests.integration.control_udfs import GATED_FLOW, HOLD_FLOW, ORDER_FLOW
from tests.integration.flows import invoice, wait_done
from tests.integration.test_job_control import Control, compile_project, start_run
from tests.support import wait_for

pytestmark = pytest.mark.integration

SOLO_REDIS_DB = {"sqlite": 5, "postgresql": 6}


def compile_flow(stack, root: str, flow: str) -> str:
    """The flow compiled, with one input file (a.txt) beside it."""
    stack.upload(f"{root}/input/a.txt", invoice("1", "1"))
    return compile_project(stack, root, flow)


@pytest.fixture
def solo_client(stack, tmp_path):
    """The same store and drive, served by one worker with a single slot on its own queue."""
    base = stack.settings.redis_url.rsplit("/", 1)[0]
    settings = replace(stack.settings, redis_url=f"{base}/{SOLO_REDIS_DB[stack.backend]}")
    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    name = f"solo-{stack.backend}"
    worker = start_worker(settings, name, tmp_path / "solo.log", concurrency=1)
    try:
        wait_worker_ready(celery_app, name)
        yield app.test_client()
    finally:
        stop_worker(worker)


def test_a_priority_9_job_submitted_last_starts_next(stack, solo_client, tmp_path):
    control = Control(tmp_path / "control")
    hold = compile_flow(stack, f"alice/prio-hold-{stack.backend}", HOLD_FLOW)
    order = compile_flow(stack, f"alice/prio-order-{stack.backend}", ORDER_FLOW)

    def submit(binary: str, root: str, priority: int) -> str:
        body = {
            "binary_path": binary,
            "input_dir": f"{root}/input",
            "settings": {
                "priority": priority,
                "runtime_config": {"control_dir": str(control.path)},
            },
        }
        response = solo_client.post(
            "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=stack.headers()
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]["job_id"]

    try:
        submit(hold, f"alice/prio-hold-{stack.backend}", 0)
        wait_for(lambda: control.lines("started"), message="the only slot to be busy")
        backlog = [submit(order, f"alice/prio-order-{stack.backend}", 0) for _ in range(5)]
        urgent = submit(order, f"alice/prio-order-{stack.backend}", 9)
    finally:
        control.open_gate()
    wait_for(lambda: len(control.lines("order")) == 6, message="all queued jobs to run")
    ran = control.lines("order")
    assert ran[0] == urgent
    assert ran[1:] == backlog  # equal priorities keep their order


def test_a_step_whose_process_is_killed_is_redelivered_and_finishes(stack, tmp_path):
    control = Control(tmp_path / "control")
    root = f"alice/kill-{stack.backend}"
    binary = compile_flow(stack, root, GATED_FLOW)
    job_id = start_run(stack, root, binary, control, files=[])  # compile_flow uploaded a.txt
    try:
        [first] = wait_for(lambda: control.lines("started"), message="the step to start")
        os.kill(int(first.split()[1]), signal.SIGKILL)
        wait_for(
            lambda: len(control.lines("started")) == 2,
            timeout=60,
            message="the killed step to be delivered again",
        )
    finally:
        control.open_gate()
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE"
    assert control.lines("count") == ["after a.txt"]  # the next step ran once
    assert len(control.lines("passed")) == 1


def test_a_step_whose_claim_lapsed_is_started_again_by_the_recovery_task(stack, tmp_path):
    """A worker died mid-step and its message is gone (a Redis without persistence lost it):
    the store still holds the dead worker's claim. Beat's recovery task restarts the file."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from shared.store.db import session_scope
    from shared.store.models import Job, JobFile
    from workers.names import RECOVER_STALLED

    root = f"alice/stalled-{stack.backend}"
    binary = compile_flow(stack, root, GATED_FLOW)
    control = Control(tmp_path / "control")
    control.open_gate()
    job_id = start_run(stack, root, binary, control, files=[])  # compile_flow uploaded a.txt
    wait_done(stack, job_id)
    # Rewind the finished job to "running, step 1 held by a worker that died a while ago".
    with session_scope(stack.settings.sql_url) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", finished_at=None, files_done=0)
        )
        session.execute(
            update(JobFile)
            .where(JobFile.job_id == job_id)
            .values(
                status="pending",
                next_step=1,
                next_task_id=None,
                claimed_by="dead-worker-task",
                claimed_until=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    control.path.joinpath("count").unlink()

    app = stack.client.application.extensions["flowbin.celery"]
    app.send_task(RECOVER_STALLED, priority=0)
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE"
    assert control.lines("count") == ["after a.txt"]


def test_a_step_whose_database_connection_is_lost_is_sent_again_and_finishes(stack, tmp_path):
    """PostgreSQL drops every connection while a step runs (a restart, a failover): the step's
    next statement fails, and the task sends its message again instead of losing the step."""
    if stack.backend != "postgresql":
        pytest.skip("needs a database server that can drop its clients' connections")
    from sqlalchemy import text

    from shared.store.db import engine_for

    control = Control(tmp_path / "control")
    root = f"alice/dropped-{stack.backend}"
    binary = compile_flow(stack, root, GATED_FLOW)
    job_id = start_run(stack, root, binary, control, files=[])  # compile_flow uploaded a.txt
    engine = engine_for(stack.settings.sql_url)
    try:
        wait_for(lambda: control.lines("started"), message="the step to start")
        with engine.connect() as conn:
            dropped = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
        assert dropped >= 1  # the worker's connection among them
    finally:
        engine.dispose()  # this process's pooled connections were dropped too
        control.open_gate()
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE"
    # The held step could not record its end and ran again; the next step ran once.
    assert len(control.lines("started")) == 2
    assert control.lines("count") == ["after a.txt"]
