"""Sync runs (``flow/run_binary_sync``): a binary run over up to five files sent in the request,
entirely in memory, answered with the results, and recorded as a finished job.

Nothing is written to the drive: the files go to a runner process (``sync_runners``) in memory
and the results come back in the answer. The job row (kind "sync"), its file rows and its log
lines are written once the run is over, in one transaction, so that jobs/status, jobs/list and
jobs/get_logs show it like any other run. A sync job keeps no inputs and cannot be retried.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.accounts.access import drive_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.errors import FlowbinError, InvalidRequest, NotFound, TooLarge
from shared.flow import output_schema
from shared.flow.binary import CompiledBinary, load_binary_cached
from shared.jobs import counters
from shared.jobs.ids import new_job_id, new_trace_id
from shared.jobs.log import JobLogger
from shared.runs.sync_runners import RunnerPool, SyncOutcome, SyncWork
from shared.states import FileStatus, JobKind, JobStatus
from shared.store.models import Job, JobFile
from shared.url_guard import UrlGuard, parse_networks

MAX_FILES = 5
MAX_TOTAL_BYTES = 20 * 1024 * 1024
RESULT_FORMATS = ("json", "csv")
# The task id of a sync run's log lines: its steps run in a sync runner, not a worker task.
SYNC_TASK = "sync"


@dataclass(frozen=True)
class SyncFile:
    file_name: str
    content: bytes


@dataclass(frozen=True)
class SyncRequest:
    binary_path: str
    files: tuple[SyncFile, ...]
    result_format: str = "json"
    runtime_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedRun:
    """A checked request: what to send to a runner, and what to record afterwards."""

    job_id: str
    binary_path: str
    binary: CompiledBinary
    work: SyncWork
    result_format: str
    started_at: datetime


def check_files(files: tuple[SyncFile, ...]) -> None:
    if not 1 <= len(files) <= MAX_FILES:
        raise InvalidRequest(
            f"files: send 1 to {MAX_FILES} files (got {len(files)}); "
            "run_binary_async takes a folder of any size"
        )
    total = sum(len(item.content) for item in files)
    if total > MAX_TOTAL_BYTES:
        raise TooLarge(
            f"files: {total} bytes in all, more than the {MAX_TOTAL_BYTES} a sync "
            "run takes; use run_binary_async for large files"
        )


def prepare(settings: Settings, principal: Principal, request: SyncRequest) -> PreparedRun:
    """Check the request and load the binary; errors are the API's 400, 404 and 413."""
    check_files(request.files)
    if request.result_format not in RESULT_FORMATS:
        raise InvalidRequest(
            f"options.result_format must be one of "
            f"{', '.join(RESULT_FORMATS)}, not {request.result_format!r}"
        )
    try:
        output_schema.from_runtime_config(request.runtime_config)
    except ValueError as exc:
        raise InvalidRequest(f"options.runtime_config.{exc}") from None
    binary_file = drive_for(settings).resolve(principal, request.binary_path)
    if not binary_file.file.is_file():
        raise NotFound(f"no flow binary at {binary_file.relative!r}: compile the flow first")
    data = binary_file.file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    binary = load_binary_cached(digest, data)
    job_id = new_job_id(None)
    return PreparedRun(
        job_id=job_id,
        binary_path=binary_file.relative,
        binary=binary,
        work=SyncWork(
            job_id=job_id,
            binary_digest=digest,
            binary_data=data,
            files=tuple((item.file_name, item.content) for item in request.files),
            runtime_config=dict(request.runtime_config),
            url_guard=UrlGuard(parse_networks(settings.allowed_networks)),
        ),
        result_format=request.result_format,
        started_at=datetime.now(UTC),
    )


