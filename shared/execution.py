"""Running one step of one file of a flow job, as a worker task does it.

A step is idempotent: it reads the previous step's persisted records, writes its own output
atomically (keyed by job, step and file), and only then moves the file on with a compare-and-set
on ``next_step``. A duplicate delivery loses that race and does nothing. The caller publishes the
next step only after this has committed, which is what lets pause, cancel and retry stop or
restart a file at a step boundary.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
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
from shared.states import FILE_FINISHED, FileStatus, JobStatus


@dataclass(frozen=True)
class StepCall:
    """What one step task is asked to do; crosses the broker as plain arguments."""

    job_id: str
    file_index: int
    step_index: int


@dataclass(frozen=True)
class NextStep:
    """The step to publish once the current one has committed."""

    call: StepCall
    priority: int
    time_limit: int


@functools.lru_cache(maxsize=32)
def _binary(binary_store: Path, digest: str) -> CompiledBinary:
    return load_binary((binary_store / f"{digest}.ibflowbin").read_bytes())


def cached_binary(settings: Settings, digest: str) -> CompiledBinary:
    return _binary(settings.binary_store, digest)


def step_output_file(
    settings: Settings, job: Job, binary: CompiledBinary, step_index: int, file_name: str
) -> Path:
    step = binary.steps[step_index]
    return (
        output_path(settings, job) / "steps" / f"{step_index:02d}_{step.id}" / f"{file_name}.json"
    )


def results_file(settings: Settings, job: Job, file_name: str) -> Path:
    return output_path(settings, job) / "results" / f"{file_name}.json"


def next_step_for(settings: Settings, job: Job, binary: CompiledBinary, call: StepCall) -> NextStep:
    step = binary.steps[call.step_index]
    requested = step.timeout if step.timeout else job.step_timeout
    return NextStep(
        call=call, priority=job.priority, time_limit=settings.step_time_limit(requested)
    )


def first_steps(settings: Settings, job: Job, binary: CompiledBinary) -> list[NextStep]:
    return [
        next_step_for(settings, job, binary, StepCall(job.id, index, 0))
        for index in range(job.num_files)
    ]


class StepRunner:
    """Runs one StepCall against the store. ``passthrough`` exceptions (the worker's soft time
    limit) are turned into a failure of the step's records, never swallowed by UDF handling."""

    def __init__(
        self, settings: Settings, task_id: str, passthrough: tuple[type[BaseException], ...] = ()
    ):
        self.settings = settings
        self.task_id = task_id
        self.passthrough = passthrough

    def run(self, call: StepCall) -> NextStep | None:
        url = self.settings.sql_url
        with session_scope(url) as session:
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
            # file fails at this step, with the reason, instead of hanging as pending forever.
            self._fail_file(
                job,
                file_row,
                call.step_index,
                f"Error <{type(error).__name__}: {error}> in step {call.step_index + 1}",
                logger,
            )
            raise

    def _execute(
        self, call: StepCall, job: Job, file_row: JobFile, logger: JobLogger
    ) -> NextStep | None:
        url = self.settings.sql_url
        binary = cached_binary(self.settings, job.binary_hash)
        step = binary.steps[call.step_index]
        limit = next_step_for(self.settings, job, binary, call).time_limit
        logger.info(
            f"Starting step '{step.id}' ({call.step_index + 1}/{len(binary.steps)}) "
            f"on file {file_row.file_name}"
        )
        records = self._input_records(job, binary, file_row, call.step_index)
        context = runtime.StepContext(
            job_id=job.id,
            runtime_config=dict((job.settings or {}).get("runtime_config") or {}),
            log=logger.log,
            log_to_timeline=job.log_to_timeline,
        )
        filtered = 0
        try:
            outcome = runtime.run_step(
                binary, call.step_index, records, context, passthrough=self.passthrough
            )
            records, filtered = outcome.records, outcome.filtered
        except self.passthrough:
            message = (
                f"Error <step '{step.id}' exceeded its time limit of {limit} s> in step {step.id}"
            )
            logger.error(f"{message} on file {file_row.file_name}")
            records = [_failed(record, message) for record in records]
        write_atomic(
            step_output_file(self.settings, job, binary, call.step_index, file_row.file_name),
            json.dumps(records, ensure_ascii=False).encode("utf-8"),
        )
        live = [r for r in records if not r.get("error") and not r.get("checkpoint_failed")]
        last = call.step_index + 1 == len(binary.steps)
        logger.info(
            f"Finished step '{step.id}' on file {file_row.file_name}: {len(records)} records, "
            f"{len(records) - len(live)} stopped, {filtered} filtered"
        )
        if last or not live:
            write_atomic(
                results_file(self.settings, job, file_row.file_name),
                json.dumps(runtime.final_results(records), ensure_ascii=False).encode("utf-8"),
            )
        with session_scope(url) as session:
            moved = _advance(session, file_row.id, call.step_index, filtered)
            if not moved:
                return None
            if last or not live:
                job_done = self._finish_file(
                    session, job, file_row, call.step_index, records, logger
                )
                logger.flush(session)
            else:
                logger.flush(session)
                # Read in the same transaction as the advance: a pause or cancel committed
                # before it stops the file here; one committed after it is seen by the next
                # step's claim.
                status = session.scalar(select(Job.status).where(Job.id == job.id))
        if last or not live:
            if job_done:
                self.finish_job(job.id)
            return None
        if status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
            return None
        return next_step_for(
            self.settings, job, binary, StepCall(job.id, call.file_index, call.step_index + 1)
        )

    def _claim(self, session: Session, call: StepCall):
        """Check the job may run this step and count the attempt; None if it must not."""
        job = session.get(Job, call.job_id)
        if job is None:
            return None
        status = JobStatus(job.status)
        if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return None
        file_row = session.scalar(
            select(JobFile).where(
                JobFile.job_id == call.job_id, JobFile.file_index == call.file_index
            )
        )
        if file_row is None or file_row.status != FileStatus.PENDING.value:
            return None
        if file_row.next_step != call.step_index:
            return None
        logger = JobLogger(job.id, self.task_id, job.trace_id, prefix=job.log_prefix)
        counted = session.execute(
            update(JobFile)
            .where(
                JobFile.id == file_row.id,
                JobFile.next_step == call.step_index,
                JobFile.status == FileStatus.PENDING.value,
                JobFile.attempts < self.settings.max_step_attempts,
            )
            .values(attempts=JobFile.attempts + 1)
        ).rowcount
        if status == JobStatus.QUEUED:
            transition_job(session, job.id, JobStatus.RUNNING, message="Running", strict=False)
        if not counted:
            session.commit()
            step = cached_binary(self.settings, job.binary_hash).steps[call.step_index]
            self._fail_file(
                job,
                file_row,
                call.step_index,
                f"Error <step was started {self.settings.max_step_attempts} times "
                f"and never finished> in step {step.id}",
                logger,
            )
            return None
        return job, file_row, logger

    def _fail_file(
        self, job: Job, file_row: JobFile, step_index: int, message: str, logger: JobLogger
    ) -> None:
        logger.error(f"{message} on file {file_row.file_name}")
        with session_scope(self.settings.sql_url) as session:
            failed = session.execute(
                update(JobFile)
                .where(
                    JobFile.id == file_row.id,
                    JobFile.next_step == step_index,
                    JobFile.status == FileStatus.PENDING.value,
                )
                .values(
                    status=FileStatus.FAILED.value,
                    failed_step=step_index,
                    num_records=1,
                    num_errors=1,
                    num_checkpoint_failed=0,
                    error_counts={message: 1},
                )
            ).rowcount
            logger.flush(session)
            job_done = failed == 1 and _count_finished_file(session, job.id)
        if job_done:
            self.finish_job(job.id)

    def _recover(self, call: StepCall) -> NextStep | None:
        """A redelivered step whose successor was never published (the worker died between
        committing and publishing) continues the file from where the store says it is."""
        with session_scope(self.settings.sql_url) as session:
            job = session.get(Job, call.job_id)
            if job is None or JobStatus(job.status) != JobStatus.RUNNING:
                return None
            file_row = session.scalar(
                select(JobFile).where(
                    JobFile.job_id == call.job_id, JobFile.file_index == call.file_index
                )
            )
            if file_row is None:
                return None
            if FileStatus(file_row.status) in FILE_FINISHED:
                unfinished = session.scalar(
                    select(JobFile.id)
                    .where(
                        JobFile.job_id == job.id,
                        JobFile.status == FileStatus.PENDING.value,
                    )
                    .limit(1)
                )
                pending_finish = unfinished is None
            else:
                pending_finish = False
        if pending_finish:
            self.finish_job(call.job_id)
            return None
        if file_row.status == FileStatus.PENDING.value and file_row.next_step > call.step_index:
            binary = cached_binary(self.settings, job.binary_hash)
            if file_row.next_step < len(binary.steps):
                return next_step_for(
                    self.settings,
                    job,
                    binary,
                    StepCall(job.id, call.file_index, file_row.next_step),
                )
        return None

    def _input_records(
        self, job: Job, binary: CompiledBinary, file_row: JobFile, step_index: int
    ) -> list[dict]:
        if step_index == 0:
            source = input_path(self.settings, job, file_row.file_name)
            return [runtime.new_record(file_row.file_name, file_row.file_index, str(source))]
        previous = step_output_file(self.settings, job, binary, step_index - 1, file_row.file_name)
        return json.loads(previous.read_text("utf-8"))

    def _finish_file(
        self,
        session: Session,
        job: Job,
        file_row: JobFile,
        step_index: int,
        records: list[dict],
        logger: JobLogger,
    ) -> bool:
        errors = runtime.record_error_counts(records)
        num_errors = sum(1 for r in records if r.get("error"))
        num_checkpoint = sum(1 for r in records if r.get("checkpoint_failed"))
        if num_checkpoint:
            status = FileStatus.STOPPED_AT_CHECKPOINT
        elif records and num_errors == len(records):
            status = FileStatus.FAILED
        else:
            status = FileStatus.COMPLETE
        _set_file_outcome(
            session,
            file_row.id,
            status,
            step_index,
            num_records=len(records),
            num_errors=num_errors,
            num_checkpoint_failed=num_checkpoint,
            error_counts=errors,
        )
        logger.info(f"File {file_row.file_name} finished: {status.value}")
        return _count_finished_file(session, job.id)

    def finish_job(self, job_id: str) -> None:
        """Write the combined results and move the job to its final state (idempotent)."""
        with session_scope(self.settings.sql_url) as session:
            job = session.get(Job, job_id)
            if job is None or JobStatus(job.status) != JobStatus.RUNNING:
                return
            files = list(
                session.scalars(
                    select(JobFile).where(JobFile.job_id == job_id).order_by(JobFile.file_index)
                )
            )
        combined = []
        for row in files:
            path = results_file(self.settings, job, row.file_name)
            if path.exists():
                combined.extend(json.loads(path.read_text("utf-8")))
        write_atomic(
            output_path(self.settings, job) / "results.json",
            json.dumps(combined, ensure_ascii=False).encode("utf-8"),
        )
        target, message = _job_outcome(job, files)
        logger = JobLogger(job.id, self.task_id, job.trace_id, prefix=job.log_prefix)
        with session_scope(self.settings.sql_url) as session:
            if transition_job(session, job_id, target, message=message, strict=False):
                logger.log("ERROR" if target == JobStatus.FAILED else "INFO", message)
                logger.flush(session)


