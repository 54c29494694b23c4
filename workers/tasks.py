"""Celery tasks: each loads what it needs, calls the domain code in ``shared`` and records."""

from __future__ import annotations

from billiard import common as billiard_common
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.engine.publication import confirm_published
from shared.engine.recovery import recover_stalled_steps
from shared.engine.runner import StepRunner
from shared.engine.scheduling import StepCall
from shared.jobs.retention import delete_expired_jobs
from shared.runs import input_listing
from shared.runs.compile import run_compile
from workers.app import worker_settings
from workers.names import COMPILE, EXPIRE_JOBS, RECOVER_STALLED, RELEASE_JOB, RUN_STEP
from workers.publisher import CeleryPublisher, publish_release, publish_step, publish_steps

# True once this pool process has been told to stop: billiard turns the SIGTERM (a worker that
# lost the broker cancels the steps it can no longer ack; a cold shutdown) into a SystemExit
# wherever the process is, and a UDF, or the flow runtime's per-record error handling, may catch
# it as an error of the step's records. Older billiards lack it; they never say so.
_terminating = getattr(billiard_common, "terminate_handler_fired", lambda: False)

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
    settings = worker_settings()
    runner = StepRunner(
        settings,
        passthrough=(SoftTimeLimitExceeded,),
        terminating=_terminating,
        # Drops the queued steps of a job whose maxParseExceptions this step passed.
        publisher=CeleryPublisher(self.app, settings.delivery_interval),
    )
    # The soft limit this message carries: the step's claim lasts as long as the worker lets
    # the step run.
    _, soft_limit = self.request.timelimit or (None, None)
    following = runner.run(
        StepCall(job_id, file_index, step_index, self.request.id), time_limit=soft_limit
    )
    if following is not None:
        # Published only after the step's outcome committed: a pause or cancel that landed
        # meanwhile is seen by the runner, and a crash here is repaired on redelivery.
        publish_step(self.app, following)


@shared_task(
    name=RELEASE_JOB,
    bind=True,
    autoretry_for=(OperationalError,),
    max_retries=STORE_RETRIES,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
)
def release_job(self, job_id: str) -> int:
    """Let a new job's first files into its window (recording a big input folder's files
    first, batch by batch), sending each batch's steps once it has committed."""
    return input_listing.release_job(
        worker_settings(), job_id, lambda steps: publish_steps(self.app, steps)
    )


@shared_task(name=COMPILE, bind=True)
def compile_flow(self, job_id: str) -> None:
    run_compile(worker_settings(), job_id, self.request.id)


@shared_task(name=RECOVER_STALLED, bind=True)
def recover_stalled(self) -> int:
    """Beat: give steps whose claim lapsed (dead worker, hard time limit), and the steps of a
    job whose sender died before publishing them, a fresh start."""
    settings = worker_settings()
    work = recover_stalled_steps(settings)
    publish_steps(self.app, work.publish)
    for job_id in work.release:
        publish_release(self.app, job_id)
    # Only once every step is out: a round that dies before leaves the marks for a later one.
    confirm_published(settings.sql_url, work.confirm)
    return len(work.publish)


@shared_task(name=EXPIRE_JOBS, bind=True)
def expire_jobs(self) -> int:
    """Beat: delete the store's rows of the jobs that ended more than FLOWBIN_RETENTION_DAYS
    ago, a batch at a time (shared/jobs/retention.py)."""
    settings = worker_settings()
    return delete_expired_jobs(settings.sql_url, settings.retention_days)
