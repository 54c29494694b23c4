"""A job's error budget, its maxParseExceptions: once more of its records than that have failed
a step (a record with ``error`` set; records stopped at a checkpoint or dropped by a filter are
not errors), the job fails and its other files stop. Unlimited when the job has none.

Only a job with a budget pays for it. A step of such a job that failed records counts them on
the job's row (``Job.num_record_errors``, one UPDATE by primary key) in the transaction that
advances its file; a job without a budget, or a step that failed no record, runs the same
statements as before. A file's own ``num_errors`` is only set when the file ends, so the job's
row is where the errors so far are.

The step whose count passes the budget moves the job to failed in that same transaction,
through ``transition_job`` (guarded: when two steps pass it at once the second is refused; the
job's webhooks and emails are created by that transition, as for any failed job). Then, in a
transaction of its own (so that it takes the files' rows before the job's, as every advance
does), the job's pending files that no step holds end as cancelled: they run no further step,
and their queued messages are dropped. A step still running is not stopped: it finishes and
records its outcome at its boundary, where its advance reads the job failed, stores no token,
and the file is ended the same way. A message for a file of the failed job, sent by a step that
advanced just before the job failed, ends that file when it cannot claim it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, or_, select, update

from shared.config import Settings
from shared.engine.snapshot import JobSnapshot
from shared.engine.statements import COUNT_RECORD_ERRORS
from shared.jobs.counters import recount
from shared.jobs.log import JobLogger
from shared.jobs.store import transition_job
from shared.states import FileStatus, JobStatus
from shared.store.db import connection_scope
from shared.store.models import Job, JobFile


def budget_message(errors: int, budget: int) -> str:
    return f"Failed: {errors} records failed, more than maxParseExceptions {budget}"


def count_record_errors(
    conn: Connection, job: JobSnapshot, errors: int, logger: JobLogger
) -> tuple[JobStatus, bool]:
    """Count ``errors`` more failed records of ``job`` (which has a budget), in the caller's
    transaction, and fail the job if its count passes the budget: the job's state afterwards,
    and whether this call failed it."""
    count, status = COUNT_RECORD_ERRORS.first(conn, {"b_job_id": job.id, "errors": errors})
    if count <= job.max_parse_exceptions:
        return status, False
    message = budget_message(count, job.max_parse_exceptions)
    if transition_job(conn, job.id, JobStatus.FAILED, message=message, strict=False):
        logger.error(message)
        return JobStatus.FAILED, True
    return status, False  # failed already (by another step), or cancelled meanwhile


def stop_files(settings: Settings, job: JobSnapshot, task_id: str) -> list[str]:
    """End the pending files of a failed ``job`` that no live claim holds, as cancelled, and
    count them finished; the task ids of the messages queued for them, to drop. A claim held by
    ``task_id``, the caller, is no running step (the redelivery of a step whose worker died).
    Idempotent; nothing happens unless the job has failed."""
    now = datetime.now(UTC)
    idle = (
        JobFile.job_id == job.id,
        JobFile.status == FileStatus.PENDING,
        or_(
            JobFile.claimed_by.is_(None),
            JobFile.claimed_until <= now,
            JobFile.claimed_by == task_id,
        ),
        select(Job.id).where(Job.id == job.id, Job.status == JobStatus.FAILED).exists(),
    )
    logger = JobLogger(job.id, task_id, job.trace_id, prefix=job.log_prefix)
    with connection_scope(settings.sql_url) as conn:
        queued = [
            token for token in conn.scalars(select(JobFile.next_task_id).where(*idle)) if token
        ]
        stopped = conn.execute(
            update(JobFile)
            .where(*idle)
            .values(
                status=FileStatus.CANCELLED,
                next_task_id=None,
                claimed_by=None,
                claimed_until=None,
                updated_at=now,
            )
        ).rowcount
        if stopped:
            conn.execute(
                update(Job).where(Job.id == job.id).values(files_done=Job.files_done + stopped)
            )
            recount(conn, job.id)  # a stopped file counts as every step done
            logger.info(f"{stopped} files stopped: the job failed")
            logger.write(conn)
    return queued
