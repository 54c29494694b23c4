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
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Update, bindparam, case, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.drive import write_atomic
from shared.flow import runtime
from shared.flow.binary import CompiledBinary, load_binary
from shared.jobs.log import LINES_PER_INSERT, JobLogger, insert_lines_if, line_params
from shared.jobs.store import new_task_id, transition_job
from shared.runs.submit import input_path, output_path
from shared.states import FileStatus, JobStatus
from shared.store.db import connection_scope, session_scope, statement_scope
from shared.store.models import Job, JobFile
from shared.store.prepared import Prepared, one_of

# A step past its hard limit is killed; its claim lapses this long after the hard limit.
CLAIM_GRACE = timedelta(seconds=60)
RUNNABLE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)

# The statements every step runs: Core statements built once and run as Prepared statements
# (shared/prepared.py), because SQLAlchemy's per-execution work costs more than the SQL here.
# Each passes ``updated_at`` itself (a prepared statement runs no column defaults).
_files = JobFile.__table__
_jobs = Job.__table__
_THIS_FILE = (
    _files.c.job_id == bindparam("b_job_id"),
    _files.c.file_index == bindparam("b_file_index"),
)
# The job's state, read in the same statement that changes one of its files. Keyed by the
# bound job id, not correlated to the file's row: in an UPDATE's RETURNING, SQLite plans a
# correlated subquery as a scan of the whole jobs table, so every step slowed as jobs piled up.
_JOB_STATUS = select(_jobs.c.status).where(_jobs.c.id == bindparam("b_job_id")).scalar_subquery()
_NOW = bindparam("now", type_=_files.c.updated_at.type)
_TOKEN_TYPE = _files.c.next_task_id.type
_CLAIM = Prepared(
    update(_files)
    .where(
        *_THIS_FILE,
        _files.c.next_step == bindparam("step"),
        _files.c.status == FileStatus.PENDING.value,
        or_(
            _files.c.next_task_id == bindparam("task_id"),
            _files.c.claimed_by == bindparam("task_id"),
        ),
        _files.c.attempts < bindparam("max_attempts"),
        select(_jobs.c.id)
        .where(_jobs.c.id == bindparam("b_job_id"), one_of(_jobs.c.status, RUNNABLE))
        .exists(),
    )
    .values(
        attempts=_files.c.attempts + 1,
        claimed_by=bindparam("task_id"),
        next_task_id=None,
        claimed_until=bindparam("until", type_=_files.c.claimed_until.type),
        updated_at=_NOW,
    )
    .returning(_files.c.file_name, _JOB_STATUS)
)
# Every file's outcome, each row with the job's state (one read decides whether the job ends).
_FILE_OUTCOMES = Prepared(
    select(
        _files.c.file_name,
        _files.c.status,
        _files.c.num_records,
        _files.c.num_errors,
        _JOB_STATUS.label("job_status"),
    )
    .where(_files.c.job_id == bindparam("b_job_id"))
    .order_by(_files.c.file_index)
)


def _advance_statement(failed: bool, stopped_at_checkpoint: bool, file_ends: bool) -> Update:
    """The compare-and-set that moves a file past its step, and remembers where records first
    failed or stopped (where a retry starts); at the file's last step it also records how the
    file ended. It RETURNs the job's state. The next step's token is stored only while the job
    may run: a pause or cancel committed first stops the file here, with no message expected."""
    values = {
        "next_step": _files.c.next_step + 1,
        "attempts": 0,
        "claimed_by": None,
        "claimed_until": None,
        "advanced_by": bindparam("task_id"),
        "next_task_id": None,
        "num_filtered": _files.c.num_filtered + bindparam("filtered"),
        "updated_at": _NOW,
    }
    if not file_ends:
        values["next_task_id"] = case(
            (one_of(_JOB_STATUS, RUNNABLE), bindparam("next_token", type_=_TOKEN_TYPE)), else_=None
        )
    if failed:
        values["failed_step"] = func.coalesce(_files.c.failed_step, bindparam("step"))
    if stopped_at_checkpoint:
        values["checkpoint_step"] = func.coalesce(_files.c.checkpoint_step, bindparam("step"))
    if file_ends:
        for column in (
            "status",
            "num_records",
            "num_errors",
            "num_checkpoint_failed",
            "error_counts",
        ):
            values[column] = bindparam(f"end_{column}", type_=_files.c[column].type)
    return (
        update(_files)
        .where(
            *_THIS_FILE,
            _files.c.next_step == bindparam("step"),
            _files.c.status == FileStatus.PENDING.value,
            _files.c.claimed_by == bindparam("task_id"),
        )
        .values(**values)
        .returning(_JOB_STATUS.label("job_status"))
    )


