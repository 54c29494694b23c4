"""Compile jobs: the API records the request, a worker compiles (UDF imports run user code,
so they never run in the API process) and writes the binary into the drive."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from shared.accounts.access import drive_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive import Drive, write_atomic
from shared.engine.broker_work import BrokerWork
from shared.errors import FlowbinError, InvalidRequest, NotFound
from shared.flow.compiler import compile_project
from shared.flow.composition import FLOW_SUFFIX
from shared.jobs.ids import ensure_job_id_free, new_job_id, new_trace_id
from shared.jobs.log import JobLogger
from shared.jobs.store import transition_job
from shared.states import JobKind, JobStatus
from shared.store.db import session_scope
from shared.store.models import Job, User

BINARY_TYPES = ("Single Flow", "Metaflow", "Flows")
# The files of a project that a compile reads (flows, UDF modules, classifiers, metaflows).
SOURCE_SUFFIXES = (FLOW_SUFFIX, ".py", ".ibclassifier", ".ibmetaflow")


@dataclass(frozen=True)
class CompileRequest:
    flow_project_root: str
    binary_type: str
    settings: dict = field(default_factory=dict)
    predefined_binary_path: str | None = None


def compile_request(args: dict, path: str | None = None) -> CompileRequest:
    """A compile request from an API body, and the path of the URL it came to, if any: the
    project folder, or its flow file, used where the body leaves them out."""
    root = args.get("flow_project_root")
    compile_settings = dict(args.get("settings") or {})
    if not root and path:
        root = path
        if path.endswith(FLOW_SUFFIX):
            root, _, flow_file = path.rstrip("/").rpartition("/")
            compile_settings.setdefault("flow_file", flow_file)
    if not root:
        raise InvalidRequest(
            "flow_project_root is required: the drive folder of the flow project to compile"
        )
    return CompileRequest(
        flow_project_root=root,
        binary_type=args["binary_type"],
        settings=compile_settings,
        predefined_binary_path=args.get("predefined_binary_path"),
    )


def start_compile(
    session: Session, settings: Settings, principal: Principal, request: CompileRequest
) -> tuple[Job, BrokerWork]:
    """Record a compile job; the caller publishes it (the returned work) after commit."""
    if request.binary_type not in BINARY_TYPES:
        raise InvalidRequest(
            f"binary_type {request.binary_type!r} is not one of {', '.join(BINARY_TYPES)}"
        )
    drive = drive_for(settings)
    root = drive.resolve(principal, request.flow_project_root)
    if not root.file.is_dir():
        raise NotFound(f"no flow project folder at {root.relative!r}")
    # Where the binary will go must be writable now, not only when the worker gets to it.
    drive.resolve(
        principal, request.predefined_binary_path or f"{root.relative}/build/bin", write=True
    )
    job_id = new_job_id(None)
    ensure_job_id_free(session, job_id)
    job = Job(
        id=job_id,
        owner_id=principal.user_id,
        kind=JobKind.COMPILE,
        status=JobStatus.QUEUED,
        message="Queued compile",
        flow_type="",
        input_dir=root.relative,
        settings={
            "flow_project_root": root.relative,
            "binary_type": request.binary_type,
            "settings": request.settings,
            "predefined_binary_path": request.predefined_binary_path,
        },
        trace_id=new_trace_id(),
    )
    session.add(job)
    session.flush()
    return job, BrokerWork(compile=[job.id], affected=1)


def run_compile(settings: Settings, job_id: str, task_id: str) -> None:
    with session_scope(settings.sql_url) as session:
        job = session.get(Job, job_id)
        if job is None or not transition_job(
            session, job_id, JobStatus.RUNNING, message="Compiling", strict=False
        ):
            return
        owner = session.get(User, job.owner_id)
        principal = Principal(owner.id, owner.username, owner.is_admin)
    logger = JobLogger(job.id, task_id, job.trace_id)
    request = job.settings
    drive = drive_for(settings)
    try:
        root = drive.resolve(principal, request["flow_project_root"])
        logger.info(f"Compiling {request['binary_type']} binary from {root.relative}")
        # On an object store the worker compiles a temporary copy of the project's sources.
        with root.storage.folder_on_host(root.relative, SOURCE_SUFFIXES) as project:
            artifact = compile_project(
                project,
                request["binary_type"],
                request["settings"] or {},
                compiled_by=principal.username,
            )
        target = _binary_target(
            drive,
            principal,
            root.relative,
            request.get("predefined_binary_path"),
            artifact.file_name,
        )
        write_atomic(target.file, artifact.data)
    except FlowbinError as error:
        logger.error(f"Compile failed: {error.msg}")
        _finish(settings, job_id, JobStatus.FAILED, f"Compile failed: {error.msg}", logger)
        return
    except Exception as error:  # a bug or an I/O failure: the job must still end, and say why
        message = f"Compile failed: {type(error).__name__}: {error}"
        logger.error(message)
        _finish(settings, job_id, JobStatus.FAILED, message, logger)
        raise
    logger.info(f"Wrote {target.relative} (content hash {artifact.content_hash})")
    with session_scope(settings.sql_url) as session:
        session.get(Job, job_id).output_dir = target.relative
    _finish(settings, job_id, JobStatus.COMPLETE, f"Compiled {target.relative}", logger)


def _binary_target(
    drive: Drive, principal: Principal, root: str, predefined: str | None, file_name: str
):
    if predefined and predefined.endswith(".ibflowbin"):
        return drive.resolve(principal, predefined, write=True)
    folder = predefined or f"{root}/build/bin"
    return drive.resolve(principal, f"{folder.rstrip('/')}/{file_name}", write=True)


def _finish(
    settings: Settings, job_id: str, target: JobStatus, message: str, logger: JobLogger
) -> None:
    with session_scope(settings.sql_url) as session:
        transition_job(session, job_id, target, message=message, strict=False)
        logger.flush(session)
