"""Job control: pause, resume, cancel and retry one job.

Each operation checks its precondition against the transition table (shared/states.py), changes
the store in the caller's transaction and returns the broker work to apply after the commit:
steps to publish (with the tokens minted here) and task ids to revoke.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from shared.accounts.access import JobNeed, get_job_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.engine import window
from shared.engine.broker_work import BrokerWork
from shared.engine.scheduling import schedule_files
from shared.errors import Conflict, InvalidRequest
from shared.jobs import counters
from shared.jobs.store import set_tags, transition_job
from shared.states import (
    CANCEL,
    PAUSE,
    RESUME,
    RETRY,
    DesiredExecution,
    FileStatus,
    JobKind,
    JobStatus,
)
from shared.store.models import Job, JobFile

RETRY_TYPES = ("all", "checkpoint_failure", "step_failure")


def _now() -> datetime:
    return datetime.now(UTC)


def _desire(session: Session, job: Job, desired: DesiredExecution) -> None:
    """Record what the user asked the job to do, as the resource API's
    ``desiredExecutionStatus`` shows it, whichever API they asked through, and when (a wish
    the job is slow to reach turns its health to warn: shared/jobs/health.py)."""
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(desired_execution_status=desired, desired_at=_now())
    )


def pause_job(session: Session, job: Job) -> BrokerWork:
    if job.status not in PAUSE.sources:
        raise Conflict(
            f"job {job.id!r} is {job.status}: only a queued or running job can be paused"
        )
    transition_job(session, job.id, PAUSE.target, message="Paused")
    _desire(session, job, DesiredExecution.SUSPENDED)
    return BrokerWork(affected=1)


def resume_job(session: Session, settings: Settings, job: Job) -> BrokerWork:
    if job.status not in RESUME.sources:
        raise Conflict(f"job {job.id!r} is {job.status}, not paused: nothing to resume")
    transition_job(session, job.id, RESUME.target, message="Resumed")
    _desire(session, job, DesiredExecution.RUNNING)
    # Files whose step is still running go on by themselves: that step's commit sees the job
    # runnable again and publishes the next one.
    idle = list(
        session.scalars(
            select(JobFile)
            .where(
                JobFile.job_id == job.id,
                JobFile.status == FileStatus.PENDING,
                or_(JobFile.claimed_by.is_(None), JobFile.claimed_until <= _now()),
                # A file waiting for a place in the job's window gets one below, if any is free.
                or_(JobFile.next_task_id.is_(None), JobFile.next_task_id != window.WAITING),
            )
            # Waits for a step that is committing its advance right now, then sees it: that step
            # read the job as paused, so it is this resume that must publish the file's next step.
            # On PostgreSQL a file still claimed in this read's snapshot is not waited for; if
            # its step then advances seeing the job paused, that step waits for this commit and
            # sends the file on itself (shared/engine/paused_files.py).
            .with_for_update()
        )
    )
    publish = schedule_files(session, settings, job, idle)
    # The places of the files that ended while the job was paused go to files waiting for one.
    publish += window.fill(session.connection(), settings, job)
    return BrokerWork(publish=publish, affected=1)


def cancel_job(session: Session, job: Job) -> BrokerWork:
    if job.status not in CANCEL.sources:
        if job.status == CANCEL.target:
            raise Conflict(f"job {job.id!r} is already cancelled")
        raise Conflict(f"job {job.id!r} is {job.status}: there is nothing left to cancel")
    pending = session.execute(
        select(JobFile.claimed_by, JobFile.next_task_id).where(
            JobFile.job_id == job.id, JobFile.status == FileStatus.PENDING
        )
    ).all()
    # The files before the job's row, in the order a step's ending takes them (its file, then
    # the job's count): the other order deadlocked on PostgreSQL with a file ending meanwhile.
    session.execute(
        update(JobFile)
        .where(JobFile.job_id == job.id, JobFile.status == FileStatus.PENDING)
        .values(
            status=FileStatus.CANCELLED,
            next_task_id=None,
            claimed_by=None,
            claimed_until=None,
        )
    )
    transition_job(session, job.id, CANCEL.target, message="Cancelled")
    _desire(session, job, DesiredExecution.CANCELED)
    counters.recount(session, job.id)  # a cancelled file counts as every step done
    return BrokerWork(
        terminate=[claimed for claimed, _ in pending if claimed],
        drop=[queued for _, queued in pending if queued],
        affected=1,
    )


def retry_job(session: Session, settings: Settings, job: Job, retry_type: str) -> BrokerWork:
    if retry_type not in RETRY_TYPES:
        raise InvalidRequest(f"type must be one of {', '.join(RETRY_TYPES)}, not {retry_type!r}")
    if job.kind != JobKind.FLOW:
        raise Conflict(f"job {job.id!r} is a {job.kind} job; only flow runs can be retried")
    if job.status not in RETRY.sources:
        raise Conflict(
            f"job {job.id!r} is {job.status}: only a finished job can be retried"
            + (" (a cancelled job never runs again)" if job.status == JobStatus.CANCELLED else "")
        )
    conditions = []
    if retry_type in ("all", "step_failure"):
        conditions.append(JobFile.failed_step.is_not(None))
    if retry_type in ("all", "checkpoint_failure"):
        conditions.append(JobFile.checkpoint_step.is_not(None))
    files = list(
        session.scalars(
            select(JobFile)
            .where(JobFile.job_id == job.id, or_(*conditions))
            .order_by(JobFile.file_index)
        )
    )
    if not files:
        wanted = {
            "all": "step or checkpoint failures",
            "step_failure": "step failures",
            "checkpoint_failure": "checkpoint failures",
        }[retry_type]
        raise Conflict(f"job {job.id!r} has no files with {wanted} to retry")
    transition_job(session, job.id, RETRY.target, message=f"Retrying ({retry_type})")
    for row in files:
        restart = min(
            step
            for step in (
                row.failed_step if retry_type != "checkpoint_failure" else None,
                row.checkpoint_step if retry_type != "step_failure" else None,
            )
            if step is not None
        )
        session.execute(
            update(JobFile)
            .where(JobFile.id == row.id)
            .values(
                status=FileStatus.PENDING,
                next_step=restart,
                attempts=0,
                failed_step=None,
                checkpoint_step=None,
                num_records=0,
                num_errors=0,
                num_checkpoint_failed=0,
                num_warnings=0,
                num_filtered=0,
                error_counts={},
                advanced_by=None,
                # Each waits for a place in the job's window, given below.
                next_task_id=window.WAITING,
            )
        )
        row.next_step = restart
    session.execute(
        update(Job).where(Job.id == job.id).values(files_done=Job.files_done - len(files))
    )
    if job.max_parse_exceptions is not None:
        # The error budget counts the records that failed in this run of each file: those of
        # the files retried start again from none (shared/engine/budget.py).
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                num_record_errors=select(func.coalesce(func.sum(JobFile.num_errors), 0))
                .where(JobFile.job_id == job.id)
                .scalar_subquery()
            )
        )
    counters.recount(session, job.id)
    return BrokerWork(publish=window.fill(session.connection(), settings, job), affected=1)


def set_job_tags(
    session: Session, principal: Principal, job_id: str, names: list[str] | None
) -> list[str]:
    job = get_job_for(session, principal, job_id, JobNeed.CONTROL)
    return set_tags(session, job.id, list(names or []))
