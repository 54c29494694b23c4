"""The error budget's store side (shared/engine/budget.py) on both stores: counting failed
records fails the job once past its maxParseExceptions (once: a second step past it is
refused), with its webhook; stopping a failed job's files ends those no live claim holds and
counts them finished, hands back their queued tokens, leaves a running step's file to it, and
does nothing to a job that has not failed; a retry counts again from the files it keeps."""

from datetime import UTC, datetime, timedelta

import yaml
from sqlalchemy import select

from shared.accounts.users import create_user
from shared.config import Settings
from shared.engine.budget import count_record_errors, stop_files
from shared.engine.snapshot import job_snapshot
from shared.flow.compiler import compile_project
from shared.jobs.log import JobLogger
from shared.runs.control import retry_job
from shared.runs.submit import snapshot_binary
from shared.states import FileStatus, JobStatus
from shared.store.db import connection_scope, session_scope
from shared.store.models import Delivery, Job, JobFile

MESSAGE = "Failed: 3 records failed, more than maxParseExceptions 2"


def make_job(url: str, now: datetime) -> None:
    """Job ``job-1`` with a budget of 2, running, with a file of each kind."""
    with session_scope(url) as session:
        owner = create_user(session, "frank")
        session.add(
            Job(
                id="job-1",
                owner_id=owner.id,
                kind="flow",
                status=JobStatus.RUNNING,
                trace_id="trace",
                num_files=5,
                num_steps=3,
                files_done=1,
                max_parse_exceptions=2,
                settings={"webhook_config": {"url": "https://example.com/hook"}},
            )
        )
        session.flush()
        rows = {
            "done.txt": {"status": FileStatus.FAILED, "num_errors": 1, "failed_step": 1},
            "queued.txt": {"next_task_id": "queued-token"},
            "running.txt": {"claimed_by": "alive", "claimed_until": now + timedelta(hours=1)},
            "lapsed.txt": {"claimed_by": "dead", "claimed_until": now - timedelta(seconds=5)},
            "mine.txt": {"claimed_by": "me", "claimed_until": now + timedelta(hours=1)},
        }
        for index, (name, values) in enumerate(rows.items()):
            session.add(
                JobFile(job_id="job-1", file_index=index, file_name=name, next_step=1, **values)
            )


def count(url: str, errors: int) -> tuple[JobStatus, bool]:
    with connection_scope(url) as conn:
        job = job_snapshot(conn, "job-1")
        return count_record_errors(conn, job, errors, JobLogger("job-1", "t", "trace"))


def states(url: str) -> dict[str, str]:
    with session_scope(url, read_only=True) as session:
        return {
            name: str(state)
            for name, state in session.execute(select(JobFile.file_name, JobFile.status))
        }


def test_passing_the_budget_fails_the_job_once_and_stops_its_idle_files(store_url):
    now = datetime.now(UTC)
    make_job(store_url, now)
    settings = Settings(database_url=store_url)
    with connection_scope(store_url) as conn:
        job = job_snapshot(conn, "job-1")
    # Not failed yet: nothing to stop.
    assert stop_files(settings, job, "me") == []
    assert count(store_url, 2) == (JobStatus.RUNNING, False)  # 2: not more than 2
    assert count(store_url, 1) == (JobStatus.FAILED, True)
    assert count(store_url, 4) == (JobStatus.FAILED, False)  # failed already
    with session_scope(store_url, read_only=True) as session:
        row = session.get(Job, "job-1")
        assert (row.status, row.message, row.num_record_errors) == ("failed", MESSAGE, 7)
        hooks = list(session.scalars(select(Delivery.payload)))
    assert [hook["msg"] for hook in hooks] == [MESSAGE]  # one transition, one webhook

    assert stop_files(settings, job, "me") == ["queued-token"]
    assert states(store_url) == {
        "done.txt": "failed",
        "queued.txt": "cancelled",
        "running.txt": "pending",  # its step finishes; its advance stops it
        "lapsed.txt": "cancelled",
        "mine.txt": "cancelled",  # the caller's own claim is no running step
    }
    assert stop_files(settings, job, "me") == []  # idempotent
    with session_scope(store_url, read_only=True) as session:
        assert session.get(Job, "job-1").files_done == 4
        stopped = session.scalars(
            select(JobFile).where(JobFile.status == FileStatus.CANCELLED)
        ).all()
        assert {(f.next_task_id, f.claimed_by, f.claimed_until) for f in stopped} == {
            (None, None, None)
        }


def test_a_retry_counts_again_from_the_files_it_keeps(store_url, tmp_path):
    now = datetime.now(UTC)
    make_job(store_url, now)
    settings = Settings(data_dir=tmp_path / "var", database_url=store_url)
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    flow = {"name": "demo", "steps": [{"id": "read", "type": "extract_text"}]}
    (project / "flows/demo.ibflow").write_text(yaml.safe_dump(flow))
    artifact = compile_project(project, "Single Flow", {"flow_file": "flows/demo.ibflow"}, "t")
    snapshot_binary(settings, artifact.data, artifact.content_hash)
    with session_scope(store_url) as session:
        session.execute(
            JobFile.__table__.update()
            .where(JobFile.file_name != "done.txt")
            .values(status=FileStatus.COMPLETE, num_errors=2, claimed_by=None, next_step=1)
        )
        session.execute(
            JobFile.__table__.update()
            .where(JobFile.file_name == "done.txt")
            .values(failed_step=0)  # the flow here has one step
        )
        session.execute(
            Job.__table__.update().values(
                status=JobStatus.FAILED,
                num_record_errors=9,
                files_done=5,
                num_steps=1,
                binary_hash=artifact.content_hash,
            )
        )
    with session_scope(store_url) as session:
        job = session.get(Job, "job-1")
        # Only ``done.txt`` has a failed step: it is retried, the others keep their 4 x 2.
        retry_job(session, settings, job, "step_failure")
    with session_scope(store_url, read_only=True) as session:
        assert session.get(Job, "job-1").num_record_errors == 8
