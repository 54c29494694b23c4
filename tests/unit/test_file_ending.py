"""A file's ending at its last step. On PostgreSQL its advance, its count in the job's totals,
its log lines and the release of the job's next waiting file are one statement
(shared/engine/statements.py's end_file_and_log); elsewhere, and for files with failed records,
a statement each. Both must leave the store as the other does."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from shared.accounts.users import create_user
from shared.config import Settings
from shared.engine import statements, window
from shared.engine.endings import file_ending
from shared.engine.runner import FileEnding, StepRunner
from shared.engine.snapshot import JobSnapshot, cached_binary
from shared.flow.compiler import compile_project
from shared.jobs.log import JobLogger
from shared.runs.input_listing import file_rows
from shared.runs.submit import snapshot_binary
from shared.states import JobStatus
from shared.store.db import session_scope
from shared.store.migrate import upgrade
from shared.store.models import Job, JobFile, JobLog
from tests.conftest import fresh_database

JOB = "ending-job"
FILES = 3
FLOW = "name: one\nsteps:\n  - {id: read, type: extract_text}\n"


@pytest.fixture
def flow_binary(tmp_path) -> bytes:
    """The compiled binary of a 1-step flow."""
    (tmp_path / "project/flows").mkdir(parents=True)
    (tmp_path / "project/flows/one.ibflow").write_text(FLOW)
    project = compile_project(
        tmp_path / "project", "Single Flow", {"flow_file": "flows/one.ibflow"}, "t"
    )
    return project.data


def settings_with_binary(url: str, data_dir: Path, data: bytes) -> Settings:
    """Settings of a window of two, with the job's binary among its snapshots."""
    settings = Settings(data_dir=data_dir, database_url=url, job_window=2)
    snapshot_binary(settings, data, hashlib.sha256(data).hexdigest())
    return settings


def job_snapshot_of(data: bytes) -> JobSnapshot:
    return JobSnapshot(
        id=JOB,
        binary_hash=hashlib.sha256(data).hexdigest(),
        priority=5,
        step_timeout=0,
        settings={},
        trace_id="trace",
        log_prefix="",
        log_to_timeline=False,
        input_dir="carol/in",
        output_dir="carol/out",
        flow_type="single_flow",
        max_parse_exceptions=None,
    )


def make_job(
    url: str, files: int = FILES, claimed: int = 2, status: JobStatus = JobStatus.RUNNING
) -> None:
    """A job of ``files`` 1-step files in ``status``: the first ``claimed`` claimed by tasks
    ``t0``, ``t1``..., the others waiting for a place (by default three files in a window of
    two, file 2 waiting)."""
    with session_scope(url) as session:
        owner = create_user(session, "carol")
        session.add(
            Job(
                id=JOB,
                owner_id=owner.id,
                kind="flow",
                status=status,
                flow_type="single_flow",
                trace_id="trace",
                output_dir="carol/out",
                num_files=files,
                num_steps=1,
            )
        )
        session.flush()
        rows = file_rows(JOB, [f"{n}.txt" for n in range(files)], 0)
        for row in rows[:claimed]:
            row.update(next_task_id=None, claimed_by=f"t{row['file_index']}", attempts=1)
        session.execute(insert(JobFile), rows)


def end(runner: StepRunner, job: JobSnapshot, one_statement: bool, index: int, task_id: str):
    records = [{"file": f"{index}.txt", "text": "Total: $1", "warnings": ["w"]}]
    params = {
        "b_job_id": JOB,
        "b_file_index": index,
        "step": 0,
        "task_id": task_id,
        "filtered": 1,
        "now": datetime.now(UTC),
        **file_ending(records),
    }
    binary = cached_binary(runner.settings, job.binary_hash)
    ending = FileEnding((False, False), params, job, binary, f"{index}.txt", records, 0)
    logger = JobLogger(JOB, task_id, "trace")
    logger.info(f"File {index}.txt finished")
    if one_statement:
        return runner._end_file(ending, logger)
    return runner._end_file_in_turns(ending, logger)


def store_state(url: str) -> dict:
    """What the endings wrote, without their times."""
    with session_scope(url, read_only=True) as session:
        job = session.scalars(select(Job)).one()
        files = session.scalars(select(JobFile).order_by(JobFile.file_index)).all()
        lines = session.scalars(select(JobLog.message).order_by(JobLog.id)).all()
        return {
            "job": (job.status, job.message, job.files_done, job.steps_done)
            + (job.total_records, job.total_errors, job.total_warnings, job.total_filtered),
            "files": [
                (f.status, f.next_step, f.next_task_id, f.claimed_by, f.advanced_by)
                + (f.num_records, f.num_errors, f.num_warnings, f.num_filtered)
                for f in files
            ],
            "lines": lines,
        }


