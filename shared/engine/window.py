"""A job's window: at most ``FLOWBIN_JOB_WINDOW`` of its files have a step in the broker (queued
or running) at a time, so that a job submitted behind a big one at the same priority waits for
a window's worth of steps, not for the big job's whole backlog.

A file of a job is either in its window (it holds a token, a claim or an advance: its next
step is on its way, running, or being decided) or waiting for a place: pending, with the token
``WAITING`` (''), which no message ever carries, so nothing can claim it. A file that ends gives
its place to the job's next waiting file, in file order, in the transaction that ends it
(``refill``); the step is published after that commit, like any next step. Its token is derived
from the task that ended the file, so that the redelivery of that task, after its worker died
between the commit and the publish, finds the file it released and sends it again
(``rereleased``). Submit, resume, retry, the listing of a big input folder and stalled-step
recovery fill the window up to its size (``fill``).

Within a file nothing changes: each step publishes the next one, so a file keeps its place from
its first step to its last, and a lone big job keeps as many files moving as the window holds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    Connection,
    String,
    Update,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.sql import ColumnElement

from shared.config import Settings
from shared.engine.scheduling import NextStep, next_step_for
from shared.engine.snapshot import JobSnapshot, cached_binary
from shared.jobs.ids import new_task_id
from shared.states import RUNNABLE
from shared.store.models import Job, JobFile
from shared.store.prepared import Prepared, one_of

# The token of a file waiting for a place in its job's window.
WAITING = ""

_files = JobFile.__table__
_jobs = Job.__table__
# Written as constants, word for word the predicate of ix_job_files_waiting
# (shared/store/models.py WAITING_FILES): a database uses a partial index only for a query that
# states its predicate, and cannot see through a bound parameter.
_IS_WAITING = (
    _files.c.status == literal_column("'pending'"),
    _files.c.next_task_id == literal_column("''"),
)
# A CTE, materialized: as a plain IN (subquery), PostgreSQL may run the subquery again for each
# row it updates, and each run, no longer seeing the files just given a place, picks the next
# ones, past the LIMIT.
_NEXT_WAITING = (
    select(_files.c.id)
    .where(_files.c.job_id == bindparam("b_job_id"), *_IS_WAITING)
    .order_by(_files.c.file_index)
    .limit(bindparam("places"))
    # PostgreSQL: two files ending at once take different waiting files.
    .with_for_update(skip_locked=True)
    .cte("next_waiting")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)


def release_statement(condition: ColumnElement[bool] | None = None) -> Update:
    """Gives the next ``places`` waiting files of a runnable job their place: a token each,
    ``prefix`` followed by the file's index; RETURNs them. With ``condition``, only if it
    holds (a part of a PostgreSQL statement that ends a file: shared/engine/statements.py)."""
    conditions = [] if condition is None else [condition]
    return (
        update(_files)
        .where(
            _files.c.id.in_(select(_NEXT_WAITING.c.id)),
            *_IS_WAITING,
            select(_jobs.c.id)
            .where(_jobs.c.id == bindparam("b_job_id"), one_of(_jobs.c.status, sorted(RUNNABLE)))
            .exists(),
            *conditions,
        )
        .values(
            next_task_id=bindparam("prefix", type_=String) + cast(_files.c.file_index, String),
            updated_at=bindparam("now", type_=_files.c.updated_at.type),
        )
        .returning(_files.c.file_index, _files.c.next_step, _files.c.next_task_id)
    )


_RELEASE = Prepared(release_statement())
# The files of a job in its window: those not finished and not waiting.
_IN_WINDOW = Prepared(
    select(
        _jobs.c.num_files
        - _jobs.c.files_done
        - select(func.count())
        .select_from(_files)
        .where(_files.c.job_id == bindparam("b_job_id"), *_IS_WAITING)
        .scalar_subquery()
    ).where(_jobs.c.id == bindparam("b_job_id"))
)


def has_waiting_files(job_id: ColumnElement) -> ColumnElement[bool]:
    """Whether the job ``job_id`` (a column of a query on jobs) has files waiting for a place."""
    return select(_files.c.id).where(_files.c.job_id == job_id, *_IS_WAITING).exists()


def size(settings: Settings) -> int | None:
    """How many files of one job may be in the broker at a time; None: no limit."""
    return settings.job_window if settings.job_window > 0 else None


def released_prefix(task_id: str) -> str:
    """The token prefix of the file that the task ``task_id`` released as its file ended: the
    same for a redelivery of that task."""
    return f"{uuid.uuid5(uuid.NAMESPACE_OID, task_id)}."


def _places_free(conn: Connection, job: Job | JobSnapshot, window: int) -> int:
    """How many more of ``job``'s files its window of ``window`` holds now (none, if the job's
    row is gone)."""
    in_window = _IN_WINDOW.first(conn, {"b_job_id": job.id})
    return 0 if in_window is None else window - in_window[0]


def _release(
    conn: Connection, settings: Settings, job: Job | JobSnapshot, places: int, prefix: str
) -> list[NextStep]:
    if places <= 0:
        return []
    rows = _RELEASE.all(
        conn,
        {"b_job_id": job.id, "places": places, "prefix": prefix, "now": datetime.now(UTC)},
    )
    if not rows:
        return []
    binary = cached_binary(settings, job.binary_hash)
    return [
        next_step_for(settings, job, binary, row.file_index, row.next_step, row.next_task_id)
        for row in sorted(rows)
    ]


def refill(
    conn: Connection, settings: Settings, job: Job | JobSnapshot, ended_by: str
) -> NextStep | None:
    """A file of ``job`` ended, in the caller's transaction, by the task ``ended_by``: give its
    place to the job's next waiting file, if there is one and the job may run. The step to
    publish after the commit, or None."""
    if size(settings) is None:
        return None  # every file was given its token when the job was submitted
    released = _release(conn, settings, job, 1, released_prefix(ended_by))
    return released[0] if released else None


def refill_if_room(
    conn: Connection, settings: Settings, job: Job | JobSnapshot, ended_by: str
) -> NextStep | None:
    """``refill``, only if the job's window has a place free (shared/engine/paused_files.py:
    the file that ended may already have been counted out of the window)."""
    window = size(settings)
    if window is None or _places_free(conn, job, window) <= 0:
        return None
    released = _release(conn, settings, job, 1, released_prefix(ended_by))
    return released[0] if released else None


def fill(conn: Connection, settings: Settings, job: Job | JobSnapshot) -> list[NextStep]:
    """Give waiting files of a runnable ``job`` a place until its window is full, in the
    caller's transaction; the steps to publish after the commit."""
    window = size(settings)
    places = 1 << 30 if window is None else _places_free(conn, job, window)
    return _release(conn, settings, job, places, f"{new_task_id()}.")


def rereleased(
    conn: Connection, settings: Settings, job: Job | JobSnapshot, ended_by: str
) -> NextStep | None:
    """The redelivery of ``ended_by``, a task that ended a file and may have died before it
    published the file it released: that file's step under a fresh token (which retires the
    message, if it was sent), unless the file was claimed meanwhile; else None."""
    prefix = released_prefix(ended_by)
    row = conn.execute(
        select(_files.c.file_index, _files.c.next_step, _files.c.next_task_id).where(
            _files.c.job_id == job.id,
            _files.c.status == literal_column("'pending'"),
            _files.c.claimed_by.is_(None),
            _files.c.next_task_id.startswith(prefix, autoescape=True),
        )
    ).first()
    if row is None:
        return None
    token = new_task_id()
    swapped = conn.execute(
        update(_files)
        .where(
            _files.c.job_id == job.id,
            _files.c.file_index == row.file_index,
            _files.c.next_task_id == row.next_task_id,
        )
        .values(next_task_id=token)
    ).rowcount
    if swapped != 1:
        return None
    binary = cached_binary(settings, job.binary_hash)
    return next_step_for(settings, job, binary, row.file_index, row.next_step, token)
