"""Celery tasks: each loads what it needs, calls the domain code in ``shared`` and records."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.engine.recovery import recover_stalled_steps
from shared.engine.runner import StepRunner
from shared.engine.scheduling import StepCall
from shared.runs.compile import run_compile
from workers.app import worker_settings
from workers.names import COMPILE, RECOVER_STALLED, RUN_STEP
from workers.publisher import publish_step, publish_steps

# A store that is briefly unreachable (a restarted PostgreSQL, SQLite busy past its timeout)
# raises OperationalError. The step's message is sent again, with the same task id (the fencing
# token) and priority, instead of being lost: a claim it did not record never lapses.
STORE_RETRIES = 8


@shared_task(
    name=RUN_STEP,
    bind=True,
    autoretry_for=(OperationalError,),
    max_retries=STORE_RETRIES,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
)
def run_step(self, job_id: str, file_index: int, step_index: int) -> None:
    runner = StepRunner(worker_settings(), passthrough=(SoftTimeLimitExceeded,))
    following = runner.run(StepCall(job_id, file_index, step_index, self.request.id))
    if following is not None:
        # Published only after the step's outcome committed: a pause or cancel that landed
        # meanwhile is seen by the runner, and a crash here is repaired on redelivery.
        publish_step(self.app, following)


@shared_task(name=COMPILE, bind=True)
def compile_flow(self, job_id: str) -> None:
    run_compile(worker_settings(), job_id, self.request.id)


@shared_task(name=RECOVER_STALLED, bind=True)
def recover_stalled(self) -> int:
    """Beat: give steps whose claim lapsed (dead worker, hard time limit) a fresh start."""
    steps = recover_stalled_steps(worker_settings())
    publish_steps(self.app, steps)
    return len(steps)
