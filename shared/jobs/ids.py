"""Ids of jobs, step messages and traces."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from shared.errors import Conflict, InvalidRequest
from shared.metrics import traceparent
from shared.store.db import connection_of
from shared.store.models import Job
from shared.store.prepared import Prepared

JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,50}$")


def new_job_id(requested: str | None) -> str:
    if requested is None or requested == "":
        return str(uuid.uuid4())
    if not isinstance(requested, str) or not JOB_ID.match(requested):
        raise InvalidRequest("job_id must be 1-50 characters of letters, digits, '.', '_' or '-'")
    return requested


def new_trace_id() -> str:
    """A new job's trace id (32 hex digits): the caller's, when its request sent a valid W3C
    ``traceparent``; else a fresh one."""
    return traceparent.trace_id_for_new_job()


_JOB_EXISTS = Prepared(
    select(Job.__table__.c.id).where(Job.__table__.c.id == bindparam("b_job_id"))
)


def ensure_job_id_free(store: Session | Connection, job_id: str) -> None:
    if _JOB_EXISTS.first(connection_of(store), {"b_job_id": job_id}) is not None:
        raise Conflict(f"a job with id {job_id!r} already exists: choose another job_id")


def new_task_id() -> str:
    """The id of a step message: also the fencing token the store expects for it."""
    return str(uuid.uuid4())