_ADVANCE = {
    (failed, stopped, ends): Prepared(_advance_statement(failed, stopped, ends))
    for failed in (False, True)
    for stopped in (False, True)
    for ends in (False, True)
}


@functools.cache
def _advance_and_log(failed: bool, stopped_at_checkpoint: bool, lines: int) -> Prepared:
    """PostgreSQL: a file's advance past a step that is not its last, and the step's ``lines``
    log lines, as one statement. The INSERT runs only if the UPDATE moved the file, and one
    statement is atomic, so it runs in autocommit: one round trip instead of four (BEGIN,
    UPDATE, INSERT, COMMIT) on every step but a file's last."""
    moved = _advance_statement(failed, stopped_at_checkpoint, file_ends=False).cte("moved")
    logged = insert_lines_if(lines, select(moved.c.job_status).exists()).cte("logged")
    return Prepared(select(moved.c.job_status).add_cte(logged))


_COUNT_FINISHED = Prepared(
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_job_id"))
    .values(files_done=_jobs.c.files_done + 1)
    .returning(_jobs.c.files_done, _jobs.c.num_files)
)


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


@dataclass(frozen=True)
class JobSnapshot:
    """The columns of a job that never change after it is created: read once per worker
    process, so a step's transactions touch only the rows that do change."""

    id: str
    binary_hash: str
    priority: int
    step_timeout: int
    settings: dict
    trace_id: str
    log_prefix: str
    log_to_timeline: bool
    input_dir: str
    output_dir: str
    flow_type: str


_SNAPSHOT = Prepared(
    select(*[Job.__table__.c[name] for name in JobSnapshot.__dataclass_fields__]).where(
        Job.__table__.c.id == bindparam("b_job_id")
    )
)


_SNAPSHOTS: OrderedDict[tuple[object, str], JobSnapshot] = OrderedDict()
SNAPSHOTS_KEPT = 1024


def job_snapshot(conn: Connection, job_id: str) -> JobSnapshot | None:
    """The job's immutable columns: read on ``conn`` the first time this process sees the job
    (on the claim's connection, so it costs no transaction of its own), then kept."""
    key = (conn.engine.url, job_id)
    snapshot = _SNAPSHOTS.get(key)
    if snapshot is None:
        row = _SNAPSHOT.first(conn, {"b_job_id": job_id})
        if row is None:
            return None
        snapshot = _SNAPSHOTS[key] = JobSnapshot(*row)
        if len(_SNAPSHOTS) > SNAPSHOTS_KEPT:
            _SNAPSHOTS.popitem(last=False)
    return snapshot


@functools.lru_cache(maxsize=32)
def _binary(binary_store: Path, digest: str) -> CompiledBinary:
    return load_binary((binary_store / f"{digest}.ibflowbin").read_bytes())


def cached_binary(settings: Settings, digest: str) -> CompiledBinary:
    return _binary(settings.binary_store, digest)


def step_output_file(
    settings: Settings, job: Job, binary: CompiledBinary, step_index: int, file_name: str
) -> Path:
    folder = f"{step_index:02d}_{binary.steps[step_index].id}"
    return output_path(settings, job) / "steps" / folder / f"{file_name}.json"


def results_file(settings: Settings, job: Job, file_name: str) -> Path:
    return output_path(settings, job) / "results" / f"{file_name}.json"


def step_time_limit(settings: Settings, job: Job, binary: CompiledBinary, step_index: int) -> int:
    """The step's own ``timeout`` from the flow file wins; else the run's ``step_timeout``."""
    step = binary.steps[step_index]
    return settings.step_time_limit(step.timeout if step.timeout else job.step_timeout)


