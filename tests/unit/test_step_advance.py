"""A file's advance past a step that is not its last, on both stores: the compare-and-set on
the claim, the next step's token only while the job may run, and the step's log lines written
with it or not at all. On PostgreSQL all of it is one statement (shared/engine/statements.py)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared.accounts.users import create_user
from shared.config import Settings
from shared.engine.runner import StepRunner
from shared.jobs.log import LINES_PER_INSERT, JobLogger
from shared.states import JobStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile, JobLog


def make_claimed_file(url: str, job_status: JobStatus) -> None:
    """Job ``job-1`` in ``job_status``, its one file claimed by task ``t1`` at step 0."""
    with session_scope(url) as session:
        user = create_user(session, "carol")
        session.add(
            Job(
                id="job-1",
                owner_id=user.id,
                kind="flow",
                status=job_status.value,
                trace_id="trace",
                num_files=1,
                num_steps=3,
            )
        )
        session.flush()
        session.add(
            JobFile(
                job_id="job-1",
                file_index=0,
                file_name="a.txt",
                status="pending",
                next_step=0,
                attempts=1,
                claimed_by="t1",
            )
        )


def advance(url: str, task_id: str, lines: int) -> tuple[str | None, JobLogger]:
    logger = JobLogger("job-1", task_id, "trace")
    for number in range(lines):
        logger.info(f"line {number}")
    params = {
        "b_job_id": "job-1",
        "b_file_index": 0,
        "step": 0,
        "task_id": task_id,
        "filtered": 2,
        "now": datetime.now(UTC),
        "next_token": "t2",
    }
    runner = StepRunner(Settings(database_url=url))
    return runner._advance((True, False), params, logger), logger


def file_and_lines(url: str) -> tuple[JobFile, list[str]]:
    with session_scope(url, read_only=True) as session:
        row = session.scalars(select(JobFile)).one()
        lines = session.scalars(select(JobLog.message).order_by(JobLog.id)).all()
    return row, lines


@pytest.mark.parametrize("lines", [2, LINES_PER_INSERT + 1])
def test_the_claimed_file_moves_on_with_its_lines_and_the_next_token(store_url, lines):
    make_claimed_file(store_url, JobStatus.RUNNING)
    status, logger = advance(store_url, "t1", lines)
    assert status == JobStatus.RUNNING
    assert logger.entries == []
    row, written = file_and_lines(store_url)
    assert (row.next_step, row.attempts, row.claimed_by, row.advanced_by) == (1, 0, None, "t1")
    assert (row.next_task_id, row.num_filtered, row.failed_step) == ("t2", 2, 0)
    assert written == [f"line {n}" for n in range(lines)]


def test_a_message_that_does_not_hold_the_claim_changes_nothing_and_logs_nothing(store_url):
    make_claimed_file(store_url, JobStatus.RUNNING)
    status, _ = advance(store_url, "stale", 2)
    assert status is None
    row, written = file_and_lines(store_url)
    assert (row.next_step, row.claimed_by, row.next_task_id) == (0, "t1", None)
    assert written == []


@pytest.mark.parametrize("job_status", [JobStatus.PAUSED, JobStatus.CANCELLED])
def test_a_job_that_may_not_go_on_gets_the_file_moved_but_no_next_token(store_url, job_status):
    make_claimed_file(store_url, job_status)
    status, _ = advance(store_url, "t1", 2)
    assert status == job_status.value
    row, written = file_and_lines(store_url)
    assert (row.next_step, row.advanced_by, row.next_task_id) == (1, "t1", None)
    assert written == ["line 0", "line 1"]
