"""A step message that could not claim its file: why, and what is left to do about it.

Most such messages are stale or duplicated (a resume or retry minted a fresh token) and do
nothing. Two are not: a message refused only by the attempt cap fails its file, and the
redelivery of a step whose worker died after committing it does what that worker would have
done next (publish the next step, under a fresh token, or end the job and send the file that
took its place in the job's window: shared/engine/window.py). A message for a pending
file of a job that failed (its maxParseExceptions passed as the message was sent) ends the
job's idle files, this one among them (shared/engine/budget.py)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from shared.config import Settings
from shared.engine import window
from shared.engine.endings import fail_file, finish_job_if_done
from shared.engine.scheduling import NextStep, StepCall, next_step_for
from shared.engine.snapshot import JobSnapshot
from shared.flow.binary import CompiledBinary
from shared.jobs.ids import new_task_id
from shared.jobs.log import JobLogger
from shared.states import RUNNABLE, FileStatus, JobStatus
from shared.store.db import connection_scope, session_scope
from shared.store.models import Job, JobFile


def handle_refused(
    settings: Settings,
    job: JobSnapshot,
    binary: CompiledBinary,
    call: StepCall,
    stop_files: Callable[[], None],
) -> NextStep | None:
    """What a message that could not claim its file still has to do: the step to publish, or
    None. ``stop_files`` ends the idle files of the job once it has failed."""
    with session_scope(settings.sql_url, read_only=True) as session:
        row = session.execute(
            select(
                JobFile.status,
                JobFile.next_step,
                JobFile.next_task_id,
                JobFile.claimed_by,
                JobFile.attempts,
                JobFile.advanced_by,
                JobFile.file_name,
                Job.status.label("job_status"),
            )
            .join(Job, Job.id == JobFile.job_id)
            .where(JobFile.job_id == job.id, JobFile.file_index == call.file_index)
        ).first()
    if row is None:
        return None
    if row.status == FileStatus.PENDING and row.job_status == JobStatus.FAILED:
        stop_files()  # the job failed while this message was on its way
        return None
    expected = call.task_id in (row.next_task_id, row.claimed_by)
    if (
        expected
        and row.status == FileStatus.PENDING
        and row.next_step == call.step_index
        and row.job_status in RUNNABLE
    ):
        # Its own message, and the job may run: only the attempt cap refuses it.
        logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
        failed_job, released = fail_file(
            settings,
            job,
            call,
            row.file_name,
            f"Error <step was started {settings.max_step_attempts} times "
            f"and never finished> in step {binary.steps[call.step_index].id}",
            logger,
        )
        if failed_job:
            stop_files()
        return released
    if row.advanced_by != call.task_id:
        return None  # a stale or duplicated message: nothing to do
    # The redelivery of a step whose worker died after committing it: do what that
    # worker would have done next.
    if row.status != FileStatus.PENDING:
        logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
        with connection_scope(settings.sql_url) as conn:
            finish_job_if_done(conn, settings, job, logger)
            # The file that took this one's place in the window, which may not have been sent.
            released = window.rereleased(conn, settings, job, call.task_id)
            logger.write(conn)
        return released
    if row.job_status not in RUNNABLE or not row.next_task_id:
        return None
    # That worker may have published the next step before it died (only its ack was lost):
    # a second message with the stored token would claim the file again while the first runs
    # (a claim also matches claimed_by). A fresh token retires whichever message was sent.
    token = new_task_id()
    with connection_scope(settings.sql_url) as conn:
        swapped = conn.execute(
            update(JobFile)
            .where(
                JobFile.job_id == job.id,
                JobFile.file_index == call.file_index,
                JobFile.next_step == row.next_step,
                JobFile.status == FileStatus.PENDING,
                JobFile.next_task_id == row.next_task_id,
            )
            .values(next_task_id=token)
        ).rowcount
    if swapped != 1:
        return None  # its next step was claimed (or the file moved on) meanwhile
    return next_step_for(settings, job, binary, call.file_index, row.next_step, token)
