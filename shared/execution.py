"""Running one step of one file of a flow job, as a worker task does it.

Every step message carries a task id that the store expects (``JobFile.next_task_id``): a fencing
token. A step claims its file with a compare-and-set on that token, runs, writes its records
atomically (keyed by job, step and file), then advances the file in one transaction that also
reads the job's state under a row lock and, if the job may go on, mints the next step's token.
The caller publishes the next step only after that commit. So:

- a stale or duplicated message (a resume or retry minted a fresh token) does nothing;
- a redelivery of the same message after its worker died runs the step again (same token);
- a worker that died between committing and publishing is repaired when its message returns;
- pause, cancel and retry act at step boundaries, and no step of a file runs twice at once.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import session_scope
from shared.drive import write_atomic
from shared.flow import runtime
from shared.flow.binary import CompiledBinary, load_binary
from shared.joblog import JobLogger
from shared.jobs import transition_job
from shared.models import Job, JobFile
from shared.runs import input_path, output_path
from shared.states import FileStatus, JobStatus

# A step past its hard limit is killed; its claim lapses this long after the hard limit.
CLAIM_GRACE = timedelta(seconds=60)
RUNNABLE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


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


@functools.lru_cache(maxsize=32)
def _binary(binary_store: Path, digest: str) -> CompiledBinary:
    return load_binary((binary_store / f"{digest}.ibflowbin").read_bytes())


def cached_binary(settings: Settings, digest: str) -> CompiledBinary:
    return _binary(settings.binary_store, digest)


def step_output_file(settings: Settings, job: Job, binary: CompiledBinary, step_index: int,
                     file_name: str) -> Path:
    folder = f"{step_index:02d}_{binary.steps[step_index].id}"
    return output_path(settings, job) / "steps" / folder / f"{file_name}.json"


def results_file(settings: Settings, job: Job, file_name: str) -> Path:
    return output_path(settings, job) / "results" / f"{file_name}.json"


def new_task_id() -> str:
    return str(uuid.uuid4())


def step_time_limit(settings: Settings, job: Job, binary: CompiledBinary, step_index: int) -> int:
    """The step's own ``timeout`` from the flow file wins; else the run's ``step_timeout``."""
    step = binary.steps[step_index]
    return settings.step_time_limit(step.timeout if step.timeout else job.step_timeout)


def next_step_for(settings: Settings, job: Job, binary: CompiledBinary, file_index: int,
                  step_index: int, task_id: str) -> NextStep:
    return NextStep(
        call=StepCall(job.id, file_index, step_index, task_id),
        priority=job.priority,
        time_limit=step_time_limit(settings, job, binary, step_index),
    )


def schedule_files(session: Session, settings: Settings, job: Job,
                   files: list[JobFile]) -> list[NextStep]:
    """Mint a fresh token for each file's next step; publish the result after commit.

    A fresh token retires any message already queued for these files."""
    binary = cached_binary(settings, job.binary_hash)
    steps = []
    for row in files:
        token = new_task_id()
        session.execute(
            update(JobFile).where(JobFile.id == row.id)
            .values(next_task_id=token, claimed_by=None, claimed_until=None)
        )
        steps.append(next_step_for(settings, job, binary, row.file_index, row.next_step, token))
    return steps


class StepRunner:
    """Runs one StepCall against the store. ``passthrough`` exceptions (the worker's soft time
    limit) become a failure of the step's records, never swallowed by UDF error handling."""

    def __init__(self, settings: Settings, passthrough: tuple[type[BaseException], ...] = ()):
        self.settings = settings
        self.passthrough = passthrough

    def run(self, call: StepCall) -> NextStep | None:
        with session_scope(self.settings.sql_url) as session:
            claim = self._claim(session, call)
        if claim is None:
            return self._recover(call)
        job, file_row, logger = claim
        try:
            return self._execute(call, job, file_row, logger)
        except self.passthrough:
            raise
        except Exception as error:
            # A failure outside the per-record handling (unreadable input, a full disk): the
            # file fails at this step, with the reason, instead of staying pending forever.
            self._fail_file(job, file_row, call,
                            f"Error <{type(error).__name__}: {error}> in step "
                            f"{call.step_index + 1}", logger)
            raise

    # -- claim ------------------------------------------------------------------------------

    def _claim(self, session: Session, call: StepCall):
        """Take the file for this step if the message is the one the store expects."""
        job = session.get(Job, call.job_id)
        if job is None or job.status not in RUNNABLE:
            return None
        file_row = _file(session, call)
        if (file_row is None or file_row.status != FileStatus.PENDING.value
                or file_row.next_step != call.step_index
                or call.task_id not in (file_row.next_task_id, file_row.claimed_by)):
            return None
        binary = cached_binary(self.settings, job.binary_hash)
        limit = step_time_limit(self.settings, job, binary, call.step_index)
        logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
        claimed = session.execute(
            update(JobFile)
            .where(JobFile.id == file_row.id, JobFile.next_step == call.step_index,
                   JobFile.status == FileStatus.PENDING.value,
                   or_(JobFile.next_task_id == call.task_id, JobFile.claimed_by == call.task_id),
                   JobFile.attempts < self.settings.max_step_attempts)
            .values(attempts=JobFile.attempts + 1, claimed_by=call.task_id, next_task_id=None,
                    claimed_until=_now() + timedelta(seconds=limit) + CLAIM_GRACE)
        ).rowcount
        if job.status == JobStatus.QUEUED.value:
            transition_job(session, job.id, JobStatus.RUNNING, message="Running", strict=False)
        if claimed:
            return job, file_row, logger
        session.commit()
        self._fail_file(job, file_row, call,
                        f"Error <step was started {self.settings.max_step_attempts} times and "
                        f"never finished> in step {binary.steps[call.step_index].id}", logger)
        return None

    def _recover(self, call: StepCall) -> NextStep | None:
        """The redelivery of a step whose worker died after committing it: publish the next
        step (with the token that commit minted), or finish the job, as the worker would have."""
        with session_scope(self.settings.sql_url) as session:
            job = session.get(Job, call.job_id)
            file_row = _file(session, call)
            if job is None or file_row is None or file_row.advanced_by != call.task_id:
                return None
            if file_row.status != FileStatus.PENDING.value:
                finished = not session.scalar(
                    select(JobFile.id).where(JobFile.job_id == job.id,
                                             JobFile.status == FileStatus.PENDING.value).limit(1)
                )
            else:
                finished = False
        if finished:
            self.finish_job(job.id, call.task_id)
            return None
        if job.status not in RUNNABLE or not file_row.next_task_id:
            return None
        binary = cached_binary(self.settings, job.binary_hash)
        return next_step_for(self.settings, job, binary, call.file_index, file_row.next_step,
                             file_row.next_task_id)

    # -- execute ----------------------------------------------------------------------------

    def _execute(self, call: StepCall, job: Job, file_row: JobFile,
                 logger: JobLogger) -> NextStep | None:
        binary = cached_binary(self.settings, job.binary_hash)
        step = binary.steps[call.step_index]
        logger.info(f"Starting step '{step.id}' ({call.step_index + 1}/{len(binary.steps)}) "
                    f"on file {file_row.file_name}")
        records = self._input_records(job, binary, file_row, call.step_index)
        context = runtime.StepContext(
            job_id=job.id,
            runtime_config=dict((job.settings or {}).get("runtime_config") or {}),
            log=logger.log,
            log_to_timeline=job.log_to_timeline,
        )
        try:
            outcome = runtime.run_step(binary, call.step_index, records, context,
                                       passthrough=self.passthrough)
        except self.passthrough:
            limit = step_time_limit(self.settings, job, binary, call.step_index)
            message = (f"Error <step '{step.id}' exceeded its time limit of {limit} s> "
                       f"in step {step.id}")
            logger.error(f"{message} on file {file_row.file_name}")
            failed = [_failed(record, message) for record in records]
            outcome = runtime.StepOutcome(records=failed, failed=sum(
                1 for new, old in zip(failed, records, strict=True) if new is not old))
        records = outcome.records
        write_atomic(step_output_file(self.settings, job, binary, call.step_index,
                                      file_row.file_name),
                     json.dumps(records, ensure_ascii=False).encode("utf-8"))
        live = [r for r in records if not r.get("error") and not r.get("checkpoint_failed")]
        last = call.step_index + 1 == len(binary.steps)
        file_ends = last or not live
        logger.info(f"Finished step '{step.id}' on file {file_row.file_name}: {len(records)} "
                    f"records, {len(records) - len(live)} stopped, {outcome.filtered} filtered")
        if file_ends:
            write_atomic(results_file(self.settings, job, file_row.file_name),
                         json.dumps(runtime.final_results(records,
                                                          runtime.output_schema_of(job.settings)),
                                    ensure_ascii=False).encode("utf-8"))
        with session_scope(self.settings.sql_url) as session:
            # Locking the job row orders this commit against pause, resume and cancel: either
            # they see the file advanced, or this sees their new state.
            job_status = session.scalar(
                select(Job.status).where(Job.id == job.id).with_for_update()
            )
            token = new_task_id() if not file_ends and job_status in RUNNABLE else None
            if not _advance(session, file_row.id, call, outcome, token):
                return None
            if file_ends:
                job_done = _finish_file(session, job, file_row, records, logger)
            logger.flush(session)
        if file_ends:
            if job_done:
                self.finish_job(job.id, call.task_id)
            return None
        if token is None:
            return None
        return next_step_for(self.settings, job, binary, call.file_index, call.step_index + 1,
                             token)

    def _input_records(self, job: Job, binary: CompiledBinary, file_row: JobFile,
                       step_index: int) -> list[dict]:
        if step_index == 0:
            source = input_path(self.settings, job, file_row.file_name)
            return [runtime.new_record(file_row.file_name, file_row.file_index, str(source))]
        previous = step_output_file(self.settings, job, binary, step_index - 1,
                                    file_row.file_name)
        return json.loads(previous.read_text("utf-8"))

    # -- endings ----------------------------------------------------------------------------

    def _fail_file(self, job: Job, file_row: JobFile, call: StepCall, message: str,
                   logger: JobLogger) -> None:
        logger.error(f"{message} on file {file_row.file_name}")
        with session_scope(self.settings.sql_url) as session:
            failed = session.execute(
                update(JobFile)
                .where(JobFile.id == file_row.id, JobFile.next_step == call.step_index,
                       JobFile.status == FileStatus.PENDING.value)
                .values(status=FileStatus.FAILED.value, failed_step=call.step_index,
                        num_records=1, num_errors=1, num_checkpoint_failed=0,
                        error_counts={message: 1}, claimed_by=None, claimed_until=None,
                        next_task_id=None, advanced_by=call.task_id)
            ).rowcount
            logger.flush(session)
            job_done = failed == 1 and _count_finished_file(session, job.id)
        if job_done:
            self.finish_job(job.id, call.task_id)

    def finish_job(self, job_id: str, task_id: str) -> None:
        """Write the combined results and move the job to its final state (idempotent)."""
        with session_scope(self.settings.sql_url) as session:
            job = session.get(Job, job_id)
            if job is None or job.status not in (JobStatus.RUNNING.value,
                                                 JobStatus.PAUSED.value):
                return
            files = list(session.scalars(
                select(JobFile).where(JobFile.job_id == job_id).order_by(JobFile.file_index)
            ))
        combined = []
        for row in files:
            path = results_file(self.settings, job, row.file_name)
            if path.exists():
                combined.extend(json.loads(path.read_text("utf-8")))
        write_atomic(output_path(self.settings, job) / "results.json",
                     json.dumps(combined, ensure_ascii=False).encode("utf-8"))
        target, message = _job_outcome(job, files)
        logger = JobLogger(job.id, task_id, job.trace_id, prefix=job.log_prefix)
        with session_scope(self.settings.sql_url) as session:
            if transition_job(session, job_id, target, message=message, strict=False):
                logger.log("ERROR" if target == JobStatus.FAILED else "INFO", message)
                logger.flush(session)


