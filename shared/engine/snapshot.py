"""What a worker process keeps of a job between its steps: the columns that never change after
the job is created, and the compiled binary it runs. Both are read once per process, so a step's
transactions touch only the rows that do change."""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from shared.config import Settings
from shared.flow.binary import CompiledBinary, load_binary
from shared.storage.backend import Storage
from shared.storage.locate import binary_storage
from shared.store.models import Job
from shared.store.prepared import Prepared


@dataclass(frozen=True)
class JobSnapshot:
    """The columns of a job that never change after it is created."""

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
    max_parse_exceptions: int | None  # the job's error budget; None: unlimited


# The columns, in JobSnapshot's order: a claim that reads them for the runner selects these.
SNAPSHOT_COLUMNS = tuple(Job.__table__.c[name] for name in JobSnapshot.__dataclass_fields__)
_SNAPSHOT = Prepared(select(*SNAPSHOT_COLUMNS).where(Job.__table__.c.id == bindparam("b_job_id")))

_SNAPSHOTS: OrderedDict[tuple[object, str], JobSnapshot] = OrderedDict()
SNAPSHOTS_KEPT = 1024


def cached_snapshot(conn: Connection, job_id: str) -> JobSnapshot | None:
    """The job's snapshot if this process has already read it (on ``conn``'s store)."""
    return _SNAPSHOTS.get((conn.engine.url, job_id))


def remember_snapshot(conn: Connection, row) -> JobSnapshot:
    """Keep the snapshot of ``row``, which holds SNAPSHOT_COLUMNS (by name), read on ``conn``."""
    snapshot = JobSnapshot(*(getattr(row, name) for name in JobSnapshot.__dataclass_fields__))
    _SNAPSHOTS[(conn.engine.url, snapshot.id)] = snapshot
    if len(_SNAPSHOTS) > SNAPSHOTS_KEPT:
        _SNAPSHOTS.popitem(last=False)
    return snapshot


def job_snapshot(conn: Connection, job_id: str) -> JobSnapshot | None:
    """The job's immutable columns: read on ``conn`` the first time this process sees the job
    (on the claim's connection, so it costs no transaction of its own), then kept."""
    snapshot = cached_snapshot(conn, job_id)
    if snapshot is None:
        row = _SNAPSHOT.first(conn, {"b_job_id": job_id})
        if row is None:
            return None
        snapshot = remember_snapshot(conn, row)
    return snapshot


@functools.lru_cache(maxsize=32)
def _binary(binary_store: Storage, digest: str) -> CompiledBinary:
    return load_binary(binary_store.read_bytes(f"{digest}.ibflowbin"))


def cached_binary(settings: Settings, digest: str) -> CompiledBinary:
    """The binary a run executes, from the immutable copy named by its SHA-256 ``digest``."""
    return _binary(binary_storage(settings), digest)
