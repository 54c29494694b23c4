"""Listing jobs for the resource API (``GET /api/v2/jobs``): filters on the job's attributes,
newest first, in pages that a keyset cursor continues.

Each filter is a set of values: a job matches a filter if it matches any of its values, and the
listing if it matches every filter given. The cursor is the (created_at, id) of the last job of
a page, so a page never shifts when jobs are created or removed meanwhile: new jobs sort before
the first page, and the next page starts strictly after the cursor's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.accounts.access import visible_jobs
from shared.accounts.principal import Principal
from shared.jobs.health import Health, health_condition
from shared.jobs.listing import Cursor, tagged_with_any
from shared.states import DesiredExecution, JobKind, JobStatus
from shared.store.models import Job, User


@dataclass(frozen=True)
class ResourceFilter:
    """What a listing selects; an empty set does not filter (but for ``statuses``)."""

    statuses: frozenset[JobStatus] | None = None  # None: any; empty: none at all
    kinds: frozenset[JobKind] = frozenset()
    health: frozenset[Health] = frozenset()
    desired: frozenset[DesiredExecution] = frozenset()
    tags: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()  # usernames or user ids (UUIDs)
    priorities: frozenset[int] = frozenset()
    ids: tuple[str, ...] = ()
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


def _desired_condition(desired: frozenset[DesiredExecution]):
    # No recorded wish reads as "running".
    conditions = [Job.desired_execution_status.in_(sorted(desired))]
    if DesiredExecution.RUNNING in desired:
        conditions.append(Job.desired_execution_status.is_(None))
    return or_(*conditions)


def list_resources(
    session: Session,
    principal: Principal,
    wanted: ResourceFilter,
    limit: int,
    after: Cursor | None = None,
) -> tuple[list[Job], Cursor | None]:
    """A page of the jobs the caller sees, newest first, and the cursor of the next page (None
    on the last)."""
    query = select(Job)
    visible = visible_jobs(principal)
    if visible is not None:
        query = query.where(visible)
    if wanted.statuses is not None:
        query = query.where(Job.status.in_(sorted(wanted.statuses)))
    if wanted.kinds:
        query = query.where(Job.kind.in_(sorted(wanted.kinds)))
    if wanted.health:
        query = query.where(health_condition(set(wanted.health)))
    if wanted.desired:
        query = query.where(_desired_condition(wanted.desired))
    if wanted.tags:
        query = query.where(tagged_with_any(wanted.tags))
    if wanted.owners:
        owners = select(User.id).where(
            or_(User.username.in_(wanted.owners), User.uuid.in_(wanted.owners))
        )
        query = query.where(Job.owner_id.in_(owners))
    if wanted.priorities:
        query = query.where(Job.priority.in_(sorted(wanted.priorities)))
    if wanted.ids:
        query = query.where(Job.id.in_(wanted.ids))
    if wanted.created_after is not None:
        query = query.where(Job.created_at >= wanted.created_after)
    if wanted.created_before is not None:
        query = query.where(Job.created_at < wanted.created_before)
    if after is not None:
        query = query.where(after.before())
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, Cursor(page[-1].created_at, page[-1].id)


def states_named(vocabulary: dict[JobStatus, str], names: list[str]) -> frozenset[JobStatus]:
    """The states that ``vocabulary`` (shared/states.py) calls any of ``names``."""
    return frozenset(status for status, name in vocabulary.items() if name in names)
