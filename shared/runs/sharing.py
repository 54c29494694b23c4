"""Changing who a job is shared with, after it was submitted: its owner or an admin replaces
its collaboration; the step ids are those of the binary the job runs."""

from __future__ import annotations

from sqlalchemy.orm import Session

from shared.accounts import collaboration
from shared.accounts.access import JobNeed, get_job_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.engine.snapshot import cached_binary
from shared.states import JobKind
from shared.store.models import Job


def step_ids_of(settings: Settings, job: Job) -> list[str]:
    """The step ids a collaborator of ``job`` may be given (besides '*')."""
    if job.kind != JobKind.FLOW or not job.binary_hash:
        return []
    return [step.id for step in cached_binary(settings, job.binary_hash).steps]


def set_collaboration(
    session: Session, settings: Settings, principal: Principal, job_id: str, wanted: dict
) -> dict:
    """Replace the job's collaboration with ``wanted``; the collaboration as answers show it."""
    job = get_job_for(session, principal, job_id, JobNeed.SHARE)
    collaborators = collaboration.resolve(session, wanted, step_ids_of(settings, job))
    collaboration.share(session, job.id, collaborators)
    session.flush()
    return collaboration.collaboration_of(session, [job.id])[job.id]


def collaboration_for(session: Session, principal: Principal, job_id: str) -> dict:
    job = get_job_for(session, principal, job_id)
    return collaboration.collaboration_of(session, [job.id])[job.id]