def next_step_for(
    settings: Settings,
    job: Job,
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


class StepRunner:
    """Runs one StepCall against the store. ``passthrough`` exceptions (the worker's soft time
    limit) become a failure of the step's records, never swallowed by UDF error handling.

    The hot path costs two writes: the claim (one conditional UPDATE, which the first time a
    worker process sees a job also reads the job's snapshot) and the advance transaction (the
    file's UPDATE, the job's state, the log lines; plus the job's ending when it comes)."""

    def __init__(self, settings: Settings, passthrough: tuple[type[BaseException], ...] = ()):
        self.settings = settings
        self.passthrough = passthrough

    def run(self, call: StepCall) -> NextStep | None:
        # The snapshot read, the claim and the job's first transition each stand alone.
        with statement_scope(self.settings.sql_url) as conn:
            job = job_snapshot(conn, call.job_id)
            if job is None:
                return None
            binary = cached_binary(self.settings, job.binary_hash)
            if not 0 <= call.step_index < len(binary.steps):
                return None
            file_name = self._claim(conn, job, binary, call)
        if file_name is None:
            return self._refused(job, binary, call)
        logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
        try:
            return self._execute(call, job, binary, file_name, logger)
        except self.passthrough:
            raise
        except OperationalError:
            raise  # the store failed, not the step: the task sends its message again
        except Exception as error:
            # A failure outside the per-record handling (unreadable input, a full disk): the
            # file fails at this step, with the reason, instead of staying pending forever.
            self._fail_file(
                job,
                call,
                file_name,
                f"Error <{type(error).__name__}: {error}> in step "
                f"{binary.steps[call.step_index].id}",
                logger,
            )
            raise

    # -- claim ------------------------------------------------------------------------------

    def _claim(
        self, conn: Connection, job: JobSnapshot, binary: CompiledBinary, call: StepCall
    ) -> str | None:
        """Take the file for this step (one conditional UPDATE on ``conn``) if the message is
        the one the store expects and the job may run; the file's name, or None."""
        limit = step_time_limit(self.settings, job, binary, call.step_index)
        now = _now()
        claimed = _CLAIM.first(
            conn,
            {
                "b_job_id": job.id,
                "b_file_index": call.file_index,
                "step": call.step_index,
                "task_id": call.task_id,
                "max_attempts": self.settings.max_step_attempts,
                "until": now + timedelta(seconds=limit) + CLAIM_GRACE,
                "now": now,
            },
        )
        if claimed is None:
            return None
        file_name, job_status = claimed
        if job_status == JobStatus.QUEUED.value:  # the job's first step (or since resume)
            transition_job(conn, job.id, JobStatus.RUNNING, message="Running", strict=False)
        return file_name

    def _refused(self, job: JobSnapshot, binary: CompiledBinary, call: StepCall) -> NextStep | None:
        """Why a message could not claim its file, and what is left to do about it."""
        with session_scope(self.settings.sql_url, read_only=True) as session:
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
        expected = call.task_id in (row.next_task_id, row.claimed_by)
        if (
            expected
            and row.status == FileStatus.PENDING.value
            and row.next_step == call.step_index
            and row.job_status in RUNNABLE
        ):
            # Its own message, and the job may run: only the attempt cap refuses it.
            logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
            self._fail_file(
                job,
                call,
                row.file_name,
                f"Error <step was started {self.settings.max_step_attempts} times "
                f"and never finished> in step {binary.steps[call.step_index].id}",
                logger,
            )
            return None
        if row.advanced_by != call.task_id:
            return None  # a stale or duplicated message: nothing to do
        # The redelivery of a step whose worker died after committing it: do what that
        # worker would have done next.
        if row.status != FileStatus.PENDING.value:
            logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
            with connection_scope(self.settings.sql_url) as conn:
                self._finish_job_if_done(conn, job, logger)
                logger.write(conn)
            return None
        if row.job_status not in RUNNABLE or not row.next_task_id:
            return None
        return next_step_for(
            self.settings, job, binary, call.file_index, row.next_step, row.next_task_id
        )

    # -- execute ----------------------------------------------------------------------------

    def _execute(
        self,
        call: StepCall,
        job: JobSnapshot,
        binary: CompiledBinary,
        file_name: str,
        logger: JobLogger,
    ) -> NextStep | None:
        step = binary.steps[call.step_index]
        logger.info(
            f"Starting step '{step.id}' ({call.step_index + 1}/{len(binary.steps)}) "
            f"on file {file_name}"
        )
        records = self._input_records(job, binary, call, file_name)
        context = runtime.StepContext(
            job_id=job.id,
            runtime_config=dict((job.settings or {}).get("runtime_config") or {}),
            log=logger.log,
            log_to_timeline=job.log_to_timeline,
        )
        try:
            outcome = runtime.run_step(
                binary, call.step_index, records, context, passthrough=self.passthrough
            )
        except self.passthrough:
            limit = step_time_limit(self.settings, job, binary, call.step_index)
            message = (
                f"Error <step '{step.id}' exceeded its time limit of {limit} s> in step {step.id}"
            )
            logger.error(f"{message} on file {file_name}")
            failed = [_failed(record, message) for record in records]
            outcome = runtime.StepOutcome(
                records=failed,
                failed=sum(1 for new, old in zip(failed, records, strict=True) if new is not old),
            )
        records = outcome.records
        write_atomic(
            step_output_file(self.settings, job, binary, call.step_index, file_name),
            json.dumps(records, ensure_ascii=False).encode("utf-8"),
        )
        live = sum(1 for r in records if not r.get("error") and not r.get("checkpoint_failed"))
        file_ends = call.step_index + 1 == len(binary.steps) or not live
        logger.info(
            f"Finished step '{step.id}' on file {file_name}: {len(records)} records, "
            f"{len(records) - live} stopped, {outcome.filtered} filtered"
        )
        params = {
            "b_job_id": job.id,
            "b_file_index": call.file_index,
            "step": call.step_index,
            "task_id": call.task_id,
            "filtered": outcome.filtered,
            "now": _now(),
        }
        kind = (bool(outcome.failed), bool(outcome.checkpoint_failed))
        if not file_ends:
            token = params["next_token"] = new_task_id()
            # The job's state as of the file's UPDATE: a resume or cancel that runs meanwhile
            # locks the file row (SELECT ... FOR UPDATE), so either it sees the file advanced
            # or this sees its new state. A pause committed first stops the file here.
            if self._advance(kind, params, logger) not in RUNNABLE:
                return None  # the claim was lost meanwhile, or the job may not go on
            return next_step_for(
                self.settings, job, binary, call.file_index, call.step_index + 1, token
            )
        final = runtime.final_results(records, runtime.output_schema_of(job.settings))
        write_atomic(
            results_file(self.settings, job, file_name),
            json.dumps(final, ensure_ascii=False).encode("utf-8"),
        )
        params.update(_file_ending(records))
        logger.info(f"File {file_name} finished: {params['end_status']}")
        with connection_scope(self.settings.sql_url) as conn:
            if _ADVANCE[(*kind, True)].first(conn, params) is None:
                return None  # the claim was lost meanwhile (cancelled, or taken over)
            if _count_finished_file(conn, job.id):
                self._finish_job_if_done(conn, job, logger, known={file_name: final})
            logger.write(conn)
        return None

    def _advance(self, kind: tuple[bool, bool], params: dict, logger: JobLogger) -> str | None:
        """Move the file past a step that is not its last and write the step's log lines; the
        job's state as the UPDATE saw it, or None if the file was not this step's to move."""
        url = self.settings.sql_url
        if url.startswith("postgresql") and 0 < len(logger.entries) <= LINES_PER_INSERT:
            lines = logger.take()
            with statement_scope(url) as conn:
                moved = _advance_and_log(*kind, len(lines)).first(
                    conn, {**params, **line_params(lines)}
                )
            return None if moved is None else moved.job_status
        with connection_scope(url) as conn:
            moved = _ADVANCE[(*kind, False)].first(conn, params)
            if moved is None:
                return None
            logger.write(conn)
            return moved.job_status

    def _input_records(
        self, job: JobSnapshot, binary: CompiledBinary, call: StepCall, file_name: str
    ) -> list[dict]:
        if call.step_index == 0:
            source = input_path(self.settings, job, file_name)
            return [runtime.new_record(file_name, call.file_index, str(source))]
        previous = step_output_file(self.settings, job, binary, call.step_index - 1, file_name)
        return json.loads(previous.read_text("utf-8"))

    # -- endings ----------------------------------------------------------------------------

    def _fail_file(
        self, job: JobSnapshot, call: StepCall, file_name: str, message: str, logger: JobLogger
    ) -> None:
        logger.error(f"{message} on file {file_name}")
        with connection_scope(self.settings.sql_url) as conn:
            failed = conn.execute(
                update(_files)
                .where(
                    _files.c.job_id == job.id,
                    _files.c.file_index == call.file_index,
                    _files.c.next_step == call.step_index,
                    _files.c.status == FileStatus.PENDING.value,
                )
                .values(
                    status=FileStatus.FAILED.value,
                    failed_step=call.step_index,
                    num_records=1,
                    num_errors=1,
                    num_checkpoint_failed=0,
                    error_counts={message: 1},
                    claimed_by=None,
                    claimed_until=None,
                    next_task_id=None,
                    advanced_by=call.task_id,
                )
            ).rowcount
            if failed == 1 and _count_finished_file(conn, job.id):
                self._finish_job_if_done(conn, job, logger)
            logger.write(conn)

    def _finish_job_if_done(
        self,
        conn: Connection,
        job: JobSnapshot,
        logger: JobLogger,
        known: dict[str, list[dict]] | None = None,
    ) -> None:
        """Write the combined results and move the job to its final state, in the caller's
        transaction (idempotent: only a running or paused job with no pending file moves).
        ``known`` holds final results the caller has in hand, by file name; the rest are read
        back from the files' results. The caller writes ``logger``'s lines."""
        files = _FILE_OUTCOMES.all(conn, {"b_job_id": job.id})
        if not files or files[0].job_status not in (
            JobStatus.RUNNING.value,
            JobStatus.PAUSED.value,
        ):
            return
        if any(row.status == FileStatus.PENDING.value for row in files):
            return
        combined = []
        for row in files:
            if known and row.file_name in known:
                combined.extend(known[row.file_name])
                continue
            path = results_file(self.settings, job, row.file_name)
            if path.exists():
                combined.extend(json.loads(path.read_text("utf-8")))
        write_atomic(
            output_path(self.settings, job) / "results.json",
            json.dumps(combined, ensure_ascii=False).encode("utf-8"),
        )
        target, message = _job_outcome(job, files)
        if transition_job(conn, job.id, target, message=message, strict=False):
            logger.log("ERROR" if target == JobStatus.FAILED else "INFO", message)


def _now() -> datetime:
    return datetime.now(UTC)


def _file_ending(records: list[dict]) -> dict:
    """How a file whose records all stopped or reached the last step ended, as the parameters
    of the advance statement that records it."""
    num_errors = sum(1 for r in records if r.get("error"))
    num_checkpoint = sum(1 for r in records if r.get("checkpoint_failed"))
    if num_checkpoint:
        status = FileStatus.STOPPED_AT_CHECKPOINT
    elif records and num_errors == len(records):
        status = FileStatus.FAILED
    else:
        status = FileStatus.COMPLETE
    return {
        "end_status": status.value,
        "end_num_records": len(records),
        "end_num_errors": num_errors,
        "end_num_checkpoint_failed": num_checkpoint,
        "end_error_counts": runtime.record_error_counts(records),
    }


def _job_outcome(job: JobSnapshot, files) -> tuple[JobStatus, str]:
    label = job.flow_type
    if any(row.status == FileStatus.STOPPED_AT_CHECKPOINT.value for row in files):
        return JobStatus.STOPPED_AT_CHECKPOINT, f"Stopped at checkpoint {label}"
    records = sum(row.num_records for row in files)
    errors = sum(row.num_errors for row in files)
    if (errors and errors >= records) or all(
        row.status == FileStatus.FAILED.value for row in files
    ):
        return JobStatus.FAILED, f"Failed {label}: no record came through ({errors} errors)"
    return JobStatus.COMPLETE, f"Completed {label}"


def _count_finished_file(conn: Connection, job_id: str) -> bool:
    """Count one more finished file; True for the caller that finished the last one."""
    done, total = _COUNT_FINISHED.first(conn, {"b_job_id": job_id})
    return done >= total


def _failed(record: dict, message: str) -> dict:
    if record.get("error") or record.get("checkpoint_failed"):
        return record
    return {**record, "error": message}
