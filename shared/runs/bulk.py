"""The bulk forms of job control (``pause_all``, ``resume_all``, ``cancel_all``): which jobs a
call reaches. Each reached job is then changed by its single form (shared/runs/control.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.access import controlled_jobs
from shared.accounts.principal import Principal
from shared.jobs.listing import tagged_with_any
from shared.states import JobKind, JobStatus
from shared.store.models import Job, User


@dataclass(frozen=True)
class BulkFilter:
    from_timestamp: datetime
    to_timestamp: datetime
    user: str | None = None
    tags: tuple[str, ...] = ()


def select_jobs_for_bulk(
    session: Session, principal: Principal, bulk: BulkFilter, statuses: frozenset[JobStatus]
) -> list[Job]:
    query = select(Job).where(
        Job.kind == JobKind.FLOW,
        Job.status.in_(sorted(statuses)),
        Job.created_at >= bulk.from_timestamp,
        Job.created_at <= bulk.to_timestamp,
    )
    controlled = controlled_jobs(principal)
    if controlled is not None:
        # A non-admin acts only on the jobs they control, whatever `user` says.
        query = query.where(controlled)
    elif bulk.user:
        query = query.join(User, User.id == Job.owner_id).where(User.username == bulk.user)
    if bulk.tags:
        query = query.where(tagged_with_any(bulk.tags))
    return list(session.scalars(query.order_by(Job.created_at).with_for_update()))
