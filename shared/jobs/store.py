"""Jobs in the store: guarded state transitions and tags. Who may see a job is decided in
shared/accounts/access.py."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from sqlalchemy import Connection, Update, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from shared.delivery import notify
from shared.errors import InvalidTransition, NotFound
from shared.jobs.log import insert_lines_if, line_params, write_lines
from shared.states import ENDED, JobStatus, allowed_sources
from shared.store.db import connection_of
from shared.store.models import Job, JobTag
from shared.store.prepared import Prepared, one_of
from shared.store.sets import among


def add_tags(store: Session | Connection, job_id: str, tags: list[str]) -> list[str]:
    """Tag the job once with each of ``tags``, in ``store``'s transaction; the tags added."""
    unique = list(dict.fromkeys(tags))
    if unique:
        connection_of(store).execute(
            insert(JobTag.__table__), [{"job_id": job_id, "tag": tag} for tag in unique]
        )
    return unique


def set_tags(session: Session, job_id: str, tags: list[str]) -> list[str]:
    session.query(JobTag).filter(JobTag.job_id == job_id).delete()
    return add_tags(session, job_id, tags)


def tags_of(session: Session, job_ids: list[str]) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
    rows = session.execute(
        select(JobTag.job_id, JobTag.tag)
        .where(among(session, JobTag.job_id, job_ids))
        .order_by(JobTag.tag)
    )
    for job_id, tag in rows:
        tags[job_id].append(tag)
    return tags


def transition_values(target: JobStatus) -> dict:
    """What a move into ``target`` writes on the job's row (its parameters ``new_message`` and
    ``now``), for the statements that make one: ``_transition_statement``'s and the claim that
    starts a queued job (shared/engine/statements.py)."""
    jobs = Job.__table__
    now = bindparam("now", type_=jobs.c.started_at.type)
    values: dict = {
        "status": target,
        # A transition without a message keeps the job's current one.
        "message": func.coalesce(
            bindparam("new_message", type_=jobs.c.message.type), jobs.c.message
        ),
    }
    if target == JobStatus.RUNNING:
        values["started_at"] = func.coalesce(jobs.c.started_at, now)
    if target in ENDED:
        values["finished_at"] = now
    if target == JobStatus.QUEUED:
        values["finished_at"] = None
    return values


def _transition_update(target: JobStatus) -> Update:
    """The conditional UPDATE into ``target``."""
    jobs = Job.__table__
    values = transition_values(target)
    sources = sorted(allowed_sources(target))
    # The row comes back from the UPDATE itself: a job that ends hands its receivers' settings
    # to the notifications without another read.
    returned = notify.JOB_COLUMNS_FOR_NOTIFYING if target in ENDED else (jobs.c.id,)
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("b_job_id"), one_of(jobs.c.status, sources))
        .values(**values)
        .returning(*returned)
    )


@functools.cache
def _transition_statement(target: JobStatus) -> Prepared:
    """``_transition_update``, built once: workers run it on every step."""
    return Prepared(_transition_update(target))


@functools.cache
def _transition_and_log(target: JobStatus) -> Prepared:
    """PostgreSQL: ``_transition_update`` and, only if the job moved, one log line
    (with ``line_params``' parameters), as one statement: the UPDATE's row comes back as it
    would alone."""
    moved = _transition_update(target).cte("moved")
    logged = insert_lines_if(1, select(*moved.c).exists()).cte("logged")
    return Prepared(select(moved).add_cte(logged))


def transition_job(
    store: Session | Connection,
    job_id: str,
    target: JobStatus,
    *,
    message: str | None = None,
    strict: bool = True,
    log_line: dict | None = None,
) -> bool:
    """Move a job to ``target`` if the state machine allows it from the job's current state.

    The check and the write are one conditional UPDATE, so concurrent writers cannot both win.
    Returns whether the job moved; with ``strict`` a refused move raises InvalidTransition.
    ``log_line`` (a JobLogger entry) is written to the job's log if the job moved, in the same
    statement on PostgreSQL. Runs in the transaction of ``store``: an ORM session's, or a bare
    connection's (workers).
    """
    conn = connection_of(store)
    params = {"b_job_id": job_id, "new_message": message, "now": datetime.now(UTC)}
    in_one = log_line is not None and conn.dialect.name == "postgresql"
    if in_one:
        moved = _transition_and_log(target).first(conn, {**params, **line_params([log_line])})
    else:
        moved = _transition_statement(target).first(conn, params)
        if moved is not None and log_line is not None:
            write_lines(conn, [log_line])
    if moved is not None:
        # In this same transaction: a job that ended always has its webhook and email
        # deliveries, and a rolled-back change has none (shared/delivery/notify.py).
        notify.schedule_for_job(conn, job_id, target, moved)
        return True
    if strict:
        current = conn.execute(select(Job.status).where(Job.id == job_id)).scalar()
        if current is None:
            raise NotFound(f"no job with id {job_id!r}")
        raise InvalidTransition(f"job {job_id!r} is {current} and cannot become {target}")
    return False
