"""A job's health, seed 003's ``health.status``, by one rule that answers and filters share:

- ``error``: the job failed (a job whose records failed more often than its maxParseExceptions
  allows fails: shared/engine/budget.py), or more of its records failed a step than that;
- ``warn``: otherwise, some of its records failed a step (they fail alone; the job goes on), or
  it lags behind its desired state: it was asked to be suspended more than ``DESIRED_STATE_LAG``
  ago and a step of it is still running;
- ``ok``: no record failed, and the job is where it was asked to be or on its way there.

Records stopped at a checkpoint or dropped by a filter are not errors: they are what the flow
asked for. A cancelled job is as healthy as its records were.

The lag bound is fixed, not derived from each step's time limit: a step runs at most its time
limit (whose claim then lapses, and a lapsed claim is no running step), so a pause is normally
reached within a few minutes; one that is not after ten is worth a look, whatever the flow.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, false, not_, or_, select
from sqlalchemy.sql import ColumnElement

from shared.jobs.counters import JobCounters, errors_of_job
from shared.states import DesiredExecution, FileStatus, JobStatus
from shared.store.models import Job, JobFile

DESIRED_STATE_LAG = timedelta(minutes=10)
"""How long a job asked to be suspended may still run a step before its health warns."""


class Health(enum.StrEnum):
    OK = "ok"  # no record failed
    WARN = "warn"  # some records failed, within the job's limit; or it lags its desired state
    ERROR = "error"  # the job failed, or more records failed than its limit


def over_limit(job: Job, errors: int) -> bool:
    return job.max_parse_exceptions is not None and errors > job.max_parse_exceptions


def lags(job: Job, steps_running: bool, now: datetime) -> bool:
    """The job was asked to be suspended more than DESIRED_STATE_LAG ago and still runs a
    step (``steps_running``: a pending file of it holds a live claim)."""
    return (
        steps_running
        and job.status == JobStatus.PAUSED
        and job.desired_execution_status == DesiredExecution.SUSPENDED
        and job.desired_at is not None
        and job.desired_at <= now - DESIRED_STATE_LAG
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def health_of(
    job: Job,
    counters: JobCounters,
    steps_running: bool = False,
    now: datetime | None = None,
) -> tuple[Health, str]:
    """The job's health and a message that says why. ``steps_running``: whether a step of the
    job is running now (shared/jobs/summary.py ``jobs_with_running_steps``)."""
    if job.status == JobStatus.FAILED:
        return Health.ERROR, job.message or "the job failed"
    if over_limit(job, counters.errors):
        return Health.ERROR, (
            f"{counters.errors} records failed, more than maxParseExceptions "
            f"({job.max_parse_exceptions})"
        )
    failed = f"{counters.errors} of {counters.records} records failed" if counters.errors else ""
    if lags(job, steps_running, now or datetime.now(UTC)):
        lag = (
            f"it has not reached its desired state ({job.desired_execution_status}) since "
            f"{_stamp(job.desired_at)}: a step of it is still running"
        )
        return Health.WARN, f"{failed}; {lag}" if failed else lag[0].upper() + lag[1:]
    if failed:
        return Health.WARN, failed
    return Health.OK, ""


def _error_condition() -> ColumnElement[bool]:
    errors = errors_of_job()
    return or_(
        Job.status == JobStatus.FAILED,
        and_(Job.max_parse_exceptions.is_not(None), errors > Job.max_parse_exceptions),
    )


def _lag_condition(now: datetime) -> ColumnElement[bool]:
    """``lags`` in SQL: the running step is a pending file of the job with a live claim."""
    running = exists(
        select(JobFile.id).where(
            JobFile.job_id == Job.id,
            JobFile.status == FileStatus.PENDING,
            JobFile.claimed_by.is_not(None),
            JobFile.claimed_until > now,
        )
    )
    # Never NULL (a NOT of it would drop the job from ``ok``): each column is checked first.
    return and_(
        Job.status == JobStatus.PAUSED,
        Job.desired_execution_status.is_not(None),
        Job.desired_execution_status == DesiredExecution.SUSPENDED,
        Job.desired_at.is_not(None),
        Job.desired_at <= now - DESIRED_STATE_LAG,
        running,
    )


def health_condition(wanted: set[Health], now: datetime | None = None) -> ColumnElement[bool]:
    """A condition on Job: its health is one of ``wanted``."""
    if not wanted:
        return false()
    error = _error_condition()
    errors = errors_of_job()
    lag = _lag_condition(now or datetime.now(UTC))
    conditions = {
        Health.ERROR: error,
        Health.WARN: and_(not_(error), or_(errors > 0, lag)),
        Health.OK: and_(not_(error), errors == 0, not_(lag)),
    }
    return or_(*(conditions[health] for health in sorted(wanted)))
