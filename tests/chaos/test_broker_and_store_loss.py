"""The broker and the store lost under running jobs: a Redis restart (a server of this test's
own, with its append-only file), and PostgreSQL dropping every connection of this tier."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from shared.ops.embedded_redis import EmbeddedRedis, free_port
from shared.store.db import engine_for
from tests.chaos.support import CHAOS_APPLICATION, assert_no_overlap, report, runs_in
from tests.support import wait_for

pytestmark = pytest.mark.chaos

WORK_STEPS = ["read", "first", "second"]
# Short, so the steps cut off by the outage come back when the worker reconnects; every step
# here is far shorter.
VISIBILITY = 8


def open_runs(control) -> list:
    return [run for run in runs_in(control) if run.ended is None]


def test_a_redis_restart_mid_run_loses_no_step(chaos, tmp_path):
    """Redis stops (SIGTERM: it writes its append-only file out) while steps run. The worker
    cancels its running steps, which it could no longer ack (worker_cancel_long_running_tasks_
    on_connection_loss), and reconnects once Redis is back; the queued messages and the unacked
    ones come back from the append-only file, the unacked ones once the visibility timeout has
    passed (kombu sweeps them on reconnecting, then every ~100 s). A submit while Redis is down
    is refused with a 503 and its job failed, not left queued."""
    # A port the OS picks, not the embedded Redis's usual one: while this server is down,
    # another Redis starting elsewhere would take the usual one, and this one must come back on
    # its own port.
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(None)).start()
    try:
        lane = chaos.lane_on(f"{server.base_url}/0", visibility_timeout=VISIBILITY)
        control = chaos.control("runs")
        worker = chaos.start_worker(lane, "redis", concurrency=3)
        # Steps long enough that the outage lands inside the running ones: the worker cancels
        # them only once it has seen the connection go, which took longer than the rest of a
        # 0.5 s step on a busy CI host.
        runtime = {"control_dir": str(control), "work_seconds": 1.5}
        jobs = [
            lane.submit(chaos.binaries["work"], *chaos.inputs(f"job{n}", 4), runtime_config=runtime)
            for n in range(2)
        ]
        wait_for(lambda: len(open_runs(control)) >= 2, timeout=60, message="steps running")
        redis = lane.redis()
        newest = max(score for _, score in redis.zrange("unacked_index", 0, -1, withscores=True))
        redis.close()
        server.stop()
        stopped = time.monotonic()

        began = time.monotonic()
        refused_id = f"{chaos.backend}-while-redis-is-down"
        refused = lane.post_run(
            chaos.binaries["work"], *chaos.inputs("while-down", 1), job_id=refused_id
        )
        refused_in = time.monotonic() - began
        assert refused.status_code == 503, refused.get_json()
        [refused_job] = chaos.jobs([refused_id]).values()
        assert refused_job.status == "failed" and "broker is unreachable" in refused_job.message
        # Down until the messages the worker could not ack are visible again, so that its
        # sweep on reconnecting hands them back (the mechanism under test, not a sleep).
        wait_for(
            lambda: time.time() > newest + VISIBILITY + 0.5,
            timeout=VISIBILITY + 30,
            message="the unacked messages to be visible again",
        )
        server = EmbeddedRedis(tmp_path / "redis", port=server.port).start()
        restarted_wall = time.time()
        down = time.monotonic() - stopped
        restarted = time.monotonic()
        chaos.wait_ended(jobs, timeout=150)
        recovered = time.monotonic() - restarted
        assert worker.process.poll() is None, "the worker died in the outage"
    finally:
        server.stop()

    files = sum(chaos.assert_complete_once(job_id, WORK_STEPS) for job_id in jobs)
    runs = runs_in(control)
    for job_id in jobs:
        chaos.assert_results_come_from_the_last_runs(job_id, runs)
    # A run cut off was cut during the outage; its step ran again only after Redis was back.
    counts = assert_no_overlap(
        runs, lambda run: restarted_wall if run.started < restarted_wall else None
    )
    assert counts["cut"] >= 1  # the outage did land mid-step
    report(
        "Redis restart",
        chaos.backend,
        restarts=1,
        jobs=len(jobs),
        files=files,
        steps_cut=counts["cut"],
        seconds_down=round(down, 1),
        seconds_to_refuse_a_submit=round(refused_in, 1),
        seconds_to_recover=round(recovered, 1),
    )


def test_postgresql_dropping_every_connection_mid_run_leaves_nothing_stuck(chaos):
    """Three times while steps run, PostgreSQL terminates every backend of this tier (as a
    restart or a failover would): each step's next statement fails, and the task sends its
    message again, with backoff, instead of losing the step or failing the file."""
    if chaos.backend != "postgresql":
        pytest.skip("SQLite has no server connections to lose; this runs on PostgreSQL only")
    control = chaos.control("runs")
    chaos.start_worker(chaos.lane, "pg", concurrency=3)
    runtime = {"control_dir": str(control), "work_seconds": 0.3}
    jobs = [
        chaos.lane.submit(
            chaos.binaries["work"], *chaos.inputs(f"job{n}", 8), runtime_config=runtime
        )
        for n in range(2)
    ]
    killer_url = make_url(chaos.url).update_query_dict({"application_name": "flowbin-chaos-kill"})
    killer = create_engine(killer_url, poolclass=NullPool)
    terminated = []
    try:
        for _ in range(3):
            seen = len(runs_in(control))
            wait_for(
                lambda seen=seen: open_runs(control) and len(runs_in(control)) > seen,
                timeout=60,
                message="steps running",
            )
            with killer.connect() as conn:
                terminated.append(
                    conn.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = :name AND datname = current_database() "
                            "AND pid <> pg_backend_pid()"
                        ),
                        {"name": CHAOS_APPLICATION},
                    ).scalar()
                )
            engine_for(chaos.url).dispose()  # this process's connections were dropped too
        last = time.monotonic()
        chaos.wait_ended(jobs, timeout=150)
        recovered = time.monotonic() - last
    finally:
        killer.dispose()

    assert all(count >= 1 for count in terminated), terminated
    files = sum(chaos.assert_complete_once(job_id, WORK_STEPS) for job_id in jobs)
    runs = runs_in(control)
    for job_id in jobs:
        chaos.assert_results_come_from_the_last_runs(job_id, runs)
    # No process died: every run ended, and none overlapped another of its step.
    counts = assert_no_overlap(runs, lambda run: None)
    # The task sends its message again (workers/tasks.py), and celery logs each such retry.
    retries = sum(
        worker.log.read_text(errors="replace").count("retry: Retry in") for worker in chaos.workers
    )
    report(
        "PostgreSQL connection loss",
        chaos.backend,
        terminations=len(terminated),
        backends_terminated=sum(terminated),
        jobs=len(jobs),
        files=files,
        reruns=counts["reruns"],
        store_retries=retries,
        seconds_to_recover=round(recovered, 1),
    )
