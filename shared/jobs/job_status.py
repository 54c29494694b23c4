"""One job's status as jobs/status shows it, read in one statement: the job's row, the shard
sums its totals need (shared/jobs/counters.py), its review counts and whether a step of it runs
now. Polling clients call it in a loop, so it is one round trip on PostgreSQL rather than a
transaction of five, and its parts share one snapshot without a BEGIN."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from shared.accounts.access import JobNeed, checked_grant
from shared.accounts.principal import Principal
from shared.errors import InvalidRequest
from shared.jobs.counters import SHARD_SUMS, counters_of_job
from shared.jobs.summary import RunSummary, flow_review_metrics, summarize
from shared.states import JobKind, JobStatus
from shared.store.models import Job, JobFile, RecordReview, claimed_file


@dataclass(frozen=True)
class JobStatusRead:
    job: Job
    summary: RunSummary
    steps_running: bool
    review_metrics: dict | None  # None for compile and sync jobs


def _count(*conditions):
    return select(func.count()).where(*conditions).scalar_subquery()


# What a status shows beside the job's row, as columns of a query on jobs (its parameter
# ``now``): the shard sums, the review counts, and whether a step runs. A list page reads the
# same for its jobs (shared/jobs/page_facts.py).
STATUS_COLUMNS = (
    *SHARD_SUMS,
    _count(RecordReview.job_id == Job.id),
    _count(RecordReview.job_id == Job.id, RecordReview.job_stopped_at == Job.finished_at),
    # Not correlated: read from ix_job_files_claimed alone, as jobs_with_running_steps does
    # (a condition on the job's id would let SQLite read every file of a big job instead).
    Job.id.in_(
        select(JobFile.job_id).where(claimed_file(), JobFile.claimed_until > bindparam("now"))
    ),
)
_STATUS = select(Job, *STATUS_COLUMNS).where(Job.id == bindparam("job_id"))


def status_read(job: Job, columns: tuple) -> JobStatusRead:
    """The status of ``job`` from its ``STATUS_COLUMNS``."""
    steps, filtered, reviewed, reviewed_in_stop, running = columns
    summary = summarize(job, counters_of_job(job, (int(steps or 0), int(filtered or 0))))
    review = None
    if job.kind == JobKind.FLOW:
        # Reviews of an earlier stop do not count against the records stopped now.
        current = reviewed_in_stop if job.status == JobStatus.STOPPED_AT_CHECKPOINT else 0
        review = flow_review_metrics(summary.num_checkpoint_failed, reviewed, current)
    return JobStatusRead(job, summary, bool(running), review)


def job_status(session: Session, principal: Principal, job_id: str) -> JobStatusRead:
    """The job's status, if the caller may see it (a job it may not see is missing: 404)."""
    if not job_id:
        raise InvalidRequest("job_id is required")
    row = session.execute(_STATUS, {"job_id": job_id, "now": datetime.now(UTC)}).first()
    job, _ = checked_grant(session, principal, job_id, row[0] if row else None, JobNeed.VIEW)
    return status_read(job, tuple(row[1:]))
