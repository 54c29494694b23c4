"""Submitting flow runs: validate the request, snapshot the binary, prepare the output folder,
record the job and its files (a big input folder's are recorded by a worker instead:
shared/runs/input_listing.py), and return the first steps of the files in the job's window
(shared/engine/window.py) for the caller to publish once the records are committed. The job is
recorded marked unpublished; the caller clears the mark once its steps (or its listing) are
sent, and a caller that dies before is repaired by stalled-step recovery
(shared/engine/publication.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy.exc import IntegrityError

from shared.accounts import collaboration
from shared.accounts.access import drive_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.delivery import webhooks
from shared.drive import Drive, DrivePath, write_atomic
from shared.engine import window
from shared.engine.broker_work import BrokerWork
from shared.engine.scheduling import steps_for
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.flow.binary import load_binary_cached
from shared.flow.output_schema import from_runtime_config as runtime_output_schema
from shared.jobs.ids import ensure_job_id_free, new_job_id, new_task_id, new_trace_id
from shared.runs import input_listing
from shared.runs.record import record_run
from shared.states import JobKind, JobStatus
from shared.storage.locate import binary_storage
from shared.store.db import session_scope, statement_scope
from shared.store.models import Job, JobFile


@dataclass(frozen=True)
class RunSettings:
    output_has_run_id: bool = False
    delete_out_dir: bool = False
    log_to_timeline: bool = False
    tags: tuple[str, ...] = ()
    step_timeout: int = 0
    priority: int = 0
    save_binary_to_output: bool = True
    runtime_config: dict = field(default_factory=dict)
    # Sent when the job ends (shared/delivery/notify.py).
    webhook_config: dict | None = None
    notification_emails: tuple[str, ...] = ()
    pipeline_ids: tuple[str, ...] = ()
    # Seed 002's collaboration: who else sees and works on the job (shared/accounts/).
    collaboration: dict | None = None
    # The resource API's (/api/v2/jobs): the client's metadata, and its maxParseExceptions.
    metadata: dict = field(default_factory=dict)
    max_parse_exceptions: int | None = None
    # A run on documents (shared/contents/documents.py): each one, as its input_content shows.
    documents: tuple[dict, ...] = ()


@dataclass(frozen=True)
class RunRequest:
    binary_path: str
    input_dir: str
    output_dir: str | None = None
    job_id: str | None = None
    settings: RunSettings = field(default_factory=RunSettings)


def snapshot_binary(settings: Settings, data: bytes, digest: str) -> None:
    """Keep an immutable copy of the binary a run executes, named by its SHA-256 ``digest``."""
    target = binary_storage(settings).file(f"{digest}.ibflowbin")
    if not target.exists():
        write_atomic(target, data)


def check_output_schema(runtime_config: dict) -> None:
    """A bad modify_output_schema is a 400 when the run is submitted, not a failure later."""
    try:
        runtime_output_schema(runtime_config)
    except ValueError as exc:
        raise InvalidRequest(f"settings.runtime_config.{exc}") from None


def create_run(
    settings: Settings, principal: Principal, request: RunRequest
) -> tuple[Job, BrokerWork]:
    """Check the request, prepare the output folder and record the job and its files; the
    caller publishes the first steps once this returns (the records are committed), then
    confirms them sent with ``confirm_published(work.confirm)``."""
    job_id = new_job_id(request.job_id)
    # An id the client chose may be taken: checked before anything touches the output folder,
    # with a read of its own; the write transaction comes last, so the file work does not hold
    # SQLite's write lock (a racing duplicate still fails at the insert). A generated id (a
    # random UUID) needs no read.
    if job_id == request.job_id:
        with statement_scope(settings.sql_url, read_only=True) as check:
            ensure_job_id_free(check, job_id)
    # http(s) to an allowed address only, refused here as a 400 rather than at the job's end.
    webhook_config = webhooks.checked_config(settings, request.settings.webhook_config)
    check_output_schema(request.settings.runtime_config)
    drive = drive_for(settings)
    binary_file = drive.resolve(principal, request.binary_path)
    if not binary_file.file.is_file():
        raise NotFound(f"no flow binary at {binary_file.relative!r}: compile the flow first")
    data = binary_file.file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    binary = load_binary_cached(digest, data)
    collaborators = []
    if request.settings.collaboration:
        with session_scope(settings.sql_url, read_only=True) as session:
            collaborators = collaboration.resolve(
                session, request.settings.collaboration, [step.id for step in binary.steps]
            )

    input_dir = drive.resolve(principal, request.input_dir)
    if not input_dir.file.is_dir():
        raise NotFound(f"no input folder at {input_dir.relative!r}")
    # Listed as a stream, and no further than tells a small folder from a big one: a big
    # one is listed by a worker (shared/runs/input_listing.py), so submit costs the same
    # whatever the folder holds.
    source = input_listing.input_names(input_dir.file)
    try:
        inputs = list(islice(source, settings.input_batch_files + 1))
    finally:
        source.close()
    if not inputs:
        raise InvalidRequest(f"input folder {input_dir.relative!r} holds no files to run on")
    listed_later = len(inputs) > settings.input_batch_files
    inputs = [] if listed_later else sorted(inputs)

    output_root = _output_root(drive, principal, request, input_dir)
    run = request.settings
    output = output_root
    if run.output_has_run_id:
        run_id = datetime.now(UTC).strftime("%Y-%m-%d_%H-%M-%S") + f"_{job_id}"
        output = drive.resolve(principal, f"{output_root.relative}/{run_id}", write=True)
    elif run.delete_out_dir and output_root.file.is_dir():
        output_root.storage.delete(output_root.relative)
    output.storage.make_folder(output.relative)

    snapshot_binary(settings, data, digest)
    if run.save_binary_to_output:
        write_atomic(output.file / binary_file.file.name, data)

    recorded_at = datetime.now(UTC)
    job_row = dict(
        id=job_id,
        owner_id=principal.user_id,
        kind=JobKind.FLOW,
        status=JobStatus.QUEUED,
        message="Queued",
        flow_type=binary.flow_type,
        binary_path=binary_file.relative,
        binary_hash=digest,
        input_dir=input_dir.relative,
        output_dir=output.relative,
        settings={
            "runtime_config": run.runtime_config,
            "webhook_config": webhook_config,
            "notification_emails": list(run.notification_emails),
            "pipeline_ids": list(run.pipeline_ids),
            **({"documents": list(run.documents)} if run.documents else {}),
        },
        priority=run.priority,
        step_timeout=run.step_timeout,
        log_prefix=str(run.runtime_config.get("log_prefix") or ""),
        log_to_timeline=run.log_to_timeline,
        trace_id=new_trace_id(),
        num_files=len(inputs),
        inputs_pending=listed_later,
        num_steps=len(binary.steps),
        created_at=recorded_at,
        # In the job's own INSERT: the mark costs no statement of its own.
        unpublished_since=recorded_at,
        job_metadata=dict(run.metadata),
        max_parse_exceptions=run.max_parse_exceptions,
    )
    # The first files take the job's window, the others wait for a place in it. Without a
    # window every file is sent now; a job of more than a few files has its window filled by a
    # worker, so that the request does not send a window of messages one by one.
    file_rows = input_listing.file_rows(job_id, inputs, 0)
    places = window.size(settings)
    direct = places is None or len(file_rows) <= input_listing.DIRECT_FILES
    if places is None:
        places = len(file_rows)
    elif not direct:
        places = 0
    for row in file_rows[:places]:
        row["next_task_id"] = new_task_id()
    released_later = listed_later or not direct
    pipelines = [
        {"job_id": job_id, "pipeline_id": pipeline_id}
        for pipeline_id in dict.fromkeys(run.pipeline_ids)
    ]
    try:
        record_run(
            settings.sql_url,
            job_row,
            file_rows,
            list(run.tags),
            pipelines,
            collaboration.share_rows(job_id, collaborators),
        )
    except IntegrityError as error:  # another request took the same id meanwhile
        raise Conflict(f"a job with id {job_id!r} already exists: choose another job_id") from error
    # Detached copies of what was inserted, for the caller to read.
    job = Job(**job_row)
    sent = [JobFile(**row) for row in file_rows if row["next_task_id"] != window.WAITING]
    return job, BrokerWork(
        publish=steps_for(settings, job, sent),
        release=[job_id] if released_later else [],
        affected=1,
        confirm={job_id: recorded_at},
    )


def _output_root(
    drive: Drive, principal: Principal, request: RunRequest, input_dir: DrivePath
) -> DrivePath:
    if request.output_dir:
        output = drive.resolve(principal, request.output_dir, write=True)
    else:
        parent = input_dir.relative.rsplit("/", 1)[0] if "/" in input_dir.relative else None
        if parent is None:
            raise InvalidRequest(
                "input_dir is a drive root, so output_dir cannot default to input_dir/../out: "
                "pass output_dir"
            )
        output = drive.resolve(principal, f"{parent}/out", write=True)
    # Deleting or writing the output must never touch the inputs.
    if output.relative == input_dir.relative or input_dir.relative.startswith(
        output.relative + "/"
    ):
        raise InvalidRequest("output_dir must not be input_dir or a folder that contains it")
    if output.real is not None and (
        output.real == input_dir.real or output.real in input_dir.real.parents
    ):  # the same folder through a link
        raise InvalidRequest("output_dir must not be input_dir or a folder that contains it")
    if output.file.exists() and not output.file.is_dir():
        raise InvalidRequest(f"output_dir {output.relative!r} is a file, not a folder")
    return output
