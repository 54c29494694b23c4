"""shared/runs/file_jobs.py on both stores: a copy or an extract is recorded as a finished job,
COMPLETE with what it did or FAILED with why, with a log line, and shows in the seed's status as
DONE with a result either way."""

from __future__ import annotations

import pytest

from api.presenters import seed_status
from shared.accounts.principal import Principal
from shared.accounts.users import create_user
from shared.config import Settings
from shared.drive_ops import Transfer
from shared.jobs.log import read_logs
from shared.jobs.summary import run_summaries
from shared.runs.file_jobs import run_file_job
from shared.states import JobKind, JobStatus
from shared.store.db import session_scope
from shared.store.models import Job


@pytest.fixture
def setup(store_url, tmp_path) -> tuple[Settings, Principal]:
    settings = Settings(data_dir=tmp_path, database_url=store_url)
    with session_scope(store_url) as session:
        user = create_user(session, "carol")
        principal = Principal(user.id, user.username, False)
    return settings, principal


def shown(settings: Settings, job_id: str) -> tuple[Job, dict, list[dict]]:
    with session_scope(settings.sql_url) as session:
        job = session.get(Job, job_id)
        status = seed_status(job, run_summaries(session, [job])[job.id])
        return job, status, read_logs(session, job_id, 0)


def test_a_done_copy_is_a_complete_job_with_its_result(setup):
    settings, principal = setup
    job_id = run_file_job(
        settings, principal, JobKind.COPY, "carol/a", "carol/b", lambda: Transfer(2, 10, 1)
    )
    job, status, logs = shown(settings, job_id)
    assert (job.kind, job.status, job.owner_id) == (
        JobKind.COPY,
        JobStatus.COMPLETE,
        principal.user_id,
    )
    assert job.started_at is not None and job.finished_at is not None
    assert status["state"] == "DONE"
    assert status["results"] == [{"status": "OK", "output_folder": "carol/b"}]
    assert [line["log"] for line in logs] == ["Copied 2 file(s), 10 bytes, into carol/b"]


def test_work_the_file_system_fails_is_a_failed_job_not_an_error(setup):
    settings, principal = setup

    def full_disk():
        raise OSError(28, "No space left on device")

    job_id = run_file_job(settings, principal, JobKind.EXTRACT, "carol/a.zip", "carol/x", full_disk)
    job, status, logs = shown(settings, job_id)
    assert job.status == JobStatus.FAILED and "No space left on device" in job.message
    assert status["state"] == "DONE" and status["results"][0]["status"] == "ERROR"
    assert logs[0]["level"] == "ERROR"


def test_a_bug_in_the_work_is_recorded_then_raised(setup):
    settings, principal = setup

    def bug():
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_file_job(settings, principal, JobKind.COPY, "carol/a", "carol/b", bug)
    with session_scope(settings.sql_url) as session:
        (job,) = session.query(Job).all()
        assert job.status == JobStatus.FAILED and "KeyError" in job.message
