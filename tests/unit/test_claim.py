"""A step's claim of its file, and the move of a queued job to running that its first step makes:
on PostgreSQL in the claim's own statement (shared/engine/statements.py's CLAIM_AND_START),
which never waits for the job's row; when it cannot take the row, or on SQLite, the runner makes
the move itself."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from shared.accounts.users import create_user
from shared.config import Settings
from shared.engine import snapshot, statements
from shared.engine.runner import StepRunner
from shared.engine.scheduling import CLAIM_GRACE, StepCall
from shared.engine.snapshot import JobSnapshot, cached_snapshot, job_snapshot, remember_snapshot
from shared.states import JobStatus
from shared.store.db import connection_scope, engine_for, session_scope, statement_scope
from shared.store.models import Job, JobFile
from tests.support import wait_for

# Its own id: worker processes keep a job's snapshot by store URL and id, and PostgreSQL's
# store tests share one URL.
JOB = "claim-job"
# The soft time limit a step's message carries.
STEP_LIMIT = 300


def make_job(url: str, status: JobStatus, job_id: str = JOB) -> None:
    """Job ``job_id`` in ``status``, its one file waiting for step 0 with token ``t1``."""
    with session_scope(url) as session:
        user = create_user(session, "carol")
        session.add(
            Job(
                id=job_id,
                owner_id=user.id,
                kind="flow",
                status=status.value,
                message=status.value.title(),
                trace_id="trace",
                num_files=1,
                num_steps=3,
            )
        )
        session.flush()
        session.add(
            JobFile(
                job_id=job_id,
                file_index=0,
                file_name="a.txt",
                status="pending",
                next_step=0,
                next_task_id="t1",
            )
        )


def claim_params(task_id: str = "t1", job_id: str = JOB) -> dict:
    now = datetime.now(UTC)
    return {
        "b_job_id": job_id,
        "b_file_index": 0,
        "step": 0,
        "task_id": task_id,
        "max_attempts": 3,
        "until": now + timedelta(minutes=5),
        "now": now,
        "new_message": "Running",
    }


def job_row(url: str) -> Job:
    with session_scope(url, read_only=True) as session:
        return session.scalars(select(Job)).one()


def snapshot_of(job: Job) -> JobSnapshot:
    return JobSnapshot(*(getattr(job, name) for name in JobSnapshot.__dataclass_fields__))


def unseen_job_id() -> str:
    """An id no worker process has a snapshot of yet."""
    return f"claim-{uuid.uuid4()}"


def test_the_first_claim_starts_a_queued_job_in_its_own_statement(postgresql_store):
    make_job(postgresql_store, JobStatus.QUEUED)
    with statement_scope(postgresql_store) as conn:
        claimed = statements.CLAIM_AND_START.first(conn, claim_params())
    assert (claimed.file_name, claimed.job_status, claimed.started) == (
        "a.txt",
        JobStatus.QUEUED,
        True,
    )
    job = job_row(postgresql_store)
    assert (job.status, job.message) == (JobStatus.RUNNING, "Running")
    assert job.started_at is not None


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.PAUSED])
def test_a_claim_changes_no_job_that_is_not_queued(postgresql_store, status):
    make_job(postgresql_store, status)
    with statement_scope(postgresql_store) as conn:
        claimed = statements.CLAIM_AND_START.first(conn, claim_params())
    if status == JobStatus.PAUSED:
        assert claimed is None  # a paused job's files are not claimed
    else:
        assert (claimed.job_status, claimed.started) == (JobStatus.RUNNING, False)
    assert job_row(postgresql_store).status == status


def test_a_refused_claim_leaves_the_queued_job_queued(postgresql_store):
    make_job(postgresql_store, JobStatus.QUEUED)
    with statement_scope(postgresql_store) as conn:
        assert statements.CLAIM_AND_START.first(conn, claim_params("stale-token")) is None
    assert job_row(postgresql_store).status == JobStatus.QUEUED


def test_the_claim_does_not_wait_for_a_job_row_another_transaction_holds(postgresql_store):
    make_job(postgresql_store, JobStatus.QUEUED)
    with engine_for(postgresql_store).connect() as holder:
        holder.execute(text("SELECT id FROM jobs WHERE id = 'claim-job' FOR UPDATE"))
        with statement_scope(postgresql_store) as conn:
            # Waiting for the row would be an error here, not a hang.
            conn.exec_driver_sql("SET statement_timeout = '5s'")
            claimed = statements.CLAIM_AND_START.first(conn, claim_params())
            conn.exec_driver_sql("RESET statement_timeout")
        assert (claimed.file_name, claimed.started) == ("a.txt", False)
        holder.rollback()
    assert job_row(postgresql_store).status == JobStatus.QUEUED


def test_a_claim_can_read_the_snapshot_of_its_job(postgresql_store):
    job_id = unseen_job_id()
    make_job(postgresql_store, JobStatus.QUEUED, job_id)
    with statement_scope(postgresql_store) as conn:
        claimed = statements.CLAIM_START_AND_SNAPSHOT.first(conn, claim_params(job_id=job_id))
        assert (claimed.file_name, claimed.job_status, claimed.started) == (
            "a.txt",
            JobStatus.QUEUED,
            True,
        )
        assert remember_snapshot(conn, claimed) == snapshot_of(job_row(postgresql_store))


class _NoSeparateRead:
    def first(self, conn, params):
        raise AssertionError("the snapshot was read in a statement of its own")


def test_the_runner_reads_a_job_it_has_not_seen_with_its_claim(postgresql_store, monkeypatch):
    job_id = unseen_job_id()
    make_job(postgresql_store, JobStatus.QUEUED, job_id)
    monkeypatch.setattr(snapshot, "_SNAPSHOT", _NoSeparateRead())
    runner = StepRunner(Settings(database_url=postgresql_store))
    with statement_scope(postgresql_store) as conn:
        file_name, job = runner._claim(conn, StepCall(job_id, 0, 0, "t1"), None, STEP_LIMIT)
        assert file_name == "a.txt"
        assert job == snapshot_of(job_row(postgresql_store)) == cached_snapshot(conn, job_id)
    assert job_row(postgresql_store).status == JobStatus.RUNNING


def test_a_refused_claim_reads_no_snapshot(postgresql_store):
    """The runner reads it itself then, for the refusal's handling."""
    job_id = unseen_job_id()
    make_job(postgresql_store, JobStatus.QUEUED, job_id)
    runner = StepRunner(Settings(database_url=postgresql_store))
    with statement_scope(postgresql_store) as conn:
        refused = runner._claim(conn, StepCall(job_id, 0, 0, "stale"), None, STEP_LIMIT)
        assert refused == (None, None)
        assert cached_snapshot(conn, job_id) is None
    assert job_row(postgresql_store).status == JobStatus.QUEUED


