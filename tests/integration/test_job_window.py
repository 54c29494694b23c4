"""The job window (shared/engine/window.py) and big input folders (shared/runs/input_listing.py)
on real workers: a big folder is listed by a worker while its first steps run, with no more of
its files in the broker than the window holds; a small job submitted behind a big one at the
same priority runs before the big one is half done; a submit of 20,000 files answers at once."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, or_, select

from api.app import create_app
from shared.config import Settings
from shared.engine import window
from shared.store.db import session_scope
from shared.store.models import Job, JobFile
from tests.conftest import ApiUser, start_worker, stop_worker, wait_worker_ready
from tests.integration.control_udfs import GATED_FLOW
from tests.integration.flows import compile_flow, invoice, put_project
from tests.integration.test_job_control import Control, compile_project
from tests.support import wait_for

pytestmark = pytest.mark.integration

WINDOW_REDIS_DB = {"sqlite": 8, "postgresql": 9}


class Lane(ApiUser):
    """An API and one worker (2 slots) on a Redis database of their own, sharing the stack's
    store and drive, with the window settings of the test."""

    def __init__(self, client, tokens: dict[str, str], settings: Settings):
        self.client, self.tokens, self.settings = client, tokens, settings

    def run(self, binary: str, input_dir: str, **settings) -> tuple[str, float]:
        """Submit a run; its job id and how long the answer took, in seconds."""
        body = {"binary_path": binary, "input_dir": input_dir, "settings": settings}
        began = time.perf_counter()
        response = self.client.post(
            "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=self.headers()
        )
        took = time.perf_counter() - began
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]["job_id"], took

    def job(self, job_id: str) -> Job:
        with session_scope(self.settings.sql_url, read_only=True) as session:
            return session.get(Job, job_id)

    def state(self, job_id: str) -> str:
        response = self.client.get(f"/api/v1/jobs/status?job_id={job_id}", headers=self.headers())
        return response.get_json()["state"]

    def file_counts(self, job_id: str) -> tuple[int, int]:
        """The job's files in its window (pending, not waiting), and those waiting."""
        with session_scope(self.settings.sql_url, read_only=True) as session:

            def count(*where) -> int:
                return session.scalar(
                    select(func.count())
                    .select_from(JobFile)
                    .where(JobFile.job_id == job_id, JobFile.status == "pending", *where)
                )

            waiting = count(JobFile.next_task_id == window.WAITING)
            in_window = count(
                or_(JobFile.next_task_id.is_(None), JobFile.next_task_id != window.WAITING)
            )
        return in_window, waiting


@pytest.fixture
def lane(stack, tmp_path, request):
    overrides = getattr(request, "param", {})
    base = stack.settings.redis_url.rsplit("/", 1)[0]
    settings = replace(
        stack.settings, redis_url=f"{base}/{WINDOW_REDIS_DB[stack.backend]}", **overrides
    )
    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    name = f"window-{stack.backend}"
    worker = start_worker(settings, name, tmp_path / "window.log", concurrency=2)
    try:
        wait_worker_ready(celery_app, name)
        yield Lane(app.test_client(), stack.tokens, settings)
    finally:
        stop_worker(worker)


@pytest.mark.parametrize("lane", [{"job_window": 4, "input_batch_files": 10}], indirect=True)
def test_a_big_folder_is_listed_by_a_worker_and_only_the_window_is_sent(stack, lane, tmp_path):
    control = Control(tmp_path / "control")
    root = f"alice/window-listed-{stack.backend}"
    binary = compile_project(stack, root, GATED_FLOW)
    for number in range(25):
        stack.upload(f"{root}/input/f{number:02d}.txt", invoice(str(number), "10"))
    try:
        job_id, _ = lane.run(
            binary, f"{root}/input", runtime_config={"control_dir": str(control.path)}
        )
        # More files than a submit records itself (10): a worker lists them, 10 a batch.
        assert lane.state(job_id) == "PENDING"
        wait_for(lambda: len(control.lines("started")) == 2, message="both slots at the gate")
        wait_for(
            lambda: (lane.job(job_id).num_files, lane.job(job_id).inputs_pending) == (25, False),
            message="the listing to record every file",
        )
        # Two files held at the gate, two queued behind them; the rest wait for a place.
        assert lane.file_counts(job_id) == (4, 21)
        assert lane.state(job_id) == "PENDING"
    finally:
        control.open_gate()
    wait_for(lambda: lane.state(job_id) == "DONE", timeout=60, message="the job to end")
    job = lane.job(job_id)
    assert (job.status, job.files_done, job.num_files) == ("complete", 25, 25)
    after = sorted(control.lines("count"))
    assert after == sorted(f"after f{number:02d}.txt" for number in range(25))  # each once
    with session_scope(lane.settings.sql_url, read_only=True) as session:
        names = session.scalars(
            select(JobFile.file_name).where(JobFile.job_id == job_id).order_by(JobFile.file_index)
        ).all()
    assert sorted(names) == [f"f{number:02d}.txt" for number in range(25)]


@pytest.mark.parametrize("lane", [{"job_window": 4}], indirect=True)
def test_a_small_job_behind_a_big_one_at_the_same_priority_runs_first(stack, lane):
    root = f"alice/window-fair-{stack.backend}"
    put_project(stack, root)
    binary = compile_flow(stack, root)["results"][0]["binary_path"]
    for number in range(60):
        stack.upload(f"{root}/big/f{number:02d}.txt", invoice(str(number), "10"))
    stack.upload(f"{root}/small/only.txt", invoice("small", "10"))

    big, _ = lane.run(binary, f"{root}/big", priority=3, output_dir=f"{root}/out-big")
    small, _ = lane.run(binary, f"{root}/small", priority=3, output_dir=f"{root}/out-small")
    wait_for(lambda: lane.state(small) == "DONE", timeout=60, message="the small job to end")
    big_done_then = lane.job(big).files_done
    assert lane.job(small).status == "complete"
    # Behind at most a window of the big job's steps, not its backlog of 180.
    assert big_done_then < 30, big_done_then
    wait_for(lambda: lane.state(big) == "DONE", timeout=90, message="the big job to end")
    assert lane.job(big).status == "complete"


def test_a_submit_of_20000_files_answers_at_once(stack, lane):
    root = f"alice/window-20k-{stack.backend}"
    put_project(stack, root)
    binary = compile_flow(stack, root)["results"][0]["binary_path"]
    folder = stack.settings.drive_root / root / "big"
    folder.mkdir(parents=True)
    body = invoice("1", "10")
    for number in range(20_000):
        (folder / f"f{number:05d}.txt").write_bytes(body)

    job_id, took = lane.run(binary, f"{root}/big")
    print(f"\nsubmit of 20,000 files answered in {took * 1000:.1f} ms")
    assert took < 1.0  # about 20 ms here; the bound leaves room for a loaded host
    assert lane.state(job_id) == "PENDING"
    wait_for(
        lambda: (lane.job(job_id).num_files, lane.job(job_id).inputs_pending) == (20_000, False),
        timeout=60,
        message="the listing to record every file",
    )
    wait_for(lambda: lane.job(job_id).files_done >= 10, timeout=30, message="files to finish")
    cancelled = lane.client.get(f"/api/v1/jobs/cancel?job_id={job_id}", headers=lane.headers())
    assert cancelled.status_code == 200, cancelled.get_json()
    job = lane.job(job_id)
    assert job.status == "cancelled"
    assert lane.file_counts(job_id) == (0, 0)
