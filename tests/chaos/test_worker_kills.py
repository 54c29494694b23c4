"""Workers killed under running jobs: pool processes killed over and over, a worker's main
process killed mid-step, and a step delivered again after the worker that ran it had already
sent the next one."""

from __future__ import annotations

import json
import random
import time

import pytest
from sqlalchemy import select

from shared.engine.runner import StepRunner
from shared.engine.scheduling import StepCall
from shared.store.models import JobLog
from tests.chaos.support import (
    assert_no_overlap,
    kill_process,
    lines,
    report,
    running,
    runs_in,
)
from tests.support import wait_for
from workers.publisher import publish_step

pytestmark = pytest.mark.chaos

KILLS = 20
JOBS = 3
FILES_PER_JOB = 14
WORK_SECONDS = 0.4
WORK_STEPS = ["read", "first", "second"]
GATED_STEPS = ["read", "hold", "after"]


def test_twenty_pool_process_kills_lose_no_file_and_never_run_a_step_twice_at_once(chaos):
    control = chaos.control("runs")
    worker = chaos.start_worker(chaos.lane, "kills", concurrency=3)
    began = time.monotonic()
    jobs = []
    for number in range(JOBS):
        input_dir, output_dir = chaos.inputs(f"job{number}", FILES_PER_JOB)
        runtime = {"control_dir": str(control), "work_seconds": WORK_SECONDS}
        jobs.append(
            chaos.lane.submit(chaos.binaries["work"], input_dir, output_dir, runtime_config=runtime)
        )
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kills: dict[int, float] = {}  # pid -> when SIGKILL was sent
    aimed: set[tuple] = set()  # the runs aimed at, by (job, step, file): each at most once
    inside = 0  # kills that landed while the UDF ran (the rest: in the advance, the publish of
    # the next step, the ack, or the next step's start)
    deadline = time.monotonic() + 180
    while len(kills) < KILLS:
        assert time.monotonic() < deadline, f"only {len(kills)} kills in time (seed {seed})"
        pool = set(worker.pool())
        candidates = [
            run
            for run in runs_in(control)
            if run.ended is None
            and run.pid in pool
            and run.pid not in kills
            and (run.job_id, run.step, run.file) not in aimed
        ]
        if not candidates:
            ended = [job.status for job in chaos.jobs(jobs).values()]
            assert "running" in ended or "queued" in ended, (
                f"the jobs ended after only {len(kills)} kills (seed {seed})"
            )
            time.sleep(0.02)  # polling the UDFs' notes
            continue
        run = rng.choice(candidates)
        # Anywhere from inside the step to just after it.
        when = run.started + rng.uniform(0.05, WORK_SECONDS * 1.5)
        wait_for(lambda when=when: time.time() >= when, timeout=5, interval=0.01)
        sent = kill_process(run.pid, worker.process.pid)
        if sent is None:
            continue
        kills[run.pid] = sent
        aimed.add((run.job_id, run.step, run.file))
        after = [r for r in runs_in(control) if r.pid == run.pid and r.started == run.started]
        inside += bool(after) and after[0].ended is None
    last_kill = time.monotonic()
    chaos.wait_ended(jobs, timeout=180)
    recovered = time.monotonic() - last_kill
    assert worker.process.poll() is None, "the worker's main process died with its children"

    files = sum(chaos.assert_complete_once(job_id, WORK_STEPS) for job_id in jobs)
    runs = runs_in(control)
    for job_id in jobs:
        chaos.assert_results_come_from_the_last_runs(job_id, runs)
    counts = assert_no_overlap(runs, lambda run: kills.get(run.pid))
    # Every cut run is one of the kills; a kill after the UDF ended cut no noted run.
    assert counts["cut"] <= len(kills)
    assert files >= 40
    report(
        "pool process kills",
        chaos.backend,
        kills=len(kills),
        inside_a_step=inside,
        jobs=len(jobs),
        files=files,
        step_runs=counts["runs"],
        reruns=counts["reruns"],
        seconds=round(time.monotonic() - began, 1),
        seconds_after_last_kill=round(recovered, 1),
        seed=seed,
    )


# Short, so the test waits seconds for the redelivery; every step here is far shorter.
VISIBILITY = 8


