"""A file whose step advanced while its job was paused: the advance stored no token for the
next step, so that a resume would send it. On PostgreSQL a resume can miss such a file: the
resume takes the job's row, then reads its idle files, and a file still claimed in that read's
snapshot is not among them; if its step's advance then commits, having read the job as paused
before the resume committed, neither of them sends the file on.

So the step, after its advance, waits for any transaction changing the job's row (a resume
committing) and then gives the file its token itself if the job may run again and no one else
gave it one. Either the advance committed before the resume read the files, and the resume
sees the file; or the resume took the job's row before this wait, which then sees it
committed. The two statements each stand alone, in the order a resume takes its rows (the
job's, then the file's), so neither can deadlock with a resume or a cancel.

A file that ended under a pause gave its place in the job's window to no one (only a runnable
job's waiting files get one), and a resume whose read of the job's count predates that ending
counts the file as still in the window: that place would stay empty. The same wait, then a
release into the window if it has room, fills it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, select, update

from shared.config import Settings
from shared.engine import window
from shared.engine.scheduling import NextStep, next_step_for
from shared.engine.snapshot import JobSnapshot
from shared.flow.binary import CompiledBinary
from shared.states import RUNNABLE, FileStatus
from shared.store.db import connection_scope, statement_scope
from shared.store.models import Job, JobFile
from shared.store.prepared import Prepared, one_of

_files = JobFile.__table__
_jobs = Job.__table__

# A lock that an UPDATE of the job's row holds off, taken and let go in one statement: it
# returns once every transaction changing the row has committed or rolled back.
_WAIT_FOR_JOB_WRITERS = Prepared(
    select(_jobs.c.id).where(_jobs.c.id == bindparam("b_job_id")).with_for_update(read=True)
)
_GIVE_TOKEN = Prepared(
    update(_files)
    .where(
        _files.c.job_id == bindparam("b_job_id"),
        _files.c.file_index == bindparam("b_file_index"),
        _files.c.next_step == bindparam("next_step"),
        _files.c.status == FileStatus.PENDING,
        _files.c.claimed_by.is_(None),
        _files.c.next_task_id.is_(None),
        select(_jobs.c.id)
        .where(_jobs.c.id == bindparam("b_job_id"), one_of(_jobs.c.status, sorted(RUNNABLE)))
        .exists(),
    )
    .values(
        next_task_id=bindparam("next_token", type_=_files.c.next_task_id.type),
        updated_at=bindparam("now", type_=_files.c.updated_at.type),
    )
    .returning(_files.c.next_step)
)


def resumed_meanwhile(
    settings: Settings,
    job: JobSnapshot,
    binary: CompiledBinary,
    file_index: int,
    next_step: int,
    token: str,
) -> NextStep | None:
    """The file ``file_index`` of ``job`` has just advanced to ``next_step`` seeing the job
    paused: its step under ``token``, to publish, if a resume has let the job run again and
    has not sent the file itself; else None (the job is still paused: its resume will)."""
    params = {
        "b_job_id": job.id,
        "b_file_index": file_index,
        "next_step": next_step,
        "next_token": token,
        "now": datetime.now(UTC),
    }
    with statement_scope(settings.sql_url) as conn:
        _WAIT_FOR_JOB_WRITERS.first(conn, params)
        if _GIVE_TOKEN.first(conn, params) is None:
            return None
    return next_step_for(settings, job, binary, file_index, next_step, token)


def released_meanwhile(settings: Settings, job: JobSnapshot, ended_by: str) -> NextStep | None:
    """A file of ``job`` has just ended, by the task ``ended_by``, seeing the job paused: the
    step of the waiting file that takes its place, to publish, if a resume has let the job run
    again and left that place empty; else None."""
    if window.size(settings) is None:
        return None  # no window: no place to fill
    with statement_scope(settings.sql_url) as conn:
        _WAIT_FOR_JOB_WRITERS.first(conn, {"b_job_id": job.id})
    with connection_scope(settings.sql_url) as conn:
        return window.refill_if_room(conn, settings, job, ended_by)
