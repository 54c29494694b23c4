"""Retention: beat deletes the jobs that finished more than ``FLOWBIN_RETENTION_DAYS`` ago (off by
default), with their rows in the store: files, log lines, tags, pipelines, collaborators, record
reviews, deliveries and their attempts.

What is deleted is the store's record of the job, not its outputs: the results a job wrote are
files in its owner's drive folder, the owner's to keep or remove (a job's output folder may be
one the user reads from elsewhere). A job stopped at a checkpoint is kept, whatever its age: it
waits for a reviewer.

Without long locks: a round takes at most ``batch`` jobs at a time, deletes their log lines and
files ``ROWS_PER_TRANSACTION`` at a time, each in a transaction of its own, then the jobs' rows
(whose other children go with them: their foreign keys cascade). A job taken by a round is one no
worker or request writes to any more (it has ended), so a round that dies half-way leaves some of
its rows, which the next round deletes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from shared.states import JobStatus
from shared.store.db import connection_scope
from shared.store.models import Job, JobFile, JobLog

EXPIRING = (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED)
ROWS_PER_TRANSACTION = 5000


def expired_jobs(url: str, cutoff: datetime, limit: int) -> list[str]:
    with connection_scope(url, read_only=True) as conn:
        return list(
            conn.scalars(
                select(Job.id)
                .where(
                    Job.status.in_(EXPIRING),
                    # Implied by finished_at (a job ends after it is created), and the bound
                    # that lets (status, created_at) find the candidates.
                    Job.created_at < cutoff,
                    Job.finished_at < cutoff,
                )
                .limit(limit)
            )
        )


def _delete_children(url: str, model, job_ids: list[str]) -> int:
    deleted = 0
    while True:
        with connection_scope(url) as conn:
            chunk = select(model.id).where(model.job_id.in_(job_ids)).limit(ROWS_PER_TRANSACTION)
            count = conn.execute(delete(model).where(model.id.in_(chunk))).rowcount
        deleted += count
        if count < ROWS_PER_TRANSACTION:
            return deleted


def delete_expired_jobs(
    url: str, retention_days: int, batch: int = 500, now: datetime | None = None
) -> int:
    """Delete the jobs that ended more than ``retention_days`` ago (0: none), ``batch`` jobs per
    transaction; how many were deleted."""
    if retention_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    deleted = 0
    while job_ids := expired_jobs(url, cutoff, batch):
        # The big children first, in chunks: a job may have millions of log lines.
        _delete_children(url, JobLog, job_ids)
        _delete_children(url, JobFile, job_ids)
        with connection_scope(url) as conn:
            gone = conn.execute(delete(Job).where(Job.id.in_(job_ids))).rowcount
        if not gone:
            break  # another round deleted them meanwhile; it goes on with the rest
        deleted += gone
    return deleted
