"""The health rule (shared/jobs/health.py), as answers give it and as filters select it: a job
asked to be suspended that still runs a step DESIRED_STATE_LAG after the wish warns, with the
time of the wish; within the bound, or once nothing of it runs, it does not. Failure and error
counts rule as before."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.accounts.users import create_user
from shared.jobs.counters import JobCounters
from shared.jobs.health import DESIRED_STATE_LAG, Health, health_condition, health_of
from shared.states import DesiredExecution, JobStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - DESIRED_STATE_LAG - timedelta(seconds=1)
JUST_NOW = NOW - DESIRED_STATE_LAG + timedelta(seconds=1)
CLEAN = JobCounters(records=4)
TWO_FAILED = JobCounters(records=4, errors=2)


def paused_job(desired_at: datetime | None, **values) -> Job:
    return Job(
        id="job-1",
        status=values.pop("status", JobStatus.PAUSED),
        desired_execution_status=values.pop("desired", DesiredExecution.SUSPENDED),
        desired_at=desired_at,
        message=values.pop("message", "Paused"),
        max_parse_exceptions=values.pop("max_parse_exceptions", None),
    )


def test_a_pause_not_reached_after_the_bound_warns_with_the_time_of_the_wish():
    health, message = health_of(paused_job(LONG_AGO), CLEAN, steps_running=True, now=NOW)
    assert health == Health.WARN
    stamp = LONG_AGO.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert message == (
        f"It has not reached its desired state (suspended) since {stamp}: "
        "a step of it is still running"
    )


def test_record_errors_and_a_lag_are_both_told():
    health, message = health_of(paused_job(LONG_AGO), TWO_FAILED, steps_running=True, now=NOW)
    assert health == Health.WARN
    assert message.startswith("2 of 4 records failed; it has not reached its desired state")


@pytest.mark.parametrize(
    ("job", "steps_running"),
    [
        (paused_job(JUST_NOW), True),  # still within the bound
        (paused_job(LONG_AGO), False),  # nothing runs: it is suspended
        (paused_job(None), True),  # no time of the wish recorded (a job from before 0009)
        # Asked to be suspended once, then retried: the job runs as it was asked to since.
        (paused_job(LONG_AGO, status=JobStatus.RUNNING), True),
    ],
)
def test_a_job_on_its_way_or_there_is_ok(job, steps_running):
    assert health_of(job, CLEAN, steps_running=steps_running, now=NOW) == (Health.OK, "")


def test_failure_and_the_error_limit_still_come_first():
    failed = paused_job(LONG_AGO, status=JobStatus.FAILED, message="Failed: no record")
    assert health_of(failed, CLEAN, steps_running=True, now=NOW) == (
        Health.ERROR,
        "Failed: no record",
    )
    limited = paused_job(LONG_AGO, max_parse_exceptions=1)
    health, message = health_of(limited, TWO_FAILED, steps_running=True, now=NOW)
    assert health == Health.ERROR and "more than maxParseExceptions (1)" in message


def add_job(session, owner_id: int, job_id: str, desired_at, claimed_until) -> None:
    """A paused job asked to be suspended at ``desired_at``, with one pending file whose step
    holds a claim until ``claimed_until`` (None: no claim)."""
    session.add(
        Job(
            id=job_id,
            owner_id=owner_id,
            kind="flow",
            status=JobStatus.PAUSED,
            desired_execution_status=DesiredExecution.SUSPENDED,
            desired_at=desired_at,
            trace_id="trace",
            num_files=1,
            num_steps=2,
        )
    )
    session.flush()
    session.add(
        JobFile(
            job_id=job_id,
            file_index=0,
            file_name="a.txt",
            status="pending",
            next_step=1,
            claimed_by="t1" if claimed_until else None,
            claimed_until=claimed_until,
        )
    )


def test_the_filter_selects_what_the_answer_says(store_url):
    now = datetime.now(UTC)
    with session_scope(store_url) as session:
        owner = create_user(session, "erin").id
        add_job(session, owner, "lagging", now - DESIRED_STATE_LAG * 2, now + timedelta(hours=1))
        add_job(session, owner, "pausing", now - timedelta(minutes=1), now + timedelta(hours=1))
        add_job(session, owner, "lapsed", now - DESIRED_STATE_LAG * 2, now - timedelta(hours=1))
        add_job(session, owner, "suspended", now - DESIRED_STATE_LAG * 2, None)
        add_job(session, owner, "unknown", None, now + timedelta(hours=1))

    def selected(*wanted: Health) -> list[str]:
        with session_scope(store_url, read_only=True) as session:
            return sorted(
                session.scalars(select(Job.id).where(health_condition(set(wanted), now=now)))
            )

    assert selected(Health.WARN) == ["lagging"]
    assert selected(Health.OK) == ["lapsed", "pausing", "suspended", "unknown"]
    assert selected(Health.ERROR) == []
    assert selected(Health.OK, Health.WARN) == [
        "lagging",
        "lapsed",
        "pausing",
        "suspended",
        "unknown",
    ]
