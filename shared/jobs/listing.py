"""Listing jobs with the seed's filters, served by indexes on (created_at, id, kind), (owner,
created_at), (status, created_at, id, kind), the tag and pipeline tables and, on PostgreSQL, a
trigram index for a part of a job id.

A page after the first is found by a keyset cursor (the (created_at, id) of the last job of the
page before, in ``next_page``), so that a deep page costs what the first does. An explicit
``offset`` still answers: the offset is walked over the ids alone, in an index (a deferred join),
and only the page's own rows are read, so its cost grows with the offset but stays that of an
index scan (docs/job-control.md says how deep pages are best read).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, literal, select, tuple_, union_all
from sqlalchemy.orm import Session

from shared.accounts.access import visible_jobs
from shared.accounts.principal import Principal
from shared.errors import InvalidRequest
from shared.jobs.ids import JOB_ID
from shared.states import LIST_STATE_FILTER, LISTED_KINDS, ReviewState
from shared.store.models import Job, JobPipeline, JobTag, User
from shared.store.sets import among

REVIEW_STATES = set(ReviewState) | {"IN_REVIEW"}


@dataclass(frozen=True)
class Cursor:
    """Where a page of jobs, newest first, ends: the (created_at, id) of its last job."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        key = json.dumps([self.created_at.isoformat(), self.job_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            created_at, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
            moment = datetime.fromisoformat(created_at)
            if moment.tzinfo is None or not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
                raise ValueError("not a cursor")
        except (ValueError, TypeError, binascii.Error, UnicodeError):
            raise InvalidRequest(
                "cursor is not one this API made: follow the previous page's link to the "
                "next (`next`, or `next_page` in v1) as it is"
            ) from None
        return cls(moment, job_id)

    def before(self) -> ColumnElement[bool]:
        """On Job: it sorts after this cursor's job, newest first. A row comparison, which
        both stores read as a range of the (created_at, id) indexes."""
        return tuple_(Job.created_at, Job.id) < tuple_(self.created_at, self.job_id)


@dataclass(frozen=True)
class JobFilter:
    from_timestamp: datetime
    to_timestamp: datetime
    limit: int = 20
    offset: int = 0
    states: tuple[str, ...] = ()
    user: str | None = None
    priority: int | None = None
    tags: tuple[str, ...] = ()
    pipeline_ids: tuple[str, ...] = ()
    review_states: tuple[str, ...] = ()
    job_id: str | None = None
    job_ids: tuple[str, ...] = ()
    reviewer: str | None = None
    after: Cursor | None = None  # continue after this job (``offset`` then counts from it)


def tagged_with_any(tags: tuple[str, ...]):
    """A condition on Job: it carries at least one of ``tags``."""
    return select(JobTag.job_id).where(JobTag.job_id == Job.id, JobTag.tag.in_(tags)).exists()


def list_jobs(session: Session, principal: Principal, wanted: JobFilter) -> tuple[list[Job], bool]:
    """A page of jobs, newest first, and whether another page follows."""
    query = select(Job).where(
        Job.kind.in_(sorted(LISTED_KINDS)),
        Job.created_at >= wanted.from_timestamp,
        Job.created_at <= wanted.to_timestamp,
    )
    visible = visible_jobs(principal)
    if visible is not None:
        query = query.where(visible)
    if wanted.user:
        owner = session.scalar(select(User.id).where(User.username == wanted.user))
        query = query.where(Job.owner_id == (owner if owner is not None else -1))
    if wanted.states:
        statuses = set()
        for state in wanted.states:
            if state not in LIST_STATE_FILTER:
                raise InvalidRequest(
                    f"state {state!r} is not one of {', '.join(LIST_STATE_FILTER)}"
                )
            statuses.update(LIST_STATE_FILTER[state])
        query = query.where(Job.status.in_(sorted(statuses)))
    if wanted.priority is not None:
        query = query.where(Job.priority == wanted.priority)
    if wanted.tags:
        query = query.where(tagged_with_any(wanted.tags))
    if wanted.pipeline_ids:
        query = query.where(
            select(JobPipeline.job_id)
            .where(JobPipeline.job_id == Job.id, JobPipeline.pipeline_id.in_(wanted.pipeline_ids))
            .exists()
        )
    if wanted.review_states:
        unknown = set(wanted.review_states) - REVIEW_STATES
        if unknown:
            raise InvalidRequest(
                f"review_state {sorted(unknown)[0]!r} is not one of {', '.join(ReviewState)}"
            )
        values = {"IN REVIEW" if s == "IN_REVIEW" else s for s in wanted.review_states}
        query = query.where(Job.review_state.in_(sorted(values)))
    if wanted.job_id:
        escaped = wanted.job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Job.id.like(f"%{escaped}%", escape="\\"))
    if wanted.job_ids:
        query = query.where(Job.id.in_(wanted.job_ids))
    if wanted.reviewer:
        query = query.where(Job.reviewer == wanted.reviewer)
    if wanted.after is not None:
        query = query.where(wanted.after.before())
    newest_first = (Job.created_at.desc(), Job.id.desc())
    if wanted.offset:
        # A deferred join: the offset is walked over the ids (in the index that orders them),
        # and only the page's rows are read.
        ids = (
            query.with_only_columns(Job.id)
            .order_by(*newest_first)
            .offset(wanted.offset)
            .limit(wanted.limit + 1)
            .subquery()
        )
        query = select(Job).where(Job.id.in_(select(ids.c.id)))
    rows = list(session.scalars(query.order_by(*newest_first).limit(wanted.limit + 1)))
    return rows[: wanted.limit], len(rows) > wanted.limit


def tags_and_pipelines_of(
    session: Session, job_ids: list[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each job's tags and its pipeline ids, each sorted, in one statement for the page."""
    tags: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
    pipelines: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return tags, pipelines
    labels = union_all(
        select(JobTag.job_id, literal(0).label("kind"), JobTag.tag.label("label")).where(
            among(session, JobTag.job_id, job_ids)
        ),
        select(JobPipeline.job_id, literal(1), JobPipeline.pipeline_id).where(
            among(session, JobPipeline.job_id, job_ids)
        ),
    ).order_by("kind", "label")
    for job_id, kind, label in session.execute(labels):
        (pipelines if kind else tags)[job_id].append(label)
    return tags, pipelines
