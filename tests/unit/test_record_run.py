"""Recording a submitted run: the job with its files, tags and pipelines, all or nothing, on
both stores, and on PostgreSQL both ways (one statement for a run of few files without tags or
pipelines, else a transaction)."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from shared.accounts.users import create_user
from shared.runs.record import ONE_STATEMENT_FILES, record_run
from shared.states import JobStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile, JobPipeline, JobTag


def owner(url: str) -> int:
    with session_scope(url) as session:
        return create_user(session, "carol").id


def rows_for(job_id: str, owner_id: int, files: int) -> tuple[dict, list[dict]]:
    job = {
        "id": job_id,
        "owner_id": owner_id,
        "kind": "flow",
        "status": JobStatus.QUEUED,
        "trace_id": "t",
        "settings": {"runtime_config": {"a": 1}},
        "num_files": files,
    }
    file_rows = [
        {
            "job_id": job_id,
            "file_index": index,
            "file_name": f"f{index}.txt",
            "status": "pending",
            "next_step": 0,
            "next_task_id": f"task-{index}",
        }
        for index in range(files)
    ]
    return job, file_rows


def recorded(url: str, job_id: str) -> tuple[Job | None, list, list, list]:
    with session_scope(url, read_only=True) as session:
        job = session.get(Job, job_id)
        files = session.execute(
            select(
                JobFile.file_index,
                JobFile.file_name,
                JobFile.next_task_id,
                JobFile.attempts,
                JobFile.error_counts,
            )
            .where(JobFile.job_id == job_id)
            .order_by(JobFile.file_index)
        ).all()
        tags = session.scalars(
            select(JobTag.tag).where(JobTag.job_id == job_id).order_by(JobTag.tag)
        ).all()
        pipelines = session.scalars(
            select(JobPipeline.pipeline_id).where(JobPipeline.job_id == job_id)
        ).all()
    return job, files, tags, pipelines


@pytest.mark.parametrize("files", [1, ONE_STATEMENT_FILES, ONE_STATEMENT_FILES + 1, 1000])
def test_the_job_is_recorded_with_its_files(store_url, files):
    job, file_rows = rows_for("job-1", owner(store_url), files)
    record_run(store_url, job, file_rows, [], [])
    found, found_files, tags, pipelines = recorded(store_url, "job-1")
    assert (found.status, found.settings, found.num_files, found.files_done) == (
        JobStatus.QUEUED,
        {"runtime_config": {"a": 1}},
        files,
        0,
    )
    assert found.created_at is not None  # the column defaults were filled in
    assert found_files == [(i, f"f{i}.txt", f"task-{i}", 0, {}) for i in range(files)]
    assert (tags, pipelines) == ([], [])


def test_the_job_is_recorded_with_its_tags_and_pipelines(store_url):
    record_run(
        store_url,
        *rows_for("job-1", owner(store_url), 2),
        ["b", "a", "b"],
        [{"job_id": "job-1", "pipeline_id": "p-1"}],
    )
    _, found_files, tags, pipelines = recorded(store_url, "job-1")
    assert (len(found_files), tags, pipelines) == (2, ["a", "b"], ["p-1"])


@pytest.mark.parametrize("files", [1, ONE_STATEMENT_FILES + 1])
def test_a_taken_job_id_is_refused_and_leaves_nothing_of_the_second_run(store_url, files):
    owner_id = owner(store_url)
    record_run(store_url, *rows_for("job-1", owner_id, 1), [], [])
    job, file_rows = rows_for("job-1", owner_id, files)
    for row in file_rows:
        row["file_index"] += 1  # files that would not clash by themselves
    with pytest.raises(IntegrityError):
        record_run(store_url, job, file_rows, [], [])
    _, found_files, _, _ = recorded(store_url, "job-1")
    assert len(found_files) == 1
    with session_scope(store_url, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(JobFile)) == 1
