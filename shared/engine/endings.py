"""How a file and a job end. A file ends at its last step, or earlier when none of its records
can go on; the worker that finishes a job's last file writes the combined results and moves the
job to its final state, in the same transaction as the file's ending."""

from __future__ import annotations

import json
from typing import NamedTuple

from sqlalchemy import Connection, update

from shared.config import Settings
from shared.drive import write_atomic
from shared.engine import window
from shared.engine.budget import count_record_errors
from shared.engine.layout import (
    combined_results_file,
    ibflowresults,
    ibflowresults_file,
    results_file,
)
from shared.engine.scheduling import NextStep, StepCall
from shared.engine.snapshot import JobSnapshot
from shared.engine.statements import COUNT_FINISHED, FILE_OUTCOMES
from shared.flow import runtime
from shared.jobs.counters import add_error_counts
from shared.jobs.log import JobLogger
from shared.jobs.store import transition_job
from shared.states import ENDING_SOURCES, FileStatus, JobStatus
from shared.store.db import connection_scope
from shared.store.models import JobFile


def file_ending(records: list[dict]) -> dict:
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
        "end_status": status,
        "end_num_records": len(records),
        "end_num_errors": num_errors,
        "end_num_checkpoint_failed": num_checkpoint,
        # Those that came through (no error, no checkpoint stop) with warnings.
        "end_num_warnings": sum(
            1
            for r in records
            if r.get("warnings") and not r.get("error") and not r.get("checkpoint_failed")
        ),
        "end_error_counts": runtime.record_error_counts(records),
    }


def count_finished_file(conn: Connection, job_id: str, ending: dict) -> bool:
    """Count one more finished file, and add what it ended with (``file_ending``'s parameters,
    with its last ``step`` and the records it ``filtered`` there) to the job's totals; True for
    the caller that finished the last one."""
    counted = COUNT_FINISHED.first(conn, {**ending, "b_job_id": job_id})
    add_error_counts(conn, job_id, ending["end_error_counts"])
    return counted.files_done >= counted.num_files and not counted.inputs_pending


def fail_file(
    settings: Settings,
    job: JobSnapshot,
    call: StepCall,
    file_name: str,
    message: str,
    logger: JobLogger,
) -> tuple[bool, NextStep | None]:
    """A step that could not run at all (unreadable input, a full disk, too many starts): the
    file fails at this step with ``message`` (one record's error, counted against the job's
    maxParseExceptions if it has one), and the job ends if it was its last file. Whether this
    failed the job by passing its budget (the caller then stops its other files:
    ``budget.stop_files``), and the step of the file that took this one's place in the job's
    window, for the caller to publish."""
    logger.error(f"{message} on file {file_name}")
    with connection_scope(settings.sql_url) as conn:
        failed = conn.execute(
            update(JobFile)
            .where(
                JobFile.job_id == job.id,
                JobFile.file_index == call.file_index,
                JobFile.next_step == call.step_index,
                JobFile.status == FileStatus.PENDING,
            )
            .values(
                status=FileStatus.FAILED,
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
        failed_job = False
        if failed == 1 and job.max_parse_exceptions is not None:
            failed_job = count_record_errors(conn, job, 1, logger)[1]
        ending = {
            "step": call.step_index,
            "filtered": 0,
            "end_num_records": 1,
            "end_num_errors": 1,
            "end_num_checkpoint_failed": 0,
            "end_num_warnings": 0,
            "end_error_counts": {message: 1},
        }
        released = None
        if failed == 1 and count_finished_file(conn, job.id, ending):
            finish_job_if_done(conn, settings, job, logger)
        elif failed == 1:
            released = window.refill(conn, settings, job, call.task_id)
        logger.write(conn)
    return failed_job, released


class FileOutcome(NamedTuple):
    """A row of FILE_OUTCOMES: how one file of the job ended, with the job's state."""

    file_name: str
    status: str
    num_records: int
    num_errors: int
    job_status: str
    inputs_pending: bool


def only_file_outcome(ending: dict, file_name: str, job_status: str) -> list[FileOutcome]:
    """FILE_OUTCOMES of a job of one file as its ending (``file_ending``'s parameters, just
    written) tells them, with ``job_status`` as the ending's transaction holds the job's row:
    what the caller knows without reading them back."""
    return [
        FileOutcome(
            file_name,
            ending["end_status"],
            ending["end_num_records"],
            ending["end_num_errors"],
            job_status,
            False,
        )
    ]


def finish_job_if_done(
    conn: Connection,
    settings: Settings,
    job: JobSnapshot,
    logger: JobLogger,
    known: dict[str, list[dict]] | None = None,
    outcomes: list[FileOutcome] | None = None,
) -> None:
    """Write the combined results and move the job to its final state, in the caller's
    transaction (idempotent: only a running or paused job with no pending file moves).
    ``known`` holds final results the caller has in hand, by file name; the rest are read
    back from the files' results. ``outcomes``: the files' FILE_OUTCOMES if the caller has
    them in hand (``only_file_outcome``), else they are read. The caller writes ``logger``'s
    lines."""
    files = outcomes if outcomes is not None else FILE_OUTCOMES.all(conn, {"b_job_id": job.id})
    if not files or files[0].job_status not in ENDING_SOURCES or files[0].inputs_pending:
        return
    if any(row.status == FileStatus.PENDING for row in files):
        return
    combined = []
    for row in files:
        if known and row.file_name in known:
            combined.extend(known[row.file_name])
            continue
        path = results_file(settings, job, row.file_name)
        if path.exists():
            combined.extend(json.loads(path.read_text("utf-8")))
    write_atomic(
        combined_results_file(settings, job),
        json.dumps(combined, ensure_ascii=False).encode("utf-8"),
    )
    write_atomic(
        ibflowresults_file(settings, job),
        json.dumps(ibflowresults(job, combined), ensure_ascii=False).encode("utf-8"),
    )
    target, message = job_outcome(job, files)
    level = "ERROR" if target == JobStatus.FAILED else "INFO"
    if logger.entries:
        # After the lines the caller has yet to write.
        if transition_job(conn, job.id, target, message=message, strict=False):
            logger.log(level, message)
        return
    # With none pending, the job's last line goes in with its move (one statement on
    # PostgreSQL).
    line = logger.line(level, message)
    transition_job(conn, job.id, target, message=message, strict=False, log_line=line)


def job_outcome(job: JobSnapshot, files) -> tuple[JobStatus, str]:
    """The state a job whose files have all ended goes to, and its message."""
    label = job.flow_type
    if any(row.status == FileStatus.STOPPED_AT_CHECKPOINT for row in files):
        return JobStatus.STOPPED_AT_CHECKPOINT, f"Stopped at checkpoint {label}"
    records = sum(row.num_records for row in files)
    errors = sum(row.num_errors for row in files)
    if (errors and errors >= records) or all(row.status == FileStatus.FAILED for row in files):
        return JobStatus.FAILED, f"Failed {label}: no record came through ({errors} errors)"
    return JobStatus.COMPLETE, f"Completed {label}"
