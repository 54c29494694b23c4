"""What a page of ``jobs/list`` shows beside each job's own row, read in one statement for the
whole page: its owner's name, the shard sums its totals need (shared/jobs/counters.py), its
review counts and whether a step of it runs now. They were a statement each (usernames, shard
sums, review counts, running steps), each a round trip and most of a page's time in the store;
the job's status read (shared/jobs/job_status.py) takes the same columns for one job, and
each job's are read as its."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from shared.jobs.job_status import STATUS_COLUMNS, JobStatusRead, status_read
from shared.store.models import Job, User


@dataclass(frozen=True)
class PageFacts:
    owner: str
    status: JobStatusRead  # its summary, review metrics and whether a step runs


def _statement(ids: ColumnElement[bool]) -> Select:
    return (
        select(Job.id, User.username, *STATUS_COLUMNS)
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
    found = {row[0]: (row[1], tuple(row[2:])) for row in rows}
    facts = {}
    for job in jobs:
        owner, columns = found[job.id]
        facts[job.id] = PageFacts(owner, status_read(job, columns))
    return facts