def _job_outcome(job: Job, files: list[JobFile]) -> tuple[JobStatus, str]:
    label = job.flow_type
    if any(row.status == FileStatus.STOPPED_AT_CHECKPOINT.value for row in files):
        return JobStatus.STOPPED_AT_CHECKPOINT, f"Stopped at checkpoint {label}"
    records = sum(row.num_records for row in files)
    errors = sum(row.num_errors for row in files)
    failed_files = sum(1 for row in files if row.status == FileStatus.FAILED.value)
    if errors and errors >= records or failed_files == len(files):
        return JobStatus.FAILED, f"Failed {label}: no record came through ({errors} errors)"
    return JobStatus.COMPLETE, f"Completed {label}"


def _advance(session: Session, file_id: int, step_index: int, filtered: int) -> bool:
    """Compare-and-set the file past ``step_index``; False if another delivery got there first."""
    return (
        session.execute(
            update(JobFile)
            .where(
                JobFile.id == file_id,
                JobFile.next_step == step_index,
                JobFile.status == FileStatus.PENDING.value,
            )
            .values(
                next_step=step_index + 1, attempts=0, num_filtered=JobFile.num_filtered + filtered
            )
        ).rowcount
        == 1
    )


def _set_file_outcome(
    session: Session,
    file_id: int,
    status: FileStatus,
    step_index: int,
    *,
    num_records: int,
    num_errors: int,
    num_checkpoint_failed: int,
    error_counts: dict[str, int],
) -> None:
    session.execute(
        update(JobFile)
        .where(JobFile.id == file_id)
        .values(
            status=status.value,
            failed_step=step_index if status == FileStatus.FAILED else None,
            num_records=num_records,
            num_errors=num_errors,
            num_checkpoint_failed=num_checkpoint_failed,
            error_counts=error_counts,
        )
    )


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
