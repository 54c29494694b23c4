"""A job's totals over its file rows: records, record errors, records dropped by a filter,
records stopped at a checkpoint, records with warnings, the steps its files have finished and
the records per error message. The resource API's progress, health and metrics and the seed's
run summary are read from them.

They are kept on the job's row (migration 0011), so that a read costs one row however many
files the job has. The statements that move a file change them in the same transaction:

- a step that is not its file's last: ``count_step`` (one more step, its filtered records).
  On PostgreSQL it counts in one of ``SHARDS`` rows of ``job_step_counts`` per job, not on the
  job's row, which every worker's advance would otherwise queue on; there it is a part of the
  advance's own statement (shared/engine/statements.py);
- a file's ending: ``COUNT_FINISHED`` (shared/engine/statements.py) adds what the file ended
  with, and ``add_error_counts`` its error messages when it has some;
- the rare operations that move many files at once (cancel, retry, a failed job's stopped
  files) recount the job from its file rows: ``recount``.

``totals_from_files`` is that count over the file rows, the reference the kept totals must
equal (tests/unit/test_job_counters.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, Integer, bindparam, case, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.states import FileStatus
from shared.store.models import Job, JobFile, JobStepCount
from shared.store.prepared import Prepared
from shared.store.sets import among

_jobs = Job.__table__


@dataclass(frozen=True)
class JobCounters:
    records: int = 0
    errors: int = 0  # records that failed a step
    filtered: int = 0  # records a filter step dropped
    checkpoint_failed: int = 0  # records stopped at a checkpoint
    steps_done: int = 0  # steps finished, summed over the files
    warnings: int = 0  # records that came through with warnings (counted as files end)


NONE = JobCounters()

# Shards of a job's step counts on PostgreSQL: a statement counts in the shard of its server
# process (pg_backend_pid), so concurrent workers, each on its own connection, rarely share one
# (32 shards left 8 connections colliding often). A job has a row per connection that advanced
# it, at most this many.
SHARDS = 256
_steps = JobStepCount.__table__


def step_counted(condition: ColumnElement[bool] | None = None):
    """PostgreSQL: an INSERT ... ON CONFLICT that counts one more step of the job
    ``b_job_id``, with its ``filtered`` records, in its connection's shard; only if
    ``condition`` holds (a part of the advance's own statement, shared/engine/statements.py)."""
    row = select(
        bindparam("b_job_id", type_=_steps.c.job_id.type),
        func.pg_backend_pid() % SHARDS,
        literal(1),
        bindparam("filtered", type_=Integer),
    )
    if condition is not None:
        row = row.where(condition)
    statement = pg_insert(_steps).from_select(["job_id", "shard", "steps_done", "filtered"], row)
    return statement.on_conflict_do_update(
        index_elements=[_steps.c.job_id, _steps.c.shard],
        set_={
            "steps_done": _steps.c.steps_done + 1,
            "filtered": _steps.c.filtered + statement.excluded.filtered,
        },
    )


# One more step of a file that goes on, with the records it filtered: in a shard on PostgreSQL;
# on SQLite, whose writers take turns anyway, on the job's row.
COUNT_STEP = {
    "postgresql": Prepared(step_counted()),
    "sqlite": Prepared(
        update(_jobs)
        .where(_jobs.c.id == bindparam("b_job_id"))
        .values(
            steps_done=_jobs.c.steps_done + 1,
            total_filtered=_jobs.c.total_filtered + bindparam("filtered"),
        )
    ),
}


def count_step(conn: Connection, params: dict) -> None:
    """Count one more step of ``b_job_id`` with its ``filtered`` records, in ``conn``'s
    transaction (the one that advanced the file)."""
    COUNT_STEP[conn.dialect.name].execute(conn, params)


_ERROR_COUNTS = Prepared(select(_jobs.c.error_counts).where(_jobs.c.id == bindparam("b_job_id")))
_SET_ERROR_COUNTS = Prepared(
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_job_id"))
    .values(error_counts=bindparam("counts", type_=_jobs.c.error_counts.type))
)


def counters_of_job(job: Job, shards: tuple[int, int] = (0, 0)) -> JobCounters:
    """The job's totals: its row's, with ``shards``' (steps, filtered) added."""
    return JobCounters(
        records=job.total_records,
        errors=job.total_errors,
        filtered=job.total_filtered + shards[1],
        checkpoint_failed=job.total_checkpoint_failed,
        steps_done=job.steps_done + shards[0],
        warnings=job.total_warnings,
    )


def _shard_sum(column) -> ColumnElement[int]:
    return (
        select(func.coalesce(func.sum(column), 0))
        .where(JobStepCount.job_id == Job.id)
        .scalar_subquery()
    )


# A job's (steps, filtered) in its shards, as columns of a statement that reads the job's row:
# read in the row's own snapshot, which a recount that moves them onto the row cannot split.
SHARD_SUMS = (_shard_sum(JobStepCount.steps_done), _shard_sum(JobStepCount.filtered))
_JOB_WITH_SHARDS = select(Job, *SHARD_SUMS).where(Job.id == bindparam("job_id"))


def job_with_counters(session: Session, job_id: str) -> tuple[Job | None, JobCounters]:
    """The job (None if there is none) and its totals, in one statement: for reads of one job
    outside a transaction (shared/store/db.py's statement_session)."""
    row = session.execute(_JOB_WITH_SHARDS, {"job_id": job_id}).first()
    if row is None:
        return None, NONE
    job, steps, filtered = row
    return job, counters_of_job(job, (int(steps), int(filtered)))


def shard_sums(store: Session | Connection, job_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Each job's (steps, filtered) counted in its shards: one indexed read of a few rows per
    job."""
    found = {job_id: (0, 0) for job_id in job_ids}
    if job_ids:
        rows = store.execute(
            select(
                JobStepCount.job_id,
                func.sum(JobStepCount.steps_done),
                func.sum(JobStepCount.filtered),
            )
            .where(among(store, JobStepCount.job_id, job_ids))
            .group_by(JobStepCount.job_id)
        )
        for job_id, steps, filtered in rows:
            found[job_id] = (int(steps or 0), int(filtered or 0))
    return found


def counters_of(session: Session, job_ids: list[str]) -> dict[str, JobCounters]:
    """Each job's totals, from the jobs' rows (the session's, when it holds them) and their
    shards."""
    shards = shard_sums(session, job_ids)
    return {
        job_id: counters_of_job(job, shards[job_id]) if job is not None else NONE
        for job_id in job_ids
        for job in [session.get(Job, job_id)]
    }


def add_error_counts(conn: Connection, job_id: str, counts: dict[str, int]) -> None:
    """Add a file's records per error message to its job's, in the caller's transaction, after
    that transaction has updated the job's row (which holds its lock, so no two files merge
    at once)."""
    if not counts:
        return
    row = _ERROR_COUNTS.first(conn, {"b_job_id": job_id})
    merged = Counter(_as_dict(row.error_counts) if row else {})
    merged.update(counts)
    _SET_ERROR_COUNTS.execute(conn, {"b_job_id": job_id, "counts": dict(merged)})


def _as_dict(value) -> dict:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _steps_done() -> ColumnElement[int]:
    # A finished file has done every step (a failed one will run no more of them either); a
    # pending one those before its next.
    return case(
        (JobFile.status != FileStatus.PENDING, Job.num_steps),
        (JobFile.next_step < Job.num_steps, JobFile.next_step),
        else_=Job.num_steps,
    )


def totals_from_files(
    store: Session | Connection, job_ids: list[str]
) -> dict[str, tuple[JobCounters, dict[str, int]]]:
    """Each job's totals and records per error message, summed over its file rows: what the
    kept totals equal, read in time proportional to the job's files."""
    found = {job_id: (NONE, {}) for job_id in job_ids}
    if not job_ids:
        return found
    rows = store.execute(
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
        found[job_id] = (JobCounters(*(int(value or 0) for value in sums)), {})
    messages = store.execute(
        select(JobFile.job_id, JobFile.error_counts).where(
            JobFile.job_id.in_(job_ids), JobFile.num_errors > 0
        )
    )
    for job_id, counts in messages:
        merged = Counter(found[job_id][1])
        merged.update(_as_dict(counts))
        found[job_id] = (found[job_id][0], dict(merged))
    return found


def recount(store: Session | Connection, job_id: str) -> None:
    """Set the job's kept totals from its file rows, in the caller's transaction: after an
    operation that moved many of its files at once."""
    # The shards first: deleting them waits for, and then holds off, any advance counting in
    # them, so an advance is counted either in the files read next or in a shard made after.
    store.execute(delete(JobStepCount).where(JobStepCount.job_id == job_id))
    counters, messages = totals_from_files(store, [job_id])[job_id]
    store.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            steps_done=counters.steps_done,
            total_records=counters.records,
            total_errors=counters.errors,
            total_filtered=counters.filtered,
            total_checkpoint_failed=counters.checkpoint_failed,
            total_warnings=counters.warnings,
            error_counts=messages,
        )
    )


def errors_of_job() -> ColumnElement[int]:
    """On Job: the records of the job that failed a step."""
    return Job.total_errors