def _now() -> datetime:
    return datetime.now(UTC)


def _file(session: Session, call: StepCall) -> JobFile | None:
    return session.scalar(
        select(JobFile).where(JobFile.job_id == call.job_id,
                              JobFile.file_index == call.file_index)
    )


def _advance(session: Session, file_id: int, call: StepCall, outcome: runtime.StepOutcome,
             next_token: str | None) -> bool:
    """Compare-and-set the file past the step; False if the claim was lost meanwhile."""
    values = {
        "next_step": call.step_index + 1,
        "attempts": 0,
        "claimed_by": None,
        "claimed_until": None,
        "advanced_by": call.task_id,
        "next_task_id": next_token,
        "num_filtered": JobFile.num_filtered + outcome.filtered,
    }
    if outcome.failed:
        values["failed_step"] = _first(JobFile.failed_step, call.step_index)
    if outcome.checkpoint_failed:
        values["checkpoint_step"] = _first(JobFile.checkpoint_step, call.step_index)
    return session.execute(
        update(JobFile)
        .where(JobFile.id == file_id, JobFile.next_step == call.step_index,
               JobFile.status == FileStatus.PENDING.value, JobFile.claimed_by == call.task_id)
        .values(**values)
    ).rowcount == 1


def _first(column, step_index: int):
    return func.coalesce(column, step_index)


