"""Seed 003's ``desiredExecutionStatus``: a user says what a job should do (run, be suspended,
be canceled), the wish is recorded at once, and the job gets there through job control
(shared/runs/control.py): a suspended job pauses at its next step boundary (running steps
finish, no new one starts), a running one resumes if paused, a canceled one stops for good.

What each wish may start from is data, from the transition table: the states the control
action leaves, and the states in which the wish already holds (nothing to do). From any other
state the wish cannot be reached: a 409 that says why, and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.accounts.principal import Principal
from shared.config import Settings
from shared.engine.broker_work import BrokerWork
from shared.errors import Conflict
from shared.runs import control
from shared.states import (
    CANCEL,
    PAUSE,
    RESUME,
    RUNNABLE,
    DesiredExecution,
    JobKind,
    JobStatus,
    Transition,
)
from shared.store.models import Job


@dataclass(frozen=True)
class Wish:
    transition: Transition  # what gets the job there
    holds_in: frozenset[JobStatus]  # where it is there already
    act: Callable[[Session, Settings, Job], BrokerWork]
    flows_only: bool  # pausing and resuming move steps: only flow runs have them


WISHES = {
    DesiredExecution.RUNNING: Wish(
        RESUME,
        RUNNABLE,
        lambda session, settings, job: control.resume_job(session, settings, job),
        flows_only=True,
    ),
    DesiredExecution.SUSPENDED: Wish(
        PAUSE,
        frozenset({PAUSE.target}),
        lambda session, settings, job: control.pause_job(session, job),
        flows_only=True,
    ),
    DesiredExecution.CANCELED: Wish(
        CANCEL,
        frozenset({CANCEL.target}),
        lambda session, settings, job: control.cancel_job(session, job),
        flows_only=False,
    ),
}


def _unreachable(job: Job, desired: DesiredExecution) -> str:
    if job.status == JobStatus.CANCELLED:
        return f"job {job.id!r} is cancelled: a cancelled job never runs again"
    if desired == DesiredExecution.RUNNING:
        return (
            f"job {job.id!r} is {job.status}: it has ended, so there is nothing to run; retry "
            "its failed files with /api/v1/jobs/retry"
        )
    if desired == DesiredExecution.SUSPENDED:
        return f"job {job.id!r} is {job.status}: it has ended, so there is nothing to suspend"
    return f"job {job.id!r} is {job.status}: there is nothing left to cancel"


def record_change(session: Session, job: Job, principal: Principal, **values) -> None:
    """Write ``values`` to the job's row with who changed it and when."""
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(last_modified_by=principal.user_id, updated_at=datetime.now(UTC), **values)
    )


def set_desired(
    session: Session,
    settings: Settings,
    principal: Principal,
    job: Job,
    desired: DesiredExecution,
) -> BrokerWork:
    """Record ``desired`` for ``job`` (whose control the caller was checked for) and start the
    job towards it; the broker work to apply after the commit."""
    wish = WISHES[desired]
    if wish.flows_only and job.kind != JobKind.FLOW and job.status not in wish.holds_in:
        raise Conflict(
            f"job {job.id!r} is a {job.kind} job: only flow runs can be suspended and resumed"
        )
    if job.status in wish.holds_in:
        work = BrokerWork()
    elif job.status in wish.transition.sources:
        work = wish.act(session, settings, job)
    else:
        raise Conflict(_unreachable(job, desired))
    record_change(session, job, principal, desired_execution_status=desired)
    return work