def test_a_worker_main_process_killed_mid_step_has_the_step_delivered_again(
    chaos, redis_server_url
):
    """The worker's main process holds the message unacked; killed, it can neither ack nor
    requeue it. Its pool process dies with it (celery sets PR_SET_PDEATHSIG), so nothing goes
    on running the step. Redis hands the message back once the visibility timeout has passed,
    to the next worker that sweeps the unacked messages (kombu does at a worker's start, then
    every ~100 s). Stalled-step recovery would also restart it, with a fresh token, but only
    once the claim lapsed: the step's time limit plus 60 s."""
    lane = chaos.private_lane(redis_server_url, visibility_timeout=VISIBILITY)
    control = chaos.control("gate")
    input_dir, output_dir = chaos.inputs("one", 1)
    worker = chaos.start_worker(lane, "main", concurrency=1)
    job_id = lane.submit(
        chaos.binaries["gated"], input_dir, output_dir, runtime_config={"control_dir": str(control)}
    )
    [held] = wait_for(lambda: lines(control, "started"), timeout=60, message="the step to start")
    child = int(held.split()[1])
    [row] = chaos.files(job_id)
    token = row.claimed_by
    killed = time.monotonic()
    worker.process.kill()
    worker.process.wait(timeout=10)
    wait_for(lambda: not running(child), timeout=10, message="the pool process to die too")

    redis = lane.redis()
    [(_, delivered)] = redis.zrange("unacked_index", 0, -1, withscores=True)
    # Waiting out the broker's timeout is the mechanism under test.
    wait_for(
        lambda: time.time() > delivered + VISIBILITY + 0.5,
        timeout=VISIBILITY + 5,
        message="the message to be visible again",
    )
    (control / "open").touch()
    chaos.start_worker(lane, "main-again", concurrency=1)
    chaos.wait_ended([job_id], timeout=90)
    recovered = time.monotonic() - killed

    chaos.assert_complete_once(job_id, GATED_STEPS)
    started = lines(control, "started")
    assert len(started) == 2 and started[0] != started[1]  # cut off once, then run again
    assert lines(control, "passed") == ["f00.txt"]
    assert lines(control, "count") == ["after f00.txt"]
    # The same message came back (same token), not a restart by recovery.
    committed_by = chaos.read(
        lambda s: s.scalars(
            select(JobLog.task_id).where(
                JobLog.job_id == job_id, JobLog.message.startswith("Finished step 'hold'")
            )
        ).all()
    )
    assert committed_by == [token]
    report(
        "worker main process SIGKILL",
        chaos.backend,
        kills=1,
        jobs=1,
        files=1,
        visibility_timeout=VISIBILITY,
        seconds_to_recover=round(recovered, 1),
    )


def queued_task_ids(redis) -> list[str]:
    """The task ids of the messages waiting in the lane's priority lists."""
    found = []
    for key in redis.scan_iter("celery*"):
        if redis.type(key) == b"list":
            found += [json.loads(raw)["headers"]["id"] for raw in redis.lrange(key, 0, -1)]
    return found


def test_a_step_delivered_again_after_it_advanced_does_not_send_its_next_step_twice(
    chaos, redis_server_url
):
    """A worker that committed a step and sent the next one, then died before acking its
    message, gets that message delivered again. It used to send the next step again with the
    same token: two messages for one step, and since a claim also matches ``claimed_by`` (the
    redelivery of a step whose worker died), the second one claimed the file while the first
    ran. This process plays that worker: it runs step 0 and sends step 1 as run_step does,
    and never consumes step 0's message, which stays queued ahead of step 1's."""
    lane = chaos.private_lane(redis_server_url)
    control = chaos.control("gate")
    input_dir, output_dir = chaos.inputs("one", 1)
    job_id = lane.submit(
        chaos.binaries["gated"], input_dir, output_dir, runtime_config={"control_dir": str(control)}
    )
    [row] = chaos.files(job_id)
    following = StepRunner(lane.settings).run(StepCall(job_id, 0, 0, row.next_task_id))
    publish_step(lane.celery_app, following)

    redis = lane.redis()
    assert queued_task_ids(redis) == [following.call.task_id, row.next_task_id]
    # One slot: step 0's message is handled first, then step 1 holds the slot at the gate.
    chaos.start_worker(lane, "redelivery", concurrency=1)
    wait_for(lambda: lines(control, "started"), timeout=60, message="step 1 to start")
    [row] = chaos.files(job_id)
    running = row.claimed_by
    # Everything the redelivery sent was sent before step 1 started (one slot, in order).
    assert running not in queued_task_ids(redis), "a second message for the running step"
    (control / "open").touch()
    chaos.wait_ended([job_id], timeout=60)
    chaos.assert_complete_once(job_id, GATED_STEPS)
    assert len(lines(control, "started")) == 1
    assert lines(control, "count") == ["after f00.txt"]
    report("step delivered again after it advanced", chaos.backend, jobs=1, files=1)
