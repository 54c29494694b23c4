"""What a step message is, and scheduling one: the fencing token it carries, its priority and
its time limit. A message is published only after the transaction that stored its token has
committed, so the store always expects the message before it can arrive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from shared.config import Settings
from shared.engine.snapshot import JobSnapshot, cached_binary
from shared.flow.binary import CompiledBinary
from shared.jobs.ids import new_task_id
from shared.store.models import Job, JobFile

# A step past its hard limit is killed; its claim lapses this long after the hard limit.
CLAIM_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class StepCall:
    """What one step task is asked to do; crosses the broker as plain arguments."""

    job_id: str
    file_index: int
    step_index: int
    task_id: str = ""


@dataclass(frozen=True)
class NextStep:
    """A step to publish (after the transaction that minted its task id has committed)."""

    call: StepCall
    priority: int
    time_limit: int


def step_time_limit(
    settings: Settings, job: Job | JobSnapshot, binary: CompiledBinary, step_index: int
) -> int:
    """The step's own ``timeout`` from the flow file wins; else the run's ``step_timeout``."""
    step = binary.steps[step_index]
    return settings.step_time_limit(step.timeout if step.timeout else job.step_timeout)


def next_step_for(
    settings: Settings,
    job: Job | JobSnapshot,
    binary: CompiledBinary,
    file_index: int,
    step_index: int,
    task_id: str,
) -> NextStep:
    return NextStep(
        call=StepCall(job.id, file_index, step_index, task_id),
        priority=job.priority,
        time_limit=step_time_limit(settings, job, binary, step_index),
    )


def steps_for(settings: Settings, job: Job | JobSnapshot, files: list[JobFile]) -> list[NextStep]:
    """The next step of each file, with the token already stored for it."""
    binary = cached_binary(settings, job.binary_hash)
    return [
        next_step_for(settings, job, binary, row.file_index, row.next_step, row.next_task_id)
        for row in files
    ]


def schedule_files(
    session: Session, settings: Settings, job: Job, files: list[JobFile]
) -> list[NextStep]:
    """Mint a fresh token for each file's next step; publish the result after commit.

    A fresh token retires any message already queued for these files."""
    for row in files:
        row.next_task_id = new_task_id()
        row.claimed_by = None
        row.claimed_until = None
    session.flush()
    return steps_for(settings, job, files)
