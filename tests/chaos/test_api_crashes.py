"""The API killed at the worst moments: an async run's process between recording the job and
publishing its first steps, and a sync run's runner process killed by the run's own UDF."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.engine.publication import PUBLISH_GRACE
from shared.store.db import session_scope
from shared.store.models import Job
from tests.chaos.support import assert_no_overlap, report, runs_in
from tests.conftest import REPO
from tests.support import wait_for
from workers.names import RECOVER_STALLED, RECOVERY_PRIORITY

pytestmark = pytest.mark.chaos

WORK_STEPS = ["read", "first", "second"]


def die_while_submitting(lane, body: dict, publishes: int) -> None:
    """Submit ``body`` from an API process that is SIGKILLed after ``publishes`` publishes."""
    env = {
        **os.environ,
        **lane.settings.to_env(),
        "CHAOS_RUN_BODY": json.dumps(body),
        "CHAOS_RUN_TOKEN": lane.tokens["alice"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.die_at_publish", str(publishes)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)


def recovery_rounds(lane, worker) -> int:
    """How many recovery rounds ``worker`` has finished."""
    inspect = lane.celery_app.control.inspect(timeout=5, destination=[worker.hostname])
    stats = inspect.stats() or {}
    return sum(found["total"].get(RECOVER_STALLED, 0) for found in stats.values())


def run_recovery(lane, worker) -> None:
    """One round of beat's recovery task, on the lane's only worker, waited for."""
    before = recovery_rounds(lane, worker)
    lane.celery_app.send_task(RECOVER_STALLED, priority=RECOVERY_PRIORITY, ignore_result=True)
    wait_for(lambda: recovery_rounds(lane, worker) > before, timeout=60, message="a round")


def test_an_api_killed_between_recording_a_run_and_publishing_it_does_not_strand_the_job(
    chaos, redis_server_url
):
    lane = chaos.private_lane(redis_server_url)
    control = chaos.control("runs")
    worker = chaos.start_worker(lane, "api-crash", concurrency=2)
    runtime = {"control_dir": str(control), "work_seconds": 0.05}

    def body(label: str, files: int) -> dict:
        input_dir, output_dir = chaos.inputs(label, files)
        return {
            "binary_path": chaos.binaries["work"],
            "input_dir": input_dir,
            "output_dir": output_dir,
            "job_id": f"{chaos.backend}-{label}",
            "settings": {"runtime_config": runtime},
        }

    # Killed before its first publish, and after the first of three.
    unsent, half_sent = body("unsent", 3), body("half-sent", 3)
    die_while_submitting(lane, unsent, publishes=0)
    die_while_submitting(lane, half_sent, publishes=1)
    crashed = [unsent["job_id"], half_sent["job_id"]]
    normal = lane.submit(chaos.binaries["work"], *chaos.inputs("normal", 2), runtime_config=runtime)
    chaos.wait_ended([normal], timeout=60)
    wait_for(
        lambda: chaos.files(half_sent["job_id"])[0].status == "complete",
        timeout=60,
        message="the one published file to finish",
    )

    jobs = chaos.jobs([*crashed, normal])
    assert jobs[normal].unpublished_since is None  # its API confirmed its steps sent
    assert jobs[unsent["job_id"]].status == "queued"
    stranded = {job_id: chaos.files(job_id) for job_id in crashed}
    for job_id in crashed:
        assert jobs[job_id].unpublished_since is not None
        for row in stranded[job_id][1 if job_id == half_sent["job_id"] else 0 :]:
            assert row.next_task_id and row.claimed_by is None and row.attempts == 0

    # Within the grace, a sender may still be publishing: recovery leaves the jobs alone.
    run_recovery(lane, worker)
    for job_id in crashed:
        tokens = [row.next_task_id for row in chaos.files(job_id)]
        assert tokens == [row.next_task_id for row in stranded[job_id]]
    # The grace passing, without waiting a minute for it.
    with session_scope(chaos.url) as session:
        for job_id in crashed:
            mark = jobs[job_id].unpublished_since - PUBLISH_GRACE - timedelta(seconds=1)
            session.execute(update(Job).where(Job.id == job_id).values(unpublished_since=mark))
    began = time.monotonic()
    run_recovery(lane, worker)
    chaos.wait_ended(crashed, timeout=60)
    recovered = time.monotonic() - began

    files = sum(chaos.assert_complete_once(job_id, WORK_STEPS) for job_id in crashed)
    for job_id, job in chaos.jobs(crashed).items():
        assert job.unpublished_since is None, job_id  # the recovery round confirmed its sends
    counts = assert_no_overlap(runs_in(control), lambda run: None)
    assert counts["reruns"] == 0  # every step ran once: the published file was not restarted
    report(
        "API killed between insert and publish",
        chaos.backend,
        kills=len(crashed),
        jobs=len(crashed),
        files=files,
        seconds_to_recover=round(recovered, 1),
    )


def test_a_sync_run_whose_udf_kills_its_runner_is_a_422_and_the_next_one_works(chaos):
    def sync(content: bytes):
        body = {
            "binary_path": chaos.binaries["sync"],
            "files": [{"file_name": "a.txt", "file_content": base64.b64encode(content).decode()}],
        }
        return chaos.lane.client.post(
            "/api/v1/flow/run_binary_sync", data=json.dumps(body), headers=chaos.lane.headers()
        )

    runners = []
    seconds = []
    for _ in range(2):
        killed = sync(b"die")
        assert killed.status_code == 422, killed.get_json()
        message = killed.get_json()["msg"]
        assert "exit code -9" in message and "a UDF may have exited or crashed it" in message
        [job_id] = re.findall(r"\(job ([^)]+)\)", message)
        [job] = chaos.jobs([job_id]).values()
        assert job.status == "failed" and "exit code -9" in job.message
        began = time.monotonic()
        again = sync(b"fine")
        seconds.append(round(time.monotonic() - began, 2))
        assert again.status_code == 200, again.get_json()
        [record] = again.get_json()["records"]
        assert record["error"] is None
        runners += [pair["value"] for pair in record["results"] if pair["key"] == "runner"]
    # One runner per API process here: each run after a kill had a fresh one.
    assert len(runners) == 2 and runners[0] != runners[1]
    report(
        "sync run's runner SIGKILLed by its UDF",
        chaos.backend,
        kills=2,
        jobs=4,
        files=4,
        seconds_for_the_next_run=seconds,
    )
