"""A job's health, seed 003's ``health.status``, by one rule that answers and filters share:

- ``error``: the job failed, or more of its records failed a step than its maxParseExceptions
  allows;
- ``warn``: otherwise, some of its records failed a step (they fail alone; the job goes on);
- ``ok``: no record failed.

Records stopped at a checkpoint or dropped by a filter are not errors: they are what the flow
asked for. A cancelled job is as healthy as its records were.
"""

from __future__ import annotations

import enum

from sqlalchemy import and_, false, not_, or_
from sqlalchemy.sql import ColumnElement

from shared.jobs.counters import JobCounters, errors_of_job
from shared.states import JobStatus
from shared.store.models import Job


class Health(enum.StrEnum):
    OK = "ok"  # no record failed
    WARN = "warn"  # some records failed, within the job's limit
    ERROR = "error"  # the job failed, or more records failed than its limit


def over_limit(job: Job, errors: int) -> bool:
    return job.max_parse_exceptions is not None and errors > job.max_parse_exceptions


def health_of(job: Job, counters: JobCounters) -> tuple[Health, str]:
    """The job's health and a message that says why."""
    if job.status == JobStatus.FAILED:
        return Health.ERROR, job.message or "the job failed"
    if over_limit(job, counters.errors):
        return Health.ERROR, (
            f"{counters.errors} records failed, more than maxParseExceptions "
            f"({job.max_parse_exceptions})"
        )
    if counters.errors:
        return Health.WARN, f"{counters.errors} of {counters.records} records failed"
    return Health.OK, ""


def _error_condition() -> ColumnElement[bool]:
    errors = errors_of_job()
    return or_(
        Job.status == JobStatus.FAILED,
        and_(Job.max_parse_exceptions.is_not(None), errors > Job.max_parse_exceptions),
    )


def health_condition(wanted: set[Health]) -> ColumnElement[bool]:
    """A condition on Job: its health is one of ``wanted``."""
    if not wanted:
        return false()
    error = _error_condition()
    errors = errors_of_job()
    conditions = {
        Health.ERROR: error,
        Health.WARN: and_(not_(error), errors > 0),
        Health.OK: and_(not_(error), errors == 0),
    }
    return or_(*(conditions[health] for health in sorted(wanted)))
