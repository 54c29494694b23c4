"""A job's totals over its file rows: records, record errors, records dropped by a filter,
records stopped at a checkpoint, and the steps its files have finished. One grouped query for
any number of jobs; the resource API's progress, health and metrics are read from them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.states import FileStatus
from shared.store.models import Job, JobFile


@dataclass(frozen=True)
class JobCounters:
    records: int = 0
    errors: int = 0  # records that failed a step
    filtered: int = 0  # records a filter step dropped
    checkpoint_failed: int = 0  # records stopped at a checkpoint
    steps_done: int = 0  # steps finished, summed over the files
    warnings: int = 0  # records that came through with warnings (counted as files end)


NONE = JobCounters()


def _steps_done() -> ColumnElement[int]:
    # A finished file has done every step (a failed one will run no more of them either); a
    # pending one those before its next.
    return case(
        (JobFile.status != FileStatus.PENDING, Job.num_steps),
        (JobFile.next_step < Job.num_steps, JobFile.next_step),
        else_=Job.num_steps,
    )


def counters_of(session: Session, job_ids: list[str]) -> dict[str, JobCounters]:
    """Each job's totals; a job without files (a compile) has none."""
    found = {job_id: NONE for job_id in job_ids}
    if not job_ids:
        return found
    rows = session.execute(
        select(
            JobFile.job_id,
            func.sum(JobFile.num_records),
            func.sum(JobFile.num_errors),
            func.sum(JobFile.num_filtered),
            func.sum(JobFile.num_checkpoint_failed),
            func.sum(_steps_done()),
            func.sum(JobFile.num_warnings),
        )
        .join(Job, Job.id == JobFile.job_id)
        .where(JobFile.job_id.in_(job_ids))
        .group_by(JobFile.job_id)
    )
    for job_id, *sums in rows:
        found[job_id] = JobCounters(*(int(value or 0) for value in sums))
    return found


def errors_of_job() -> ColumnElement[int]:
    """A correlated subquery on Job: the records of the job that failed a step."""
    return (
        select(func.coalesce(func.sum(JobFile.num_errors), 0))
        .where(JobFile.job_id == Job.id)
        .correlate(Job)
        .scalar_subquery()
    )