def run_the_job(url: str, data_dir: Path, one_statement: bool, data: bytes) -> tuple[list, dict]:
    """End files 0 and 1, then file 2 in the place file 0 left: what each ending returned
    to publish, and the store at the end."""
    make_job(url)
    runner = StepRunner(settings_with_binary(url, data_dir, data))
    job = job_snapshot_of(data)
    released = [end(runner, job, one_statement, 0, "t0"), end(runner, job, one_statement, 1, "t1")]
    with session_scope(url) as session:  # the released file's step claims it
        row = session.scalars(select(JobFile).where(JobFile.file_index == 2)).one()
        row.claimed_by, row.next_task_id, row.attempts = row.next_task_id, None, 1
    released.append(end(runner, job, one_statement, 2, released[0].call.task_id))
    return released, store_state(url)


def test_a_file_that_ends_passes_its_place_on_and_the_last_one_ends_the_job(
    postgresql_store, tmp_path, flow_binary
):
    released, state = run_the_job(postgresql_store, tmp_path / "var", True, flow_binary)
    token = window.released_prefix("t0") + "2"
    assert [step and (step.call.file_index, step.call.task_id) for step in released] == [
        (2, token),
        None,
        None,
    ]
    assert released[0].priority == 5
    assert state["job"] == (JobStatus.COMPLETE, "Completed single_flow", 3, 3, 3, 0, 3, 3)
    assert [f[:2] + f[3:] for f in state["files"]] == [
        ("complete", 1, None, "t0", 1, 0, 1, 1),
        ("complete", 1, None, "t1", 1, 0, 1, 1),
        ("complete", 1, None, token, 1, 0, 1, 1),
    ]
    assert state["lines"] == [
        "File 0.txt finished",
        "File 1.txt finished",
        "File 2.txt finished",
        "Completed single_flow",
    ]
    # The job's combined results: the last file's, which its ending had in hand (the other
    # two files wrote no results file here).
    combined = json.loads((tmp_path / "var/drive/carol/out/results.json").read_text())
    assert [record["file"] for record in combined] == ["2.txt"]


def test_one_statement_ends_files_as_a_statement_each_does(postgresql_store, tmp_path, flow_binary):
    one = run_the_job(postgresql_store, tmp_path / "one", True, flow_binary)
    other_store = fresh_database("postgresql", tmp_path, schema="store_tests")
    upgrade(other_store)
    assert run_the_job(other_store, tmp_path / "turns", False, flow_binary) == one


def test_an_ending_without_the_claim_changes_nothing(postgresql_store, tmp_path, flow_binary):
    make_job(postgresql_store)
    before = store_state(postgresql_store)
    runner = StepRunner(settings_with_binary(postgresql_store, tmp_path / "var", flow_binary))
    assert end(runner, job_snapshot_of(flow_binary), True, 0, "stale") is None
    assert store_state(postgresql_store) == before


def end_the_only_file(url: str, data_dir: Path, one_statement: bool, data: bytes, status):
    """End the only file of a job in ``status``: the store afterwards, and whether the job's
    combined results were written."""
    make_job(url, files=1, claimed=1, status=status)
    runner = StepRunner(settings_with_binary(url, data_dir, data))
    assert end(runner, job_snapshot_of(data), one_statement, 0, "t0") is None
    return store_state(url), (data_dir / "drive/carol/out/results.json").exists()


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLED])
def test_a_job_of_one_file_ends_without_reading_its_files_back(
    postgresql_store, tmp_path, flow_binary, monkeypatch, status
):
    def read_back(*args, **kwargs):
        raise AssertionError("the ending of a job's only file read the job's files back")

    # The ending has the file's outcome in hand, and the job's state as its count left it.
    monkeypatch.setattr(statements.FILE_OUTCOMES, "all", read_back)
    one = end_the_only_file(postgresql_store, tmp_path / "one", True, flow_binary, status)
    monkeypatch.undo()
    other_store = fresh_database("postgresql", tmp_path, schema="store_tests")
    upgrade(other_store)
    assert end_the_only_file(other_store, tmp_path / "turns", False, flow_binary, status) == one
    state, results_written = one
    if status == JobStatus.CANCELLED:
        # A cancelled job stays so, without results, though its last file finished.
        assert state["job"][:3] == (JobStatus.CANCELLED, "", 1) and not results_written
        assert state["lines"] == ["File 0.txt finished"]
    else:
        assert state["job"][:3] == (JobStatus.COMPLETE, "Completed single_flow", 1)
        assert results_written
        assert state["lines"] == ["File 0.txt finished", "Completed single_flow"]
    assert state["files"][0][0] == "complete"
