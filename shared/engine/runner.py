"""Running one step of one file of a flow job, as a worker task does it.

Every step message carries a task id that the store expects (``JobFile.next_task_id``): a fencing
token. A step claims its file with a compare-and-set on that token (which also checks that the
job may run), runs, writes its records atomically (keyed by job, step and file), then advances
the file with a second compare-and-set that RETURNs the job's state and stores the next step's
token only while the job may still run. The caller publishes the next step only after that
commit. So:

- a stale or duplicated message (a resume or retry minted a fresh token) does nothing;
- a redelivery of the same message after its worker died runs the step again (same token);
- a worker that died between committing and publishing is repaired when its message returns;
- pause, cancel and retry act at step boundaries, and no step of a file runs twice at once.

A job with a maxParseExceptions also counts the records its steps fail, and fails once they are
more than that (shared/engine/budget.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from shared import url_guard
from shared.config import Settings
from shared.drive import write_atomic
from shared.engine import budget, statements, window
from shared.engine.broker_work import BrokerWork, Publisher
from shared.engine.endings import (
    count_finished_file,
    fail_file,
    file_ending,
    finish_job_if_done,
    only_file_outcome,
)
from shared.engine.layout import input_contents, results_file, step_output_file
from shared.engine.paused_files import released_meanwhile, resumed_meanwhile
from shared.engine.redelivery import handle_refused
from shared.engine.scheduling import CLAIM_GRACE, NextStep, StepCall, next_step_for, step_time_limit
from shared.engine.snapshot import (
    JobSnapshot,
    cached_binary,
    cached_snapshot,
    job_snapshot,
    remember_snapshot,
)
from shared.flow import runtime
from shared.flow.binary import CompiledBinary
from shared.jobs import counters
from shared.jobs.ids import new_task_id
from shared.jobs.log import LINES_PER_INSERT, JobLogger, line_params
from shared.jobs.store import transition_job
from shared.metrics import recorder
from shared.states import RUNNABLE, JobStatus
from shared.store.db import connection_scope, statement_scope

log = logging.getLogger(__name__)

RUNNING_MESSAGE = "Running"


class StepRunner:
    """Runs one StepCall against the store. ``passthrough`` exceptions (the worker's soft time
    limit) become a failure of the step's records, never swallowed by UDF error handling.
    ``terminating()`` says whether this process has been told to stop (its worker's pool
    signals a SIGTERM as a SystemExit, which a UDF or the per-record error handling may have
    caught as the step's own error): then nothing the step did is recorded. ``publisher``
    drops the queued messages of a job that failed (its maxParseExceptions passed); without one
    they are refused when they arrive.

    The hot path costs two writes: the claim (one conditional UPDATE, which the first time a
    worker process sees a job also reads the job's snapshot) and the advance (the file's UPDATE
    and the log lines; plus the job's ending when it comes)."""

    def __init__(
        self,
        settings: Settings,
        passthrough: tuple[type[BaseException], ...] = (),
        terminating: Callable[[], bool] = lambda: False,
        publisher: Publisher | None = None,
    ):
        self.settings = settings
        self.passthrough = passthrough
        self.terminating = terminating
        self.publisher = publisher

    def run(self, call: StepCall, time_limit: float | None = None) -> NextStep | None:
        """Run the step ``call`` names. ``time_limit``: the step's limit in seconds as its
        message carries it (the one its worker enforces), which its claim lasts for; without
        it, the limit the job and binary give."""
        # The snapshot read, the claim and the job's first transition each stand alone.
        with statement_scope(self.settings.sql_url) as conn:
            job = cached_snapshot(conn, call.job_id)
            # PostgreSQL reads the snapshot of a job this process has not seen in the claim's
            # own statement, when the claim's limit need not come from that snapshot.
            with_claim = job is None and time_limit is not None and _starts_with_claim(conn)
            if job is None and not with_claim:
                job = job_snapshot(conn, call.job_id)
                if job is None:
                    return None
            file_name, job = self._claim(conn, call, job, time_limit)
            if job is None:  # the claim that was to read the snapshot was refused
                job = job_snapshot(conn, call.job_id)
                if job is None:
                    return None
        binary = cached_binary(self.settings, job.binary_hash)
        if not 0 <= call.step_index < len(binary.steps):
            return None
        if file_name is None:
            return handle_refused(
                self.settings, job, binary, call, lambda: self._stop_files(job, call.task_id)
            )
        logger = JobLogger(job.id, call.task_id, job.trace_id, prefix=job.log_prefix)
        timer = recorder.StepTimer(self.settings, binary.steps[call.step_index].type)
        try:
            return timer.finished(self._execute(call, job, binary, file_name, logger))
        except self.passthrough:
            raise
        except OperationalError:
            raise  # the store failed, not the step: the task sends its message again
        except Exception as error:
            timer.failed()
            # A failure outside the per-record handling (unreadable input, a full disk): the
            # file fails at this step, with the reason, instead of staying pending forever.
            failed_job, released = fail_file(
                self.settings,
                job,
                call,
                file_name,
                f"Error <{type(error).__name__}: {error}> in step "
                f"{binary.steps[call.step_index].id}",
                logger,
            )
            if failed_job:
                self._stop_files(job, call.task_id)
            if released is not None and self.publisher is not None:
                # The task fails with the error below: the file that took this one's place in
                # the window is sent first (without a publisher, its redelivery sends it).
                self.publisher.apply(BrokerWork(publish=[released]))
            raise

    def _claim(
        self,
        conn: Connection,
        call: StepCall,
        job: JobSnapshot | None,
        time_limit: float | None,
    ) -> tuple[str | None, JobSnapshot | None]:
        """Take the file for this step (one conditional UPDATE on ``conn``) if the message is
        the one the store expects and the job may run. Returns the file's name (None if
        refused) and the job's snapshot: ``job``, or without it (PostgreSQL, with a
        ``time_limit``) the one the claim read, None if it was refused."""
        if time_limit is None:
            binary = cached_binary(self.settings, job.binary_hash)
            if not 0 <= call.step_index < len(binary.steps):
                return None, job
            time_limit = step_time_limit(self.settings, job, binary, call.step_index)
        now = _now()
        # PostgreSQL moves a queued job to running in the claim's own statement.
        starting = _starts_with_claim(conn)
        if not starting:
            claim = statements.CLAIM
        else:
            claim = statements.CLAIM_AND_START if job else statements.CLAIM_START_AND_SNAPSHOT
        claimed = claim.first(
            conn,
            {
                "b_job_id": call.job_id,
                "b_file_index": call.file_index,
                "step": call.step_index,
                "task_id": call.task_id,
                "max_attempts": self.settings.max_step_attempts,
                "until": now + timedelta(seconds=time_limit) + CLAIM_GRACE,
                "now": now,
                "new_message": RUNNING_MESSAGE,
            },
        )
        if claimed is None:
            return None, job
        if job is None:
            job = remember_snapshot(conn, claimed)
        started = starting and claimed.started
        # The job's first step (or its first since a resume), unless the claim started it.
        if claimed.job_status == JobStatus.QUEUED and not started:
            transition_job(conn, job.id, JobStatus.RUNNING, message=RUNNING_MESSAGE, strict=False)
        return claimed.file_name, job

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
            url_guard=url_guard.UrlGuard(url_guard.parse_networks(self.settings.allowed_networks)),
            # On an object store the first step reads its input from there, not from a path.
            inputs=input_contents(self.settings, job, call.file_index, file_name)[1]
            if call.step_index == 0
            else {},
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
        if self.terminating():
            # Stopped mid-step (its worker lost the broker and cancels the steps it cannot ack,
            # or a cold shutdown): the records may hold the exit as an error of their own.
            # Nothing is written; the claim stays, and the message comes back to run it again.
            raise SystemExit("the worker stopped this step's process")
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
        # Counted only against a budget: a job without one runs no statement for it.
        errors = outcome.failed if job.max_parse_exceptions is not None else 0
        if not file_ends:
            token = params["next_token"] = new_task_id()
            # The job's state as of the file's UPDATE. A pause committed first stops the file
            # here, with no token; a resume then schedules it, or, if the resume could not see
            # it yet, this step does (shared/engine/paused_files.py).
            if errors:
                status = self._advance_counting(kind, params, errors, job, logger)
            else:
                status = self._advance(kind, params, logger)
            if status == JobStatus.PAUSED:
                return resumed_meanwhile(
                    self.settings, job, binary, call.file_index, call.step_index + 1, token
                )
            if status not in RUNNABLE:
                if status == JobStatus.FAILED:
                    # The job failed (this step passed its budget, or another did): the file
                    # goes no further.
                    self._stop_files(job, call.task_id)
                return None  # the claim was lost meanwhile, or the job may not go on
            return next_step_for(
                self.settings, job, binary, call.file_index, call.step_index + 1, token
            )
        final = runtime.final_results(records, runtime.output_schema_of(job.settings))
        write_atomic(
            results_file(self.settings, job, file_name),
            json.dumps(final, ensure_ascii=False).encode("utf-8"),
        )
        params.update(file_ending(records))
        logger.info(f"File {file_name} finished: {params['end_status']}")
        ending = FileEnding(kind, params, job, binary, file_name, final, errors)
        if _ends_in_one_statement(self.settings, ending, logger):
            return self._end_file(ending, logger)
        return self._end_file_in_turns(ending, logger)

    def _end_file_in_turns(self, ending: FileEnding, logger: JobLogger) -> NextStep | None:
        """End the file at its last step, a statement for each part, in one transaction: its
        advance, its budget's count, its count in the job's totals, then the job's ending if
        this was its last file, or else the release of the job's next waiting file, and the
        log lines. The released file's step, to publish after the commit, or None."""
        job, params = ending.job, ending.params
        failed_job, released = False, None
        with connection_scope(self.settings.sql_url) as conn:
            moved = statements.ADVANCE[(*ending.kind, True)].first(conn, params)
            if moved is None:
                return None  # the claim was lost meanwhile (cancelled, or taken over)
            if ending.errors:
                failed_job = budget.count_record_errors(conn, job, ending.errors, logger)[1]
            if count_finished_file(conn, job.id, params):
                known = {ending.file_name: ending.final}
                finish_job_if_done(conn, self.settings, job, logger, known=known)
            else:
                # The file's place in the job's window goes to the next waiting file.
                released = window.refill(conn, self.settings, job, params["task_id"])
            logger.write(conn)
        if failed_job:
            self._stop_files(job, params["task_id"])
        if released is None and moved.job_status == JobStatus.PAUSED:
            return released_meanwhile(self.settings, job, params["task_id"])
        return released

    def _end_file(self, ending: FileEnding, logger: JobLogger) -> NextStep | None:
        """PostgreSQL: ``_end_file_in_turns`` with its advance, count, release and the step's
        log lines as one statement (``statements.end_file_and_log``), then the job's ending
        in the same transaction if this was its last file."""
        job, params = ending.job, ending.params
        refill = window.size(self.settings) is not None
        lines = logger.take()
        statement = statements.end_file_and_log(*ending.kind, len(lines), refill)
        places = {"places": 1, "prefix": window.released_prefix(params["task_id"])}
        with connection_scope(self.settings.sql_url) as conn:
            ended = statement.first(conn, {**params, **line_params(lines), **places})
            if ended is None:
                return None  # the claim was lost meanwhile (cancelled, or taken over)
            if ended.files_done >= ended.num_files and not ended.inputs_pending:
                known = {ending.file_name: ending.final}
                # A job of one file ends with what this ending wrote: no read of its files.
                outcomes = (
                    only_file_outcome(params, ending.file_name, ended.counted_status)
                    if ended.num_files == 1
                    else None
                )
                finish_job_if_done(conn, self.settings, job, logger, known, outcomes)
                logger.write(conn)
        if refill and ended.released_index is None and ended.job_status == JobStatus.PAUSED:
            return released_meanwhile(self.settings, job, params["task_id"])
        if not refill or ended.released_index is None:
            return None
        return next_step_for(
            self.settings,
            job,
            ending.binary,
            ended.released_index,
            ended.released_step,
            ended.released_token,
        )

    def _advance(
        self, kind: tuple[bool, bool], params: dict, logger: JobLogger
    ) -> JobStatus | None:
        """Move the file past a step that is not its last and write the step's log lines; the
        job's state as the UPDATE saw it, or None if the file was not this step's to move."""
        url = self.settings.sql_url
        if url.startswith("postgresql") and 0 < len(logger.entries) <= LINES_PER_INSERT:
            lines = logger.take()
            with statement_scope(url) as conn:
                moved = statements.advance_and_log(*kind, len(lines)).first(
                    conn, {**params, **line_params(lines)}
                )
            return None if moved is None else moved.job_status
        with connection_scope(url) as conn:
            moved = statements.ADVANCE[(*kind, False)].first(conn, params)
            if moved is None:
                return None
            counters.count_step(conn, params)
            logger.write(conn)
            return moved.job_status

    def _advance_counting(
        self,
        kind: tuple[bool, bool],
        params: dict,
        errors: int,
        job: JobSnapshot,
        logger: JobLogger,
    ) -> JobStatus | None:
        """``_advance`` for a step of a job with a budget that failed ``errors`` records: the
        file's UPDATE, the job's count (which fails the job once past its budget) and the log
        lines, in one transaction (the file's row first, then the job's, as a file's last step
        takes them); the job's state afterwards, or None if the file was not this step's."""
        with connection_scope(self.settings.sql_url) as conn:
            if statements.ADVANCE[(*kind, False)].first(conn, params) is None:
                return None
            counters.count_step(conn, params)
            status, _ = budget.count_record_errors(conn, job, errors, logger)
            logger.write(conn)
            return status

    def _stop_files(self, job: JobSnapshot, task_id: str) -> None:
        """The job failed: end its files that no step holds, and drop their queued messages
        (a dropped message is only sooner: one that arrives is refused by its claim)."""
        queued = budget.stop_files(self.settings, job, task_id)
        if queued and self.publisher is not None:
            try:
                self.publisher.apply(BrokerWork(drop=queued))
            except Exception:  # kombu raises a variety of connection errors
                log.warning("could not drop the queued steps of job %s", job.id, exc_info=True)

    def _input_records(
        self, job: JobSnapshot, binary: CompiledBinary, call: StepCall, file_name: str
    ) -> list[dict]:
        if call.step_index == 0:
            source, _ = input_contents(self.settings, job, call.file_index, file_name)
            return [runtime.new_record(file_name, call.file_index, source)]
        previous = step_output_file(self.settings, job, binary, call.step_index - 1, file_name)
        return json.loads(previous.read_text("utf-8"))


@dataclass(frozen=True)
class FileEnding:
    """A file at the end of its last step (or of the step where its last record stopped):
    ``params`` are the advance's with ``file_ending``'s, ``final`` its final results, and
    ``errors`` its records that failed at this step against the job's budget."""

    kind: tuple[bool, bool]  # (some record failed, some stopped at a checkpoint)
    params: dict
    job: JobSnapshot
    binary: CompiledBinary
    file_name: str
    final: list[dict]
    errors: int


def _ends_in_one_statement(settings: Settings, ending: FileEnding, logger: JobLogger) -> bool:
    """Whether a file ends through ``end_file_and_log``: on PostgreSQL, for a file none of
    whose records failed (their messages are merged into the job's in Python, and a budget's
    count is a statement of its own), with the step's lines in one INSERT."""
    return (
        settings.sql_url.startswith("postgresql")
        and not ending.errors
        and not ending.params["end_error_counts"]
        and 0 < len(logger.entries) <= LINES_PER_INSERT
    )


def _starts_with_claim(conn: Connection) -> bool:
    """Whether the store's claim also starts a queued job (and can read its snapshot)."""
    return conn.dialect.name == "postgresql"


def _now() -> datetime:
    return datetime.now(UTC)


def _failed(record: dict, message: str) -> dict:
    """The record failed by ``message``, unless it had already failed or stopped."""
    if record.get("error") or record.get("checkpoint_failed"):
        return record
    return {**record, "error": message}
