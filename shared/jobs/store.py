"""Jobs in the store: ids, ownership, guarded state transitions and the run summary."""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from shared.delivery import notify
from shared.errors import Conflict, InvalidRequest, InvalidTransition, NotFound
from shared.states import FILE_FINISHED, FileStatus, JobStatus, allowed_sources
from shared.store.db import connection_of
from shared.store.models import Job, JobFile, JobTag
from shared.store.prepared import Prepared, one_of
from shared.users import Principal

JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,50}$")


def new_job_id(requested: str | None) -> str:
    if requested is None or requested == "":
        return str(uuid.uuid4())
    if not isinstance(requested, str) or not JOB_ID.match(requested):
        raise InvalidRequest("job_id must be 1-50 characters of letters, digits, '.', '_' or '-'")
    return requested


def new_trace_id() -> str:
    return secrets.token_hex(8)


_JOB_EXISTS = Prepared(
    select(Job.__table__.c.id).where(Job.__table__.c.id == bindparam("b_job_id"))
)


def ensure_job_id_free(store: Session | Connection, job_id: str) -> None:
    if _JOB_EXISTS.first(connection_of(store), {"b_job_id": job_id}) is not None:
        raise Conflict(f"a job with id {job_id!r} already exists: choose another job_id")


def new_task_id() -> str:
    """The id of a step message: also the fencing token the store expects for it."""
    return str(uuid.uuid4())


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
        select(JobTag.job_id, JobTag.tag).where(JobTag.job_id.in_(job_ids)).order_by(JobTag.tag)
    )
    for job_id, tag in rows:
        tags[job_id].append(tag)
    return tags


def get_job_for(
    session: Session, principal: Principal, job_id: str | None, *, as_reviewer: bool = False
) -> Job:
    """The job, if the caller may see it: its owner or an admin, and with ``as_reviewer`` also
    its assigned reviewer. Another user's job is reported as missing."""
    if not job_id:
        raise InvalidRequest("job_id is required")
    job = session.get(Job, job_id)
    allowed = job is not None and (
        job.owner_id == principal.user_id
        or principal.is_admin
        or (as_reviewer and bool(job.reviewer) and job.reviewer == principal.username)
    )
    if not allowed:
        raise NotFound(f"no job with id {job_id!r}")
    return job


@functools.cache
def _transition_statement(target: JobStatus):
    """The conditional UPDATE into ``target``, built once: workers run it on every step."""
    jobs = Job.__table__
    now = bindparam("now", type_=jobs.c.started_at.type)
    values: dict = {
        "status": target.value,
        # A transition without a message keeps the job's current one.
        "message": func.coalesce(
            bindparam("new_message", type_=jobs.c.message.type), jobs.c.message
        ),
    }
    if target == JobStatus.RUNNING:
        values["started_at"] = func.coalesce(jobs.c.started_at, now)
    if target in (
        JobStatus.COMPLETE,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.STOPPED_AT_CHECKPOINT,
    ):
        values["finished_at"] = now
    if target == JobStatus.QUEUED:
        values["finished_at"] = None
    sources = sorted(source.value for source in allowed_sources(target))
    # The row comes back from the UPDATE itself: a job that ends hands its receivers' settings
    # to the notifications without another read.
    returned = notify.JOB_COLUMNS_FOR_NOTIFYING if target in notify.NOTIFYING else (jobs.c.id,)
    return Prepared(
        update(jobs)
        .where(jobs.c.id == bindparam("b_job_id"), one_of(jobs.c.status, sources))
        .values(**values)
        .returning(*returned)
    )


def transition_job(
    store: Session | Connection,
    job_id: str,
    target: JobStatus,
    *,
    message: str | None = None,
    strict: bool = True,
) -> bool:
    """Move a job to ``target`` if the state machine allows it from the job's current state.

    The check and the write are one conditional UPDATE, so concurrent writers cannot both win.
    Returns whether the job moved; with ``strict`` a refused move raises InvalidTransition.
    Runs in the transaction of ``store``: an ORM session's, or a bare connection's (workers).
    """
    conn = connection_of(store)
    moved = _transition_statement(target).first(
        conn, {"b_job_id": job_id, "new_message": message, "now": datetime.now(UTC)}
    )
    if moved is not None:
        # In this same transaction: a job that ended always has its webhook and email
        # deliveries, and a rolled-back change has none (shared/notify.py).
        notify.schedule_for_job(conn, job_id, target, moved)
        return True
    if strict:
        current = conn.execute(select(Job.status).where(Job.id == job_id)).scalar()
        if current is None:
            raise NotFound(f"no job with id {job_id!r}")
        raise InvalidTransition(
            f"job {job_id!r} is {JobStatus(current).value} and cannot become {target.value}"
        )
    return False


@dataclass(frozen=True)
class RunSummary:
    num_files: int
    num_records: int
    num_runtime_errors: int
    num_checkpoint_failed: int
    num_filtered: int
    records_with_msg: dict[str, int]
    progress: float

    def to_seed(self) -> dict:
        return {
            "numFiles": self.num_files,
            "numRecords": self.num_records,
            "numRuntimeErrors": self.num_runtime_errors,
            "numCheckpointFailed": self.num_checkpoint_failed,
            "recordsWithMsg": self.records_with_msg,
        }


def run_summaries(session: Session, jobs: list[Job]) -> dict[str, RunSummary]:
    """Summaries of several jobs, derived from their file rows in one query."""
    by_job: dict[str, list[JobFile]] = {job.id: [] for job in jobs}
    if by_job:
        for row in session.scalars(select(JobFile).where(JobFile.job_id.in_(list(by_job)))):
            by_job[row.job_id].append(row)
    return {job.id: _summarize(job, by_job[job.id]) for job in jobs}


def _summarize(job: Job, files: list[JobFile]) -> RunSummary:
    messages: Counter[str] = Counter()
    steps_done = 0
    for row in files:
        messages.update(row.error_counts or {})
        finished = FileStatus(row.status) in FILE_FINISHED
        steps_done += job.num_steps if finished else min(row.next_step, job.num_steps)
    if job.kind != "flow":
        progress = 1.0 if job.finished_at else 0.0
    elif job.num_files and job.num_steps:
        progress = round(steps_done / (job.num_files * job.num_steps), 4)
    else:
        progress = 1.0 if job.finished_at else 0.0
    return RunSummary(
        num_files=job.num_files,
        num_records=sum(row.num_records for row in files),
        num_runtime_errors=sum(row.num_errors for row in files),
        num_checkpoint_failed=sum(row.num_checkpoint_failed for row in files),
        num_filtered=sum(row.num_filtered for row in files),
        records_with_msg=dict(messages),
        progress=progress,
    )
