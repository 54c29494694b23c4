"""The job window's statements (shared/engine/window.py) on both stores: filling a window gives
exactly its free places to the first waiting files, in order, and only while the job may run;
a file's end passes its place to one file, under a token its redelivery finds again."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, update

from shared.accounts.users import create_user
from shared.config import Settings
from shared.engine import window
from shared.flow.compiler import compile_project
from shared.runs.input_listing import file_rows
from shared.runs.submit import snapshot_binary
from shared.states import FileStatus, JobStatus
from shared.store.db import connection_scope, session_scope
from shared.store.models import Job, JobFile

FLOW = "name: one\nsteps:\n  - {id: read, type: extract_text}\n"


@pytest.fixture
def job(store_url, tmp_path) -> tuple[Settings, Job]:
    """A queued job of ten files, all waiting, and the settings of a window of four."""
    settings = Settings(data_dir=tmp_path / "var", database_url=store_url, job_window=4)
    (tmp_path / "project/flows").mkdir(parents=True)
    (tmp_path / "project/flows/one.ibflow").write_text(FLOW)
    data = compile_project(
        tmp_path / "project", "Single Flow", {"flow_file": "flows/one.ibflow"}, "t"
    ).data
    digest = hashlib.sha256(data).hexdigest()
    snapshot_binary(settings, data, digest)
    with session_scope(store_url) as session:
        owner = create_user(session, "carol")
        row = Job(
            id="job-w",
            owner_id=owner.id,
            kind="flow",
            status=JobStatus.QUEUED,
            trace_id="trace",
            binary_hash=digest,
            num_files=10,
            num_steps=1,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        session.execute(insert(JobFile), file_rows("job-w", [f"{n}.txt" for n in range(10)], 0))
        session.expunge(row)
    return settings, row


def tokens(url: str) -> list[str | None]:
    with session_scope(url, read_only=True) as session:
        return session.scalars(
            select(JobFile.next_task_id)
            .where(JobFile.job_id == "job-w")
            .order_by(JobFile.file_index)
        ).all()


def end_file(conn, index: int) -> None:
    conn.execute(
        update(JobFile)
        .where(JobFile.job_id == "job-w", JobFile.file_index == index)
        .values(status=FileStatus.COMPLETE, next_task_id=None)
    )
    conn.execute(update(Job).where(Job.id == "job-w").values(files_done=Job.files_done + 1))


def test_a_fill_gives_the_free_places_to_the_first_waiting_files(job):
    settings, row = job
    with connection_scope(settings.sql_url) as conn:
        steps = window.fill(conn, settings, row)
    assert [step.call.file_index for step in steps] == [0, 1, 2, 3]
    assert tokens(settings.sql_url) == [step.call.task_id for step in steps] + [""] * 6
    with connection_scope(settings.sql_url) as conn:
        assert window.fill(conn, settings, row) == []  # full
        end_file(conn, 1)
        [step] = window.fill(conn, settings, row)
    assert step.call.file_index == 4


def test_an_ended_file_passes_its_place_to_one_file_which_its_redelivery_finds(job):
    settings, row = job
    with connection_scope(settings.sql_url) as conn:
        window.fill(conn, settings, row)
        end_file(conn, 0)
        passed = window.refill(conn, settings, row, "task-that-ended-0")
    assert passed.call.file_index == 4
    assert tokens(settings.sql_url)[4:6] == [passed.call.task_id, ""]
    with connection_scope(settings.sql_url) as conn:
        again = window.rereleased(conn, settings, row, "task-that-ended-0")
        assert (again.call.file_index, again.call.step_index) == (4, 0)
        assert window.rereleased(conn, settings, row, "task-that-ended-0") is None
        assert window.rereleased(conn, settings, row, "another-task") is None
    assert tokens(settings.sql_url)[4] == again.call.task_id != passed.call.task_id


def test_a_job_that_may_not_run_gives_no_place(job):
    settings, row = job
    with connection_scope(settings.sql_url) as conn:
        conn.execute(update(Job).where(Job.id == "job-w").values(status=JobStatus.PAUSED))
        assert window.fill(conn, settings, row) == []
        assert window.refill(conn, settings, row, "t") is None
    assert tokens(settings.sql_url) == [""] * 10


def test_without_a_window_a_fill_gives_every_waiting_file_a_place(job):
    settings, row = job
    unlimited = Settings(
        data_dir=settings.data_dir, database_url=settings.database_url, job_window=0
    )
    with connection_scope(settings.sql_url) as conn:
        steps = window.fill(conn, unlimited, row)
    assert [step.call.file_index for step in steps] == list(range(10))
    assert "" not in tokens(settings.sql_url)
