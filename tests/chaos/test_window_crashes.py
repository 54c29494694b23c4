"""The job window under crashes (shared/engine/window.py): a worker that ended a file and died
before sending the file that took its place, a pool process killed mid-step in a job whose
window is smaller than its files, and an API killed after recording a run whose first steps a
worker was to release, listing its big input folder first or not (shared/runs/input_listing.py)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.engine import window
from shared.engine.publication import PUBLISH_GRACE
from shared.engine.runner import StepRunner
from shared.engine.scheduling import StepCall
from shared.store.db import session_scope
from shared.store.models import Job
from tests.chaos.support import assert_no_overlap, kill_process, report, runs_in
from tests.chaos.test_api_crashes import die_while_submitting, run_recovery
from tests.chaos.test_worker_kills import queued_task_ids
from tests.support import wait_for
from workers.publisher import publish_step

pytestmark = pytest.mark.chaos

WORK_STEPS = ["read", "first", "second"]


def test_a_file_ended_by_a_worker_that_died_before_sending_its_successor_is_sent_again(
    chaos, redis_server_url
):
    """This process plays a worker of a job with a window of one file: it runs the three steps
    of the first file and never sends the step the last one returns, the first step of the
    file that took the place, as a worker killed between that commit and its publish would.
    The redelivery of the last step's message sends it, under a fresh token."""
    lane = chaos.private_lane(redis_server_url, job_window=1)
    runtime = {"control_dir": str(chaos.control("runs")), "work_seconds": 0}
    job_id = lane.submit(chaos.binaries["work"], *chaos.inputs("pair", 2), runtime_config=runtime)
    first, second = chaos.files(job_id)
    assert first.next_task_id and second.next_task_id == window.WAITING
    assert queued_task_ids(lane.redis()) == [first.next_task_id]

    runner = StepRunner(lane.settings)
    following = runner.run(StepCall(job_id, 0, 0, first.next_task_id))
    following = runner.run(following.call)
    last = following.call
    lost = runner.run(last)  # the worker dies here: never sent
    assert (lost.call.file_index, lost.call.step_index) == (1, 0)
    assert chaos.files(job_id)[1].next_task_id == lost.call.task_id

    again = runner.run(last)  # the redelivery of the last step's message
    assert (again.call.file_index, again.call.step_index) == (1, 0)
    assert again.call.task_id not in (lost.call.task_id, window.WAITING)
    assert chaos.files(job_id)[1].next_task_id == again.call.task_id  # the lost one is retired
    assert runner.run(last) is None  # nothing more the third time: the file was sent again
    publish_step(lane.celery_app, again)

    chaos.start_worker(lane, "window-redelivery", concurrency=1)
    chaos.wait_ended([job_id], timeout=60)
    chaos.assert_complete_once(job_id, WORK_STEPS)
    report("file ended, successor not sent", chaos.backend, jobs=1, files=2)


def test_a_pool_process_killed_mid_step_keeps_its_place_in_the_window(chaos, redis_server_url):
    lane = chaos.private_lane(redis_server_url, job_window=2)
    control = chaos.control("runs")
    worker = chaos.start_worker(lane, "window-kill", concurrency=2)
    runtime = {"control_dir": str(control), "work_seconds": 0.3}
    job_id = lane.submit(chaos.binaries["work"], *chaos.inputs("six", 6), runtime_config=runtime)

    def running_step():
        pool = set(worker.pool())
        return next(
            (run for run in runs_in(control) if run.ended is None and run.pid in pool), None
        )

    victim = wait_for(running_step, timeout=60, interval=0.02, message="a step running")
    began = time.monotonic()
    killed_at = kill_process(victim.pid, worker.process.pid)
    assert killed_at is not None
    chaos.wait_ended([job_id], timeout=120)
    recovered = time.monotonic() - began
    chaos.assert_complete_once(job_id, WORK_STEPS)
    counts = assert_no_overlap(runs_in(control), lambda run: killed_at if run == victim else None)
    assert counts["reruns"] >= 1  # the killed step ran again, in its file's place
    report(
        "pool process killed in a windowed job",
        chaos.backend,
        kills=1,
        jobs=1,
        files=6,
        seconds_to_finish=round(recovered, 1),
    )


@pytest.mark.parametrize("listed", [True, False], ids=["listed-by-a-worker", "recorded-by-submit"])
def test_an_api_killed_after_recording_a_run_of_many_files_leaves_its_release_to_recovery(
    chaos, redis_server_url, listed
):
    """A run of more than a few files is released by a worker, which the API asks for after
    recording it: a folder of more than FLOWBIN_INPUT_BATCH_FILES files is also listed by that
    worker, a smaller one was recorded whole by the submit, its files all waiting."""
    # Folders of more than 5 files are listed by a worker, 5 files a batch.
    lane = chaos.private_lane(redis_server_url, **({"input_batch_files": 5} if listed else {}))
    worker = chaos.start_worker(lane, "listing", concurrency=2)
    runtime = {"control_dir": str(chaos.control("runs")), "work_seconds": 0}
    input_dir, output_dir = chaos.inputs("big", 12)
    body = {
        "binary_path": chaos.binaries["work"],
        "input_dir": input_dir,
        "output_dir": output_dir,
        "job_id": f"{chaos.backend}-unreleased-{listed}",
        "settings": {"runtime_config": runtime},
    }
    die_while_submitting(lane, body, publishes=0)
    job_id = body["job_id"]
    [job] = chaos.jobs([job_id]).values()
    assert job.status == "queued" and job.unpublished_since is not None
    if listed:
        assert (job.num_files, job.inputs_pending, chaos.files(job_id)) == (0, True, [])
    else:
        assert (job.num_files, job.inputs_pending) == (12, False)
        assert {row.next_task_id for row in chaos.files(job_id)} == {window.WAITING}

    with session_scope(chaos.url) as session:
        mark = job.unpublished_since - PUBLISH_GRACE - timedelta(seconds=1)
        session.execute(update(Job).where(Job.id == job_id).values(unpublished_since=mark))
    began = time.monotonic()
    run_recovery(lane, worker)
    chaos.wait_ended([job_id], timeout=60)
    recovered = time.monotonic() - began
    assert chaos.assert_complete_once(job_id, WORK_STEPS) == 12
    [job] = chaos.jobs([job_id]).values()
    assert (job.inputs_pending, job.unpublished_since) == (False, None)
    report(
        "API killed before sending a run's release" + (" and listing" if listed else ""),
        chaos.backend,
        kills=1,
        jobs=1,
        files=12,
        seconds_to_recover=round(recovered, 1),
    )
