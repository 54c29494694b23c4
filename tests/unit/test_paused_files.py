"""A step that advances, or ends its file, while a resume of its job commits: the resume read
the job's files while the file was still claimed, and the step read the job as paused, so
the step must send the file on itself once the resume has committed (shared/engine/
paused_files.py). The races are played out on PostgreSQL with two real transactions."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from shared.engine import statements, window
from shared.engine.paused_files import resumed_meanwhile
from shared.engine.runner import StepRunner
from shared.engine.snapshot import cached_binary
from shared.flow.compiler import compile_project
from shared.runs.control import resume_job
from shared.states import JobStatus
from shared.store.db import engine_for, session_scope, statement_scope
from shared.store.models import Job, JobFile
from tests.support import wait_for
from tests.unit.test_file_ending import (
    FLOW,
    JOB,
    end,
    job_snapshot_of,
    make_job,
    settings_with_binary,
)

TWO_STEPS = (
    "name: two\nsteps:\n  - {id: read, type: extract_text}\n  - {id: again, type: extract_text}\n"
)


def compiled(folder: Path, flow: str) -> bytes:
    (folder / "flows").mkdir(parents=True)
    (folder / "flows/main.ibflow").write_text(flow)
    return compile_project(folder, "Single Flow", {"flow_file": "flows/main.ibflow"}, "t").data


@pytest.fixture
def flow_binary(tmp_path) -> bytes:
    """The compiled binary of a 1-step flow: each step ends its file."""
    return compiled(tmp_path / "one", FLOW)


@pytest.fixture
def two_step_binary(tmp_path) -> bytes:
    """The compiled binary of a 2-step flow: its first step advances the file."""
    return compiled(tmp_path / "two", TWO_STEPS)


def paused_job(url: str, data: bytes, files: int, claimed: int) -> None:
    """``make_job``'s job, paused, with its binary and its claims running a minute more."""
    make_job(url, files=files, claimed=claimed, status=JobStatus.PAUSED)
    with session_scope(url) as session:
        session.execute(
            update(Job).where(Job.id == JOB).values(binary_hash=hashlib.sha256(data).hexdigest())
        )
        session.execute(
            update(JobFile)
            .where(JobFile.claimed_by.is_not(None))
            .values(claimed_until=datetime.now(UTC) + timedelta(minutes=1))
        )


def advance(url: str, index: int = 0) -> str | None:
    """File ``index``'s step 0 advances, as its task ``t<index>`` does: the job's state as the
    advance read it."""
    params = {
        "b_job_id": JOB,
        "b_file_index": index,
        "step": 0,
        "task_id": f"t{index}",
        "filtered": 0,
        "now": datetime.now(UTC),
        "next_token": "never stored",
    }
    with statement_scope(url) as conn:
        moved = statements.ADVANCE[(False, False, False)].first(conn, params)
    return moved.job_status


def file_token(url: str, index: int) -> str | None:
    with session_scope(url, read_only=True) as session:
        return session.scalar(select(JobFile.next_task_id).where(JobFile.file_index == index))


def waits_for_a_lock(url: str, statement: str) -> bool:
    """Whether a session is waiting for a row lock in a statement containing ``statement``."""
    with engine_for(url).connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE :statement"
                ),
                {"statement": f"%{statement}%"},
            )
        )


def test_a_step_that_advanced_under_a_committing_resume_sends_its_file_on(
    postgresql_store, tmp_path, two_step_binary
):
    url = postgresql_store
    paused_job(url, two_step_binary, files=1, claimed=1)
    settings = settings_with_binary(url, tmp_path / "var", two_step_binary)
    job = job_snapshot_of(two_step_binary)
    binary = cached_binary(settings, job.binary_hash)
    with ThreadPoolExecutor(1) as pool:
        with session_scope(url) as resume:
            work = resume_job(resume, settings, resume.get(Job, JOB))
            assert work.publish == []  # the file was claimed when the resume read the files
            assert advance(url) == JobStatus.PAUSED  # the resume has not committed yet
            sent = pool.submit(resumed_meanwhile, settings, job, binary, 0, 1, "next")
            # It waits for the resume; without the wait it would read the job as paused.
            wait_for(lambda: waits_for_a_lock(url, "FOR SHARE"), message="the wait")
            assert not sent.done()
        step = sent.result(timeout=30)
    assert (step.call.file_index, step.call.step_index, step.call.task_id) == (0, 1, "next")
    assert file_token(url, 0) == "next"


def test_a_file_whose_ending_raced_a_resume_gives_its_place_in_the_window_on(
    postgresql_store, tmp_path, flow_binary
):
    """Files 0 and 1 fill the window of two, file 2 waits. The resume counts file 0 in the
    window, since its ending has not committed; that ending waits for the job's row, then
    sees the job as paused, so it releases no one in the statement itself."""
    url = postgresql_store
    paused_job(url, flow_binary, files=3, claimed=2)
    runner = StepRunner(settings_with_binary(url, tmp_path / "var", flow_binary))
    job = job_snapshot_of(flow_binary)
    with ThreadPoolExecutor(1) as pool:
        with session_scope(url) as resume:
            work = resume_job(resume, runner.settings, resume.get(Job, JOB))
            assert work.publish == []  # the window looked full
            ended = pool.submit(end, runner, job, True, 0, "t0")
            wait_for(lambda: waits_for_a_lock(url, "WITH moved AS"), message="the ending")
            assert not ended.done()
        released = ended.result(timeout=30)
    token = window.released_prefix("t0") + "2"
    assert (released.call.file_index, released.call.task_id) == (2, token)
    assert file_token(url, 2) == token


def test_a_step_that_advanced_under_a_pause_leaves_its_file_to_the_resume(
    store_url, tmp_path, two_step_binary
):
    paused_job(store_url, two_step_binary, files=1, claimed=1)
    settings = settings_with_binary(store_url, tmp_path / "var", two_step_binary)
    job = job_snapshot_of(two_step_binary)
    binary = cached_binary(settings, job.binary_hash)
    assert advance(store_url) == JobStatus.PAUSED
    assert resumed_meanwhile(settings, job, binary, 0, 1, "next") is None
    assert file_token(store_url, 0) is None
    # The resume, after that, sees the file idle and sends it.
    with session_scope(store_url) as session:
        work = resume_job(session, settings, session.get(Job, JOB))
    assert [step.call.file_index for step in work.publish] == [0]
    sent = work.publish[0].call.task_id
    # A step that read the pause but came to check after the resume sent its file leaves it.
    assert resumed_meanwhile(settings, job, binary, 0, 1, "second") is None
    assert file_token(store_url, 0) == sent


@pytest.mark.parametrize("one_statement", [True, False])
def test_a_file_that_ended_under_a_pause_releases_no_one(
    postgresql_store, tmp_path, flow_binary, one_statement
):
    paused_job(postgresql_store, flow_binary, files=3, claimed=2)
    runner = StepRunner(settings_with_binary(postgresql_store, tmp_path / "var", flow_binary))
    assert end(runner, job_snapshot_of(flow_binary), one_statement, 0, "t0") is None
    assert file_token(postgresql_store, 2) == window.WAITING
