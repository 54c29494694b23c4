"""``run_flow_async``: compile a flow file and run it in one call, as Instabase's toolkits do.

Compiling imports the flow's UDF modules, which runs user code, so it happens in a worker: the
API records an ordinary compile job, publishes it at the top priority and waits for it to end,
then submits the run on the binary it wrote. A project whose sources did not change since it was
last compiled is not compiled again: its binary is found by the hash of the project's files
(``<binary store>/sources/<hash>``), provided the binary is still where it was written with the
content it had.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.accounts.access import drive_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive import DrivePath, write_atomic
from shared.engine.broker_work import BrokerWork
from shared.errors import InvalidRequest, NotFound, Unavailable, Unprocessable
from shared.flow.composition import FLOW_SUFFIX
from shared.runs.compile import SOURCE_SUFFIXES, CompileRequest, start_compile
from shared.states import ENDED, JobStatus
from shared.storage.locate import binary_storage
from shared.store.db import session_scope
from shared.store.models import Job

# How long the API waits for the compile before it gives up (the job then goes on without it).
COMPILE_WAIT_SECONDS = 60.0
# Our own projects keep flow files in flows/ and name UDFs from the project root.
FLOWS_FOLDER = "flows"
# Files whose content makes a binary (SOURCE_SUFFIXES): a change to any means compiling again.


@dataclass(frozen=True)
class FlowProject:
    root: DrivePath
    flow_file: str  # inside root


def project_of(settings: Settings, principal: Principal, ibflow_path: str) -> FlowProject:
    """The project an ``.ibflow`` belongs to: the folder it is in, or that folder's parent when
    it is a ``flows/`` folder (so that UDF paths are relative to the project, as compiled)."""
    drive = drive_for(settings)
    flow = drive.resolve(principal, ibflow_path)
    if not flow.relative.endswith(FLOW_SUFFIX):
        raise InvalidRequest(f"ibflow_path {flow.relative!r} is not a *{FLOW_SUFFIX} file")
    if not flow.file.is_file():
        raise NotFound(f"no flow file at {flow.relative!r}")
    parts = flow.relative.split("/")
    if len(parts) < 2:
        raise InvalidRequest("ibflow_path must be inside a folder of a space")
    depth = 2 if len(parts) >= 3 and parts[-2] == FLOWS_FOLDER else 1
    root = drive.resolve(principal, "/".join(parts[:-depth]))
    return FlowProject(root=root, flow_file="/".join(parts[-depth:]))


def sources_key(project: FlowProject) -> str:
    """A hash of the project's source files (names and contents) and which flow is run."""
    digest = hashlib.sha256(project.flow_file.encode())
    root = project.root
    for parts in sorted(root.storage.tree(root.relative).files):
        if parts[-1].endswith(SOURCE_SUFFIXES):
            name = "/".join(parts)
            content = root.storage.read_bytes(f"{root.relative}/{name}")
            digest.update(b"\0" + name.encode() + b"\0" + content)
    return digest.hexdigest()


def cached_binary(settings: Settings, principal: Principal, key: str) -> str | None:
    """The drive path of the binary last compiled from these sources, if it is unchanged."""
    record = binary_storage(settings).file(f"sources/{key}")
    if not record.is_file():
        return None
    path, _, digest = record.read_text("utf-8").partition("\n")
    try:
        binary = drive_for(settings).resolve(principal, path)
    except (NotFound, InvalidRequest):
        return None
    if not binary.file.is_file():
        return None
    if hashlib.sha256(binary.file.read_bytes()).hexdigest() != digest:
        return None
    return binary.relative


def remember_binary(settings: Settings, principal: Principal, key: str, path: str) -> None:
    binary = drive_for(settings).resolve(principal, path)
    digest = hashlib.sha256(binary.file.read_bytes()).hexdigest()
    write_atomic(binary_storage(settings).file(f"sources/{key}"), f"{path}\n{digest}".encode())


def compiled_binary(
    settings: Settings,
    principal: Principal,
    project: FlowProject,
    publish: Callable[[str, BrokerWork], None],
) -> str:
    """The drive path of the project's binary: the cached one, or one compiled now."""
    # Whether the cache holds it or not, the caller must be able to write where a compile
    # writes: access never depends on what was compiled before.
    drive_for(settings).resolve(principal, f"{project.root.relative}/build/bin", write=True)
    key = sources_key(project)
    cached = cached_binary(settings, principal, key)
    if cached:
        return cached
    request = CompileRequest(
        flow_project_root=project.root.relative,
        binary_type="Single Flow",
        settings={"flow_file": project.flow_file},
    )
    with session_scope(settings.sql_url) as session:
        job, work = start_compile(session, settings, principal, request)
    publish(job.id, work)
    compiled = wait_for_compile(settings, job.id)
    if compiled.status != JobStatus.COMPLETE:
        raise Unprocessable(f"{compiled.message} (compile job {job.id})")
    remember_binary(settings, principal, key, compiled.output_dir)
    return compiled.output_dir


@dataclass(frozen=True)
class _Ended:
    status: JobStatus
    message: str
    output_dir: str


def wait_for_compile(
    settings: Settings, job_id: str, timeout: float = COMPILE_WAIT_SECONDS
) -> _Ended:
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(settings.sql_url, read_only=True) as session:
            job = session.get(Job, job_id)
            if job.status in ENDED:
                return _Ended(job.status, job.message, job.output_dir)
        if time.monotonic() > deadline:
            raise Unavailable(
                f"the flow's compile job {job_id} did not finish within {timeout:.0f} s (the "
                "workers are busy or down); try again, or compile it and use run_binary_async"
            )
        time.sleep(0.05)
