"""The state machine where it is written: conditional UPDATEs on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.accounts.credentials import authenticate, create_token, hash_token
from shared.accounts.users import create_user
from shared.errors import InvalidTransition
from shared.jobs.log import (
    LINES_PER_INSERT,
    JobLogger,
    read_logs,
    seed_timestamp,
    write_lines,
)
from shared.jobs.store import transition_job
from shared.states import JobStatus
from shared.store.db import connection_scope, session_scope
from shared.store.models import Job


def make_job(url: str, status: JobStatus = JobStatus.QUEUED) -> str:
    with session_scope(url) as session:
        user = create_user(session, "carol")
        session.add(
            Job(id="job-1", owner_id=user.id, kind="flow", status=status.value, trace_id="t")
        )
    return "job-1"


def status_of(url: str, job_id: str) -> str:
    with session_scope(url) as session:
        return session.get(Job, job_id).status


def test_allowed_transition_is_written(store_url):
    job_id = make_job(store_url)
    with session_scope(store_url) as session:
        assert transition_job(session, job_id, JobStatus.RUNNING)
    assert status_of(store_url, job_id) == "running"


def test_refused_transition_raises_and_changes_nothing(store_url):
    job_id = make_job(store_url, JobStatus.CANCELLED)
    with (
        pytest.raises(InvalidTransition, match="is cancelled and cannot become queued"),
        session_scope(store_url) as session,
    ):
        transition_job(session, job_id, JobStatus.QUEUED)
    with session_scope(store_url) as session:
        assert not transition_job(session, job_id, JobStatus.RUNNING, strict=False)
    assert status_of(store_url, job_id) == "cancelled"


def test_only_one_of_two_racing_writers_wins(store_url):
    job_id = make_job(store_url, JobStatus.RUNNING)
    with session_scope(store_url) as session:
        first = transition_job(session, job_id, JobStatus.COMPLETE, strict=False)
    with session_scope(store_url) as session:
        second = transition_job(session, job_id, JobStatus.COMPLETE, strict=False)
    assert (first, second) == (True, False)


@pytest.mark.parametrize("start", [JobStatus.RUNNING, JobStatus.CANCELLED])
def test_a_transition_writes_its_log_line_only_if_the_job_moved(store_url, start):
    job_id = make_job(store_url, start)
    line = JobLogger(job_id, "task-1", "trace-1").line("INFO", "Completed flow")
    with connection_scope(store_url) as conn:
        moved = transition_job(
            conn, job_id, JobStatus.COMPLETE, message="Completed flow", strict=False, log_line=line
        )
    assert moved == (start == JobStatus.RUNNING)
    with session_scope(store_url, read_only=True) as session:
        lines = read_logs(session, job_id, offset=0)
    if moved:
        assert status_of(store_url, job_id) == "complete"
        assert [(entry["level"], entry["log"], entry["task_id"]) for entry in lines] == [
            ("INFO", "Completed flow", "task-1")
        ]
    else:
        assert status_of(store_url, job_id) == "cancelled" and lines == []


def test_tokens_are_stored_hashed_and_authenticate(store_url):
    with session_scope(store_url) as session:
        create_user(session, "dave", is_admin=True)
        token = create_token(session, "dave")
    with session_scope(store_url) as session:
        principal = authenticate(session, token)
        from shared.store.models import ApiToken

        stored = [row.token_hash for row in session.query(ApiToken)]
    assert principal.username == "dave" and principal.is_admin
    assert stored == [hash_token(token)] and token not in stored


def test_migrations_match_the_models(store_url):
    from alembic import command

    from shared.store.migrate import alembic_config

    command.check(alembic_config(store_url))


def test_log_lines_are_written_in_order_across_several_inserts(store_url):
    job_id = make_job(store_url)
    logger = JobLogger(job_id, "task-1", "trace-1", prefix="[p] ")
    count = 2 * LINES_PER_INSERT + 3  # three statements: full, full and a short one
    for number in range(count):
        logger.log("warning" if number % 2 else "info", f"line {number}")
    with connection_scope(store_url) as conn:
        logger.write(conn)
    assert logger.entries == []
    with session_scope(store_url, read_only=True) as session:
        lines = read_logs(session, job_id, offset=0)
    assert [line["log"] for line in lines] == [f"[p] line {n}" for n in range(count)]
    assert [line["level"] for line in lines[:2]] == ["INFO", "WARNING"]
    assert {(line["job_id"], line["task_id"], line["trace_id"]) for line in lines} == {
        (job_id, "task-1", "trace-1")
    }
    assert len({line["span_id"] for line in lines}) == 1


def test_a_lines_time_reads_as_the_seed_shows_it_in_utc(store_url):
    job_id = make_job(store_url)
    logger = JobLogger(job_id, "task-1", "trace-1")
    moments = [
        datetime(2022, 12, 7, 23, 27, 54, 636999, tzinfo=UTC),
        datetime(2022, 12, 7, 23, 27, 56, tzinfo=UTC),
    ]
    lines = [logger.line("INFO", f"line {n}") | {"ts": moment} for n, moment in enumerate(moments)]
    with connection_scope(store_url) as conn:
        write_lines(conn, lines)
    with session_scope(store_url, read_only=True) as session:
        shown = [entry["ts"] for entry in read_logs(session, job_id, offset=0)]
    assert shown == ["2022-12-07 23:27:54,636", "2022-12-07 23:27:56,000"]
    # A store whose session is in another time zone hands times back in it.
    elsewhere = datetime(2022, 12, 8, 1, 27, 55, 5000, tzinfo=timezone(timedelta(hours=2)))
    assert seed_timestamp(elsewhere) == "2022-12-07 23:27:55,005"
