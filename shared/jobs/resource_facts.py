"""What the resource API's job shape shows besides the job's row, for a page of jobs in a fixed
number of statements: its owner and last modifier, file totals, tags, collaboration, and
whether a step of it is running (a paused job still finishing one shows as running).

The people, tags and collaborators of a page are one statement (``PEOPLE_AND_LABELS``), not
three: each was a round trip, and on a read of one job they took more of it than the job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    CompoundSelect,
    String,
    any_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.accounts.collaboration import shares_shown, show_share
from shared.jobs.counters import JobCounters, counters_of
from shared.jobs.summary import jobs_with_running_steps
from shared.states import JobStatus
from shared.store.models import Job, JobShare, JobTag, User


@dataclass(frozen=True)
class Person:
    """A user as the job's shape shows one."""

    uuid: str
    username: str
    email: str | None


@dataclass(frozen=True)
class JobFacts:
    owner: Person
    modifier: Person  # who last changed it through the API; its owner until someone does
    counters: JobCounters
    tags: list[str]
    collaboration: dict
    steps_running: bool


# The rows of ``_people_and_labels``, by their ``kind``.
TAG, SHARE, PERSON = 0, 1, 2


def _text() -> ColumnElement[str]:
    return cast(null(), String)


Among = Callable[[ColumnElement, str], ColumnElement[bool]]


def _people_and_labels(among: Among) -> CompoundSelect:
    """One row per tag, collaborator and user of a page (its parameters ``job_ids`` and
    ``user_ids``, each ``among`` a column), each kind's columns in its own places of one shape
    (the others NULL), in the order answers show them: tags by name, collaborators as they were
    added."""
    tags = select(
        JobTag.job_id, literal(TAG).label("kind"), literal(0).label("position"),
        JobTag.tag.label("label"), cast(null(), JSON).label("steps"),
        _text().label("team_id"), _text().label("team_name"),
        _text().label("uuid"), _text().label("username"), _text().label("email"),
    ).where(among(JobTag.job_id, "job_ids"))  # fmt: skip
    shares = shares_shown(
        JobShare.job_id, literal(SHARE), JobShare.id, _text(), JobShare.steps
    ).where(among(JobShare.job_id, "job_ids"))
    people = select(
        _text(), literal(PERSON), User.id, _text(), cast(null(), JSON),
        _text(), _text(), User.uuid, User.username, User.email,
    ).where(among(User.id, "user_ids"))  # fmt: skip
    return union_all(tags, shares, people).order_by("kind", "label", "position")


# Built once a dialect: a statement this size took longer to build than to run. A page's ids
# go as shared/store/sets.py's ``among`` sends them: one array on PostgreSQL, a list elsewhere.
PEOPLE_AND_LABELS = {
    "postgresql": _people_and_labels(
        lambda column, name: column == any_(bindparam(name, type_=ARRAY(column.type)))
    ),
    "sqlite": _people_and_labels(lambda column, name: column.in_(bindparam(name, expanding=True))),
}


def facts_of(
    session: Session, jobs: list[Job], counters: dict[str, JobCounters] | None = None
) -> dict[str, JobFacts]:
    """The jobs' facts; ``counters``: their totals, when the caller read them with the jobs'
    rows (counters.job_with_counters)."""
    ids = [job.id for job in jobs]
    if not ids:
        return {}
    user_ids = {job.owner_id for job in jobs} | {
        job.last_modified_by for job in jobs if job.last_modified_by is not None
    }
    people: dict[int, Person] = {}
    tags: dict[str, list[str]] = {job_id: [] for job_id in ids}
    shared: dict[str, dict] = {job_id: {"teams": [], "users": []} for job_id in ids}
    statement = PEOPLE_AND_LABELS[session.get_bind().dialect.name]
    rows = session.execute(statement, {"job_ids": ids, "user_ids": sorted(user_ids)})
    for job_id, kind, position, label, steps, team_id, team_name, uuid, username, email in rows:
        if kind == TAG:
            tags[job_id].append(label)
        elif kind == PERSON:
            people[position] = Person(uuid, username, email)
        else:
            show_share(shared[job_id], steps, team_id, team_name, uuid, username, email)
    if counters is None:
        counters = counters_of(session, ids)
    running = jobs_with_running_steps(
        session, [job.id for job in jobs if job.status == JobStatus.PAUSED]
    )
    return {
        job.id: JobFacts(
            owner=people[job.owner_id],
            modifier=people.get(job.last_modified_by, people[job.owner_id]),
            counters=counters[job.id],
            tags=tags[job.id],
            collaboration=shared[job.id],
            steps_running=job.id in running,
        )
        for job in jobs
    }
