"""Reads of one job outside a transaction: jobs/status's (shared/jobs/job_status.py), one
statement that says what the per-list functions say of the same job and sees only what the
caller may see, and the v2 job read's row with its totals (shared/jobs/counters.py)."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import event

from shared.accounts.principal import Principal
from shared.accounts.users import create_user
from shared.errors import NotFound
from shared.jobs.counters import NONE, counters_of, job_with_counters
from shared.jobs.job_status import job_status
from shared.jobs.summary import jobs_with_running_steps, run_summaries
from shared.review.metrics import review_metrics
from shared.states import JobStatus
from shared.store.db import engine_for, session_scope, statement_session
from shared.store.migrate import upgrade
from shared.store.models import Job, JobFile, JobStepCount, RecordReview, User
from tests.conftest import fresh_database

STOPPED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def principal_of(session, username: str) -> Principal:
    user = session.query(User).filter_by(username=username).one()
    return Principal(user.id, user.username, user.is_admin)


def stopped_job(url: str, claimed_until: datetime) -> str:
    """A job stopped at a checkpoint: counters on its row and in two shards, a review from
    this stop and one from an earlier stop, and a file whose claim lasts until
    ``claimed_until``."""
    with session_scope(url) as session:
        owner = create_user(session, "olive")
        create_user(session, "stranger")
        session.add(
            Job(
                id="job-1",
                owner_id=owner.id,
                kind="flow",
                status=JobStatus.STOPPED_AT_CHECKPOINT.value,
                trace_id="t",
                num_files=2,
                num_steps=3,
                steps_done=2,
                total_records=7,
                total_checkpoint_failed=3,
                total_filtered=1,
                finished_at=STOPPED_AT,
            )
        )
        session.flush()
        session.add_all(
            [
                JobStepCount(job_id="job-1", shard=0, steps_done=1, filtered=2),
                JobStepCount(job_id="job-1", shard=5, steps_done=1, filtered=0),
                RecordReview(
                    job_id="job-1",
                    file_index=0,
                    record_index=0,
                    reviewer="olive",
                    job_stopped_at=STOPPED_AT,
                ),
                RecordReview(
                    job_id="job-1",
                    file_index=0,
                    record_index=1,
                    reviewer="olive",
                    job_stopped_at=STOPPED_AT - timedelta(days=1),
                ),
                JobFile(
                    job_id="job-1",
                    file_index=0,
                    file_name="a.txt",
                    status="pending",
                    claimed_by="task-1",
                    claimed_until=claimed_until,
                ),
            ]
        )
    return "job-1"


@pytest.mark.parametrize("claim_lasts", [True, False], ids=["claim-lasts", "claim-lapsed"])
def test_it_says_what_the_list_functions_say_of_the_job(store_url, claim_lasts):
    now = datetime.now(UTC)
    job_id = stopped_job(store_url, now + timedelta(minutes=5) if claim_lasts else now)
    with statement_session(store_url) as session:
        read = job_status(session, principal_of(session, "olive"), job_id)
    with session_scope(store_url, read_only=True) as session:
        job = session.get(Job, job_id)
        summaries = run_summaries(session, [job])
        expected_review = review_metrics(session, [job], summaries)[job_id]
        expected_running = job_id in jobs_with_running_steps(session, [job_id])
    assert read.summary == summaries[job_id]
    assert read.summary.progress == round(4 / 6, 4)  # 2 steps on the row, 2 in its shards
    assert read.summary.num_filtered == 3
    # Three records stopped; the review from the earlier stop does not settle one of them.
    assert read.review_metrics == expected_review == {"reviewed": 2, "pending": 2}
    assert read.steps_running is expected_running is claim_lasts


def test_it_is_one_statement(store_url):
    job_id = stopped_job(store_url, datetime.now(UTC))
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = engine_for(store_url)
    with statement_session(store_url) as session:
        principal = principal_of(session, "olive")
        event.listen(engine, "before_cursor_execute", count)
        try:
            job_status(session, principal, job_id)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements


@pytest.mark.parametrize("job_id", ["job-1", "no-such-job"])
def test_a_job_the_caller_may_not_see_is_missing(store_url, job_id):
    stopped_job(store_url, datetime.now(UTC))
    with statement_session(store_url) as session, pytest.raises(NotFound, match=job_id):
        job_status(session, principal_of(session, "stranger"), job_id)


def test_postgresql_reads_it_outside_a_transaction(tmp_path):
    """No BEGIN and COMMIT round trips: the server holds no transaction open after the read."""
    url = fresh_database("postgresql", tmp_path, schema="store_tests")
    upgrade(url)
    job_id = stopped_job(url, datetime.now(UTC))
    with statement_session(url) as session:
        job_status(session, principal_of(session, "olive"), job_id)
        driver = session.connection().connection.driver_connection
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_job_is_read_with_its_totals_in_its_shards(store_url):
    job_id = stopped_job(store_url, datetime.now(UTC))
    with statement_session(store_url) as session:
        job, counters = job_with_counters(session, job_id)
        assert job_with_counters(session, "no-such-job") == (None, NONE)
    with session_scope(store_url, read_only=True) as session:
        assert counters == counters_of(session, [job_id])[job_id]
    assert (job.id, counters.steps_done, counters.filtered) == (job_id, 4, 3)
