"""File jobs: a copy or an extract of the Filesystem APIs (``/api/v2/files/copy`` and
``/extract``, ``/api/v1/drives/<folder>/unzip``), done in the request that asks for it and
recorded as a finished job, so that a client polling ``jobs/status`` for it, as Instabase's
clients do, reads its result there.

The work is checked before it starts (shared/drive_ops.py): what is refused then is the
request's 4xx, and no job is recorded. A job records what the work then did: COMPLETE, or
FAILED with the reason when the file system failed it on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive_ops import Transfer
from shared.errors import FlowbinError
from shared.jobs.ids import new_job_id, new_trace_id
from shared.jobs.log import JobLogger
from shared.states import JobKind, JobStatus
from shared.store.db import session_scope
from shared.store.models import Job

VERBS = {JobKind.COPY: ("Copied", "Copy"), JobKind.EXTRACT: ("Extracted", "Extract")}


def run_file_job(
    settings: Settings,
    principal: Principal,
    kind: JobKind,
    source: str,
    destination: str,
    work: Callable[[], Transfer],
) -> str:
    """Do ``work`` (a checked copy or extract), record it as a finished job, and return its id.
    A bug in the work is recorded as a failure too, then raised."""
    started = datetime.now(UTC)
    done, name = VERBS[kind]
    try:
        transfer = work()
    except Exception as error:
        reason = (
            error.msg if isinstance(error, FlowbinError) else f"{type(error).__name__}: {error}"
        )
        job_id = _record(
            settings,
            principal,
            kind,
            (source, destination),
            started,
            None,
            f"{name} failed: {reason}",
        )
        if isinstance(error, FlowbinError | OSError):
            return job_id
        raise
    message = f"{done} {transfer.files} file(s), {transfer.bytes} bytes, into {destination}"
    if transfer.links_skipped:
        message += f"; {transfer.links_skipped} link(s) left out"
    return _record(settings, principal, kind, (source, destination), started, transfer, message)


def _record(
    settings: Settings,
    principal: Principal,
    kind: JobKind,
    paths: tuple[str, str],
    started: datetime,
    transfer: Transfer | None,
    message: str,
) -> str:
    source, destination = paths
    job = Job(
        id=new_job_id(None),
        owner_id=principal.user_id,
        kind=kind,
        status=JobStatus.COMPLETE if transfer is not None else JobStatus.FAILED,
        message=message,
        flow_type="",
        input_dir=source,
        output_dir=destination,
        settings={
            "src_path": source,
            "dst_path": destination,
            **(
                {
                    "files": transfer.files,
                    "folders": transfer.folders,
                    "bytes": transfer.bytes,
                    "links_skipped": transfer.links_skipped,
                }
                if transfer is not None
                else {}
            ),
        },
        trace_id=new_trace_id(),
        num_files=transfer.files if transfer is not None else 0,
        files_done=transfer.files if transfer is not None else 0,
        created_at=started,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    with session_scope(settings.sql_url) as session:
        session.add(job)
        session.flush()  # the job row first: its log line refers to it
        logger = JobLogger(job.id, str(kind), job.trace_id)
        logger.log("INFO" if transfer is not None else "ERROR", message)
        logger.flush(session)
        return job.id
