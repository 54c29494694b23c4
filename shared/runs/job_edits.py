"""Changing and removing a job through the resource API (``PUT`` and ``DELETE
/api/v2/jobs/<id>``): its metadata and tags are replaced, its collaboration too (by its owner or
an admin), its desired execution status set (shared/runs/desired_state.py); a removed job is
cancelled first if it has not ended, and its row goes with everything that refers to it (files,
tags, shares, logs, deliveries, reviews: their foreign keys cascade). Its output folder stays in
the drive: it holds the user's files."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from shared.accounts.access import JobNeed, get_job_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.engine.broker_work import BrokerWork
from shared.jobs.store import add_tags, set_tags
from shared.runs import control, sharing
from shared.runs.desired_state import record_change, set_desired
from shared.states import ENDED, DesiredExecution
from shared.store.models import Job


@dataclass(frozen=True)
class JobChanges:
    """What a PUT replaces; None leaves it as it is."""

    metadata: dict | None = None
    tags: list[str] | None = None
    collaboration: dict | None = None
    desired: DesiredExecution | None = None


def change_job(
    session: Session,
    settings: Settings,
    principal: Principal,
    job_id: str,
    changes: JobChanges,
) -> tuple[Job, BrokerWork]:
    """Apply ``changes`` in the caller's transaction (all or none of them: a refused one rolls
    the others back with it); the job and the broker work to apply after the commit."""
    # Changing who shares it is its owner's or an admin's, who also control it.
    need = JobNeed.CONTROL if changes.collaboration is None else JobNeed.SHARE
    job = get_job_for(session, principal, job_id, need)
    work = BrokerWork()
    if changes.collaboration is not None:
        sharing.set_collaboration(session, settings, principal, job.id, changes.collaboration)
    if changes.tags is not None:
        set_tags(session, job.id, changes.tags)
    if changes.desired is not None:
        work = set_desired(session, settings, principal, job, changes.desired)
    values = {} if changes.metadata is None else {"job_metadata": changes.metadata}
    record_change(session, job, principal, **values)
    return job, work


def remove_job(session: Session, principal: Principal, job_id: str) -> BrokerWork:
    """Cancel the job unless it has ended, and delete its record; the broker work (stopping its
    running steps) to apply after the commit."""
    job = get_job_for(session, principal, job_id, JobNeed.CONTROL)
    work = BrokerWork() if job.status in ENDED else control.cancel_job(session, job)
    session.execute(delete(Job).where(Job.id == job.id))
    return work


def annotate_new_job(session: Session, job: Job, metadata: dict, tags: list[str]) -> None:
    """Give a job recorded in ``session`` (a compile: a run records its own) its metadata and
    tags."""
    job.job_metadata = dict(metadata)
    add_tags(session, job.id, tags)
