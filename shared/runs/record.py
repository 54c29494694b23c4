"""Recording a submitted run: the INSERTs of the job with its files, tags, pipelines and
collaborators, all or nothing. The ORM's unit of work costs more than the rows, so these are
Core inserts; on PostgreSQL a small run is one prepared statement."""

from __future__ import annotations

import enum
import functools

from psycopg.types.json import Json
from sqlalchemy import Column, Connection, Table, bindparam, insert

from shared.jobs.store import add_tags
from shared.store.db import connection_scope, statement_scope
from shared.store.models import Job, JobFile, JobPipeline, JobShare, with_defaults
from shared.store.prepared import Prepared

_INSERT_JOB = insert(Job.__table__)
_INSERT_FILES = insert(JobFile.__table__)
# Up to this many files, a run without tags or pipelines is recorded in one prepared statement
# on PostgreSQL (record_run); a larger one in a transaction of plain inserts.
ONE_STATEMENT_FILES = 32


def record_run(
    url: str,
    job_row: dict,
    file_rows: list[dict],
    tags: list[str],
    pipelines: list[dict],
    shares: list[dict] = (),
) -> None:
    """Insert the job with its files, tags, pipelines and shares, all or nothing."""
    if (
        url.startswith("postgresql")
        and 0 < len(file_rows) <= ONE_STATEMENT_FILES
        and not tags
        and not pipelines
        and not shares
    ):
        # One statement is atomic: it runs in autocommit, one round trip instead of four.
        with statement_scope(url) as conn:
            _insert_run(len(file_rows)).execute(conn, _insert_run_params(job_row, file_rows))
        return
    # Core inserts: the ORM's unit of work costs more than the rows, on every run submitted.
    with connection_scope(url) as conn:
        conn.execute(_INSERT_JOB, job_row)
        # None for a big folder, which a worker lists (shared/runs/input_listing.py).
        insert_files(conn, file_rows)
        add_tags(conn, job_row["id"], tags)
        if pipelines:
            conn.execute(insert(JobPipeline.__table__), pipelines)
        if shares:
            conn.execute(insert(JobShare.__table__), shares)


def insert_files(conn: Connection, file_rows: list[dict]) -> None:
    """Insert a run's file rows in the caller's transaction: on PostgreSQL with COPY (a
    thousand rows in about a fifth of the time of batched multi-row INSERTs, whose parameters
    SQLAlchemy processes one by one), elsewhere as one executemany."""
    if not file_rows:
        return
    if conn.dialect.name != "postgresql" or len(file_rows) <= ONE_STATEMENT_FILES:
        conn.execute(_INSERT_FILES, file_rows)
        return
    names = ", ".join(column.name for column in _FILE_COLUMNS)
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY {JobFile.__tablename__} ({names}) FROM STDIN") as copy:
            for row in with_defaults(JobFile, file_rows):
                copy.write_row([_copied(row.get(column.key)) for column in _FILE_COLUMNS])
    finally:
        cursor.close()


def _copied(value):
    """A value as COPY takes it: an enum as its stored value, JSON as JSON."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict | list):
        return Json(value)
    return value


def _given(table: Table) -> list[Column]:
    """The columns an INSERT of ``table`` gives a value: all but an autoincrement key."""
    return [column for column in table.columns if column is not table.autoincrement_column]


_JOB_COLUMNS = _given(Job.__table__)
_FILE_COLUMNS = _given(JobFile.__table__)


@functools.cache
def _insert_run(files: int) -> Prepared:
    """PostgreSQL: the INSERT of a job and its ``files`` files as one prepared statement (the
    job's INSERT in its WITH), with the parameters of ``_insert_run_params``."""
    job = insert(Job.__table__).values(
        {column.key: bindparam(f"job_{column.key}", type_=column.type) for column in _JOB_COLUMNS}
    )
    rows = [
        {
            column.key: bindparam(f"file{number}_{column.key}", type_=column.type)
            for column in _FILE_COLUMNS
        }
        for number in range(files)
    ]
    return Prepared(insert(JobFile.__table__).values(rows).add_cte(job.cte("new_job")))


def _insert_run_params(job_row: dict, file_rows: list[dict]) -> dict:
    # Every column is a parameter: a prepared statement fills no defaults (store/prepared.py).
    [job] = with_defaults(Job, [job_row])
    params = {f"job_{column.key}": job.get(column.key) for column in _JOB_COLUMNS}
    for number, row in enumerate(with_defaults(JobFile, file_rows)):
        params.update(
            {f"file{number}_{column.key}": row.get(column.key) for column in _FILE_COLUMNS}
        )
    return params
