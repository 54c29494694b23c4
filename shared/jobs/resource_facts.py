"""What the resource API's job shape shows besides the job's row, for a page of jobs in a fixed
number of queries: its owner and last modifier, file totals, tags, collaboration, and whether a
step of it is running (a paused job still finishing one shows as running)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.collaboration import collaboration_of
from shared.jobs.counters import JobCounters, counters_of
from shared.jobs.store import tags_of
from shared.jobs.summary import jobs_with_running_steps
from shared.states import JobStatus
from shared.store.models import Job, User


@dataclass(frozen=True)
class JobFacts:
    owner: User
    modifier: User  # who last changed it through the API; its owner until someone does
    counters: JobCounters
    tags: list[str]
    collaboration: dict
    steps_running: bool


def facts_of(
    session: Session, jobs: list[Job], counters: dict[str, JobCounters] | None = None
) -> dict[str, JobFacts]:
    """The jobs' facts; ``counters``: their totals, when the caller read them with the jobs'
    rows (counters.job_with_counters)."""
    ids = [job.id for job in jobs]
    user_ids = {job.owner_id for job in jobs} | {
        job.last_modified_by for job in jobs if job.last_modified_by is not None
    }
    users = (
        {user.id: user for user in session.scalars(select(User).where(User.id.in_(user_ids)))}
        if user_ids
        else {}
    )
    if counters is None:
        counters = counters_of(session, ids)
    tags = tags_of(session, ids) if ids else {}
    shared = collaboration_of(session, ids)
    running = jobs_with_running_steps(
        session, [job.id for job in jobs if job.status == JobStatus.PAUSED]
    )
    return {
        job.id: JobFacts(
            owner=users[job.owner_id],
            modifier=users.get(job.last_modified_by, users[job.owner_id]),
            counters=counters[job.id],
            tags=tags[job.id],
            collaboration=shared[job.id],
            steps_running=job.id in running,
        )
        for job in jobs
    }