def test_a_claim_lasts_for_the_limit_its_message_carries(store_url):
    make_job(store_url, JobStatus.QUEUED)
    runner = StepRunner(Settings(database_url=store_url))
    before = datetime.now(UTC)
    with statement_scope(store_url) as conn:
        job = job_snapshot(conn, JOB)
        assert runner._claim(conn, StepCall(JOB, 0, 0, "t1"), job, 42)[0] == "a.txt"
    after = datetime.now(UTC)
    with session_scope(store_url, read_only=True) as session:
        until = session.scalars(select(JobFile.claimed_until)).one()
    if until.tzinfo is None:  # SQLite keeps no time zone
        until = until.replace(tzinfo=UTC)
    grace = timedelta(seconds=42) + CLAIM_GRACE
    assert before + grace <= until <= after + grace


def run_claim(url: str) -> str | None:
    settings = Settings(database_url=url)
    with statement_scope(url) as conn:
        job = job_snapshot(conn, JOB)
        return StepRunner(settings)._claim(conn, StepCall(JOB, 0, 0, "t1"), job, STEP_LIMIT)[0]


def test_the_runner_starts_a_queued_job_with_its_first_claim(store_url):
    make_job(store_url, JobStatus.QUEUED)
    assert run_claim(store_url) == "a.txt"
    assert job_row(store_url).status == JobStatus.RUNNING


def test_the_runner_starts_the_job_itself_once_a_held_job_row_is_free(postgresql_store):
    """The claim skipped the held row: the runner's own move waits for it, then starts the
    job, so a first step never leaves its job queued."""
    make_job(postgresql_store, JobStatus.QUEUED)
    outcome = {}
    with connection_scope(postgresql_store) as holder:
        holder.execute(text("SELECT id FROM jobs WHERE id = 'claim-job' FOR UPDATE"))
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
        claiming = threading.Thread(target=lambda: outcome.update(file=run_claim(postgresql_store)))
        claiming.start()
        wait_for(
            lambda: _blocked_by(postgresql_store, holder_pid),
            timeout=10,
            message="the runner's move of the job to wait for the held row",
        )
    claiming.join(timeout=10)
    assert outcome == {"file": "a.txt"}
    assert job_row(postgresql_store).status == JobStatus.RUNNING


def _blocked_by(url: str, pid: int) -> bool:
    """Whether a statement waits for a lock that the backend ``pid`` holds (read outside its
    transaction: pg_stat_activity is a snapshot per transaction)."""
    with statement_scope(url) as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE :pid = ANY(pg_blocking_pids(pid)) AND query LIKE 'UPDATE jobs%'"
                ),
                {"pid": pid},
            ).scalar()
        )