def record_job(
    session: Session,
    principal: Principal,
    prepared: PreparedRun,
    outcome: SyncOutcome | None,
    failure: str | None = None,
) -> Job:
    """Write the finished sync job, its files and its log lines (one transaction)."""
    work = prepared.work
    files = outcome.files if outcome else []
    records = sum(item.num_records for item in files)
    errors = sum(item.num_errors for item in files)
    if failure is None and records and errors >= records:
        failure = f"no record came through ({errors} errors)"
    status = JobStatus.FAILED if failure else JobStatus.COMPLETE
    label = prepared.binary.flow_type
    message = f"Failed {label}: {failure}" if failure else f"Completed {label}"
    job = Job(
        id=prepared.job_id,
        owner_id=principal.user_id,
        kind=JobKind.SYNC,
        status=status,
        message=message,
        flow_type=label,
        binary_path=prepared.binary_path,
        binary_hash=work.binary_digest,
        settings={"runtime_config": work.runtime_config, "result_format": prepared.result_format},
        log_prefix=str(work.runtime_config.get("log_prefix") or ""),
        trace_id=new_trace_id(),
        num_files=len(work.files),
        num_steps=len(prepared.binary.steps),
        files_done=len(work.files),
        created_at=prepared.started_at,
        started_at=prepared.started_at,
        finished_at=datetime.now(UTC),
    )
    session.add(job)
    session.flush()  # the job row first: file and log rows reference it
    summaries = {item.file_index: item for item in files}
    for index, (name, _) in enumerate(work.files):
        item = summaries.get(index)
        if item is None:
            session.add(
                JobFile(
                    job_id=job.id,
                    file_index=index,
                    file_name=name,
                    status=FileStatus.FAILED,
                    next_step=job.num_steps,
                )
            )
            continue
        failed = item.num_records and item.num_errors == item.num_records
        session.add(
            JobFile(
                job_id=job.id,
                file_index=index,
                file_name=name,
                next_step=job.num_steps,
                status=FileStatus.FAILED if failed else FileStatus.COMPLETE,
                num_records=item.num_records,
                num_errors=item.num_errors,
                num_checkpoint_failed=item.num_checkpoint_failed,
                num_filtered=item.num_filtered,
                error_counts=item.error_counts,
            )
        )
    counters.recount(session, job.id)
    logger = JobLogger(job.id, SYNC_TASK, job.trace_id, prefix=job.log_prefix)
    logger.info(f"Sync run of {prepared.binary_path} on {len(work.files)} file(s)")
    for level, line in outcome.log if outcome else []:
        logger.log(level, line)
    logger.log("ERROR" if failure else "INFO", message)
    logger.flush(session)
    return job


def run_sync(
    settings: Settings,
    store: Callable[[], AbstractContextManager[Session]],
    principal: Principal,
    request: SyncRequest,
    pool: RunnerPool,
) -> dict[str, Any]:
    """Run, record the job, and answer as seed 001 does; a run past the limit (504) or whose
    runner died (422) is recorded as a failed job and raised, its message naming the job."""
    prepared = prepare(settings, principal, request)
    try:
        outcome = pool.run(prepared.work, settings.sync_timeout)
    except FlowbinError as error:
        with store() as session:
            record_job(session, principal, prepared, None, failure=error.msg)
        raise type(error)(f"{error.msg} (job {prepared.job_id})") from error
    with store() as session:
        record_job(session, principal, prepared, outcome)
    return answer(prepared, outcome)


def answer(prepared: PreparedRun, outcome: SyncOutcome) -> dict[str, Any]:
    records = [
        {
            "results": result["results"],
            "file_name": result["file_name"],
            "file_index": result["file_index"],
            "record_index": result["record_index"],
            "class_label": result["class_label"],
            "error": result["error"],
            "checkpoint_failed": result["checkpoint_failed"],
        }
        for result in outcome.results
    ]
    payload: dict[str, Any] = {
        "records": records,
        "binary_path": prepared.binary_path,
        "job_id": prepared.job_id,
    }
    if prepared.result_format == "csv":
        payload["csv"] = results_csv(records)
    return payload


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def results_csv(records: list[dict[str, Any]]) -> str:
    """One row per record: file_name, file_index, record_index, every field (in the order first
    seen), then error. Text is as is; numbers, booleans, lists and dicts are JSON; None is
    empty."""
    keys = list(dict.fromkeys(pair["key"] for record in records for pair in record["results"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file_name", "file_index", "record_index", *keys, "error"])
    for record in records:
        values = {pair["key"]: pair["value"] for pair in record["results"]}
        writer.writerow(
            [
                record["file_name"],
                record["file_index"],
                record["record_index"],
                *(_cell(values.get(key)) for key in keys),
                _cell(record["error"]),
            ]
        )
    return out.getvalue()
