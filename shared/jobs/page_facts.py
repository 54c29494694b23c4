"""What a page of ``jobs/list`` shows beside each job's own row, read in one statement for the
whole page: its owner's name, the shard sums its totals need (shared/jobs/counters.py), its
review counts and whether a step of it runs now. They were a statement each (usernames, shard
sums, review counts, running steps), each a round trip and most of a page's time in the store;
the job's status read (shared/jobs/job_status.py) takes the same parts for one job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.jobs.counters import SHARD_SUMS, counters_of_job
from shared.jobs.summary import RunSummary, flow_review_metrics, summarize
from shared.states import JobKind, JobStatus
from shared.store.models import Job, JobFile, RecordReview, User, claimed_file


@dataclass(frozen=True)
class PageFacts:
    owner: str
    summary: RunSummary
    review_metrics: dict | None  # None for compile and sync jobs
    steps_running: bool


def _count(*conditions):
    return select(func.count()).where(*conditions).scalar_subquery()


def _statement(ids: ColumnElement[bool]) -> Select:
    return (
        select(
            Job.id,
            User.username,
            *SHARD_SUMS,
            _count(RecordReview.job_id == Job.id),
            _count(RecordReview.job_id == Job.id, RecordReview.job_stopped_at == Job.finished_at),
            # Not correlated: read once from ix_job_files_claimed alone (a condition on the
            # job's id would let SQLite read every file of a big job instead).
            Job.id.in_(
                select(JobFile.job_id).where(
                    claimed_file(), JobFile.claimed_until > bindparam("now")
                )
            ),
        )
        .join(User, User.id == Job.owner_id)
        .where(ids)
    )


# Built once: a statement this size costs more to build than to run. The page's ids go as
# shared/store/sets.py's ``among`` sends them: one array on PostgreSQL, a list elsewhere.
_FACTS = {
    "postgresql": _statement(Job.id == any_(bindparam("ids", type_=ARRAY(Job.id.type)))),
    "sqlite": _statement(Job.id.in_(bindparam("ids", expanding=True))),
}


def page_facts(session: Session, jobs: list[Job]) -> dict[str, PageFacts]:
    """The facts of each of ``jobs`` (rows the caller has read), by job id."""
    if not jobs:
        return {}
    statement = _FACTS[session.get_bind().dialect.name]
    rows = session.execute(statement, {"ids": [job.id for job in jobs], "now": datetime.now(UTC)})
    found = {row[0]: row[1:] for row in rows}
    facts = {}
    for job in jobs:
        owner, steps, filtered, reviewed, reviewed_in_stop, running = found[job.id]
        summary = summarize(job, counters_of_job(job, (int(steps or 0), int(filtered or 0))))
        review = None
        if job.kind == JobKind.FLOW:
            # Reviews of an earlier stop do not count against the records stopped now.
            current = reviewed_in_stop if job.status == JobStatus.STOPPED_AT_CHECKPOINT else 0
            review = flow_review_metrics(summary.num_checkpoint_failed, reviewed, current)
        facts[job.id] = PageFacts(owner, summary, review, bool(running))
    return facts
