"""Job control: pause, resume, cancel, retry and their bulk forms.

Each operation changes the store in one transaction and returns what the caller must then do
with the broker: steps to publish (with the tokens minted here) and task ids to revoke. The
store is the authority; the broker side only makes it take effect sooner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.engine.runner import NextStep, schedule_files
from shared.errors import Conflict, InvalidRequest
from shared.jobs.listing import tagged_with_any
from shared.jobs.store import get_job_for, set_tags, transition_job
from shared.states import FileStatus, JobStatus
from shared.store.models import Job, JobFile, User
from shared.users import Principal

RETRY_TYPES = ("all", "checkpoint_failure", "step_failure")


@dataclass
class BrokerWork:
    """What the broker must be told once the store's transaction has committed."""

    publish: list[NextStep] = field(default_factory=list)
    terminate: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    affected: int = 0

    def add(self, other: BrokerWork) -> None:
        self.publish += other.publish
        self.terminate += other.terminate
        self.drop += other.drop
        self.affected += other.affected


def _now() -> datetime:
    return datetime.now(UTC)


def running_claims(session: Session, job_id: str) -> list[str]:
    """Task ids of the job's steps that are running now (their claim has not lapsed)."""
    return list(
        session.scalars(
            select(JobFile.claimed_by).where(
                JobFile.job_id == job_id,
                JobFile.status == FileStatus.PENDING.value,
                JobFile.claimed_by.is_not(None),
                JobFile.claimed_until > _now(),
            )
        )
    )


def jobs_with_running_steps(session: Session, job_ids: list[str]) -> set[str]:
    if not job_ids:
        return set()
    return set(
        session.scalars(
            select(JobFile.job_id)
            .distinct()
            .where(
                JobFile.job_id.in_(job_ids),
                JobFile.status == FileStatus.PENDING.value,
                JobFile.claimed_by.is_not(None),
                JobFile.claimed_until > _now(),
            )
        )
    )


def pause_job(session: Session, job: Job) -> BrokerWork:
    if job.status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
        raise Conflict(
            f"job {job.id!r} is {job.status}: only a queued or running job can be paused"
        )
    transition_job(session, job.id, JobStatus.PAUSED, message="Paused")
    return BrokerWork(affected=1)


def resume_job(session: Session, settings: Settings, job: Job) -> BrokerWork:
    if job.status != JobStatus.PAUSED.value:
        raise Conflict(f"job {job.id!r} is {job.status}, not paused: nothing to resume")
    transition_job(session, job.id, JobStatus.QUEUED, message="Resumed")
    # Files whose step is still running go on by themselves: that step's commit sees the job
    # runnable again and publishes the next one.
    idle = list(
        session.scalars(
            select(JobFile)
            .where(
                JobFile.job_id == job.id,
                JobFile.status == FileStatus.PENDING.value,
                or_(JobFile.claimed_by.is_(None), JobFile.claimed_until <= _now()),
            )
            # Waits for a step that is committing its advance right now, then sees it: that step
            # read the job as paused, so it is this resume that must publish the file's next step.
            .with_for_update()
        )
    )
    return BrokerWork(publish=schedule_files(session, settings, job, idle), affected=1)


def cancel_job(session: Session, job: Job) -> BrokerWork:
    if job.status in (JobStatus.CANCELLED.value,):
        raise Conflict(f"job {job.id!r} is already cancelled")
    if job.status in (JobStatus.COMPLETE.value, JobStatus.FAILED.value):
        raise Conflict(f"job {job.id!r} is {job.status}: there is nothing left to cancel")
    pending = session.execute(
        select(JobFile.claimed_by, JobFile.next_task_id).where(
            JobFile.job_id == job.id, JobFile.status == FileStatus.PENDING.value
        )
    ).all()
    transition_job(session, job.id, JobStatus.CANCELLED, message="Cancelled")
    session.execute(
        update(JobFile)
        .where(JobFile.job_id == job.id, JobFile.status == FileStatus.PENDING.value)
        .values(
            status=FileStatus.CANCELLED.value,
            next_task_id=None,
            claimed_by=None,
            claimed_until=None,
        )
    )
    return BrokerWork(
        terminate=[claimed for claimed, _ in pending if claimed],
        drop=[queued for _, queued in pending if queued],
        affected=1,
    )


def retry_job(session: Session, settings: Settings, job: Job, retry_type: str) -> BrokerWork:
    if retry_type not in RETRY_TYPES:
        raise InvalidRequest(f"type must be one of {', '.join(RETRY_TYPES)}, not {retry_type!r}")
    if job.kind != "flow":
        raise Conflict(f"job {job.id!r} is a {job.kind} job; only flow runs can be retried")
    if job.status not in (
        JobStatus.COMPLETE.value,
        JobStatus.FAILED.value,
        JobStatus.STOPPED_AT_CHECKPOINT.value,
    ):
        raise Conflict(
            f"job {job.id!r} is {job.status}: only a finished job can be retried"
            + (
                " (a cancelled job never runs again)"
                if job.status == JobStatus.CANCELLED.value
                else ""
            )
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
        raise Conflict(f"job {job.id!r} has no files with {retry_type.replace('_', ' ')}s to retry")
    transition_job(session, job.id, JobStatus.QUEUED, message=f"Retrying ({retry_type})")
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
                status=FileStatus.PENDING.value,
                next_step=restart,
                attempts=0,
                failed_step=None,
                checkpoint_step=None,
                num_records=0,
                num_errors=0,
                num_checkpoint_failed=0,
                num_filtered=0,
                error_counts={},
                advanced_by=None,
            )
        )
        row.next_step = restart
    session.execute(
        update(Job).where(Job.id == job.id).values(files_done=Job.files_done - len(files))
    )
    return BrokerWork(publish=schedule_files(session, settings, job, files), affected=1)


def set_job_tags(
    session: Session, principal: Principal, job_id: str, names: list[str] | None
) -> list[str]:
    job = get_job_for(session, principal, job_id)
    return set_tags(session, job.id, list(names or []))


@dataclass(frozen=True)
class BulkFilter:
    from_timestamp: datetime
    to_timestamp: datetime
    user: str | None = None
    tags: tuple[str, ...] = ()


def select_jobs_for_bulk(
    session: Session, principal: Principal, bulk: BulkFilter, statuses: tuple[JobStatus, ...]
) -> list[Job]:
    query = select(Job).where(
        Job.kind == "flow",
        Job.status.in_([status.value for status in statuses]),
        Job.created_at >= bulk.from_timestamp,
        Job.created_at <= bulk.to_timestamp,
    )
    if not principal.is_admin:
        # A non-admin acts on their own jobs only, whatever `user` says.
        query = query.where(Job.owner_id == principal.user_id)
    elif bulk.user:
        query = query.join(User, User.id == Job.owner_id).where(User.username == bulk.user)
    if bulk.tags:
        query = query.where(tagged_with_any(bulk.tags))
    return list(session.scalars(query.order_by(Job.created_at).with_for_update()))