def _finish_file(session: Session, job: Job, file_row: JobFile, records: list[dict],
                 logger: JobLogger) -> bool:
    num_errors = sum(1 for r in records if r.get("error"))
    num_checkpoint = sum(1 for r in records if r.get("checkpoint_failed"))
    if num_checkpoint:
        status = FileStatus.STOPPED_AT_CHECKPOINT
    elif records and num_errors == len(records):
        status = FileStatus.FAILED
    else:
        status = FileStatus.COMPLETE
    session.execute(
        update(JobFile).where(JobFile.id == file_row.id).values(
            status=status.value, num_records=len(records), num_errors=num_errors,
            num_checkpoint_failed=num_checkpoint,
            error_counts=runtime.record_error_counts(records),
        )
    )
    logger.info(f"File {file_row.file_name} finished: {status.value}")
    return _count_finished_file(session, job.id)


def _job_outcome(job: Job, files: list[JobFile]) -> tuple[JobStatus, str]:
    label = job.flow_type
    if any(row.status == FileStatus.STOPPED_AT_CHECKPOINT.value for row in files):
        return JobStatus.STOPPED_AT_CHECKPOINT, f"Stopped at checkpoint {label}"
    records = sum(row.num_records for row in files)
    errors = sum(row.num_errors for row in files)
    if (errors and errors >= records) or all(row.status == FileStatus.FAILED.value
                                             for row in files):
        return JobStatus.FAILED, f"Failed {label}: no record came through ({errors} errors)"
    return JobStatus.COMPLETE, f"Completed {label}"


def _count_finished_file(session: Session, job_id: str) -> bool:
    """Count one more finished file; True for the caller that finished the last one."""
    session.execute(update(Job).where(Job.id == job_id).values(files_done=Job.files_done + 1))
    done, total = session.execute(
        select(Job.files_done, Job.num_files).where(Job.id == job_id)
    ).one()
    return done >= total


def _failed(record: dict, message: str) -> dict:
    if record.get("error") or record.get("checkpoint_failed"):
        return record
    return {**record, "error": message}
