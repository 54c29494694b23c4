"""Job logs: lines that carry job id, task id, level, timestamp, trace id and span id.

A task collects its lines and writes them in the same transaction as the step's outcome, so a
step costs one write however much it logs, and a rolled-back step leaves no half story.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, column, insert, select, values
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Insert
from sqlalchemy.sql.elements import BindParameter

from shared.store.models import JobLog
from shared.store.prepared import Prepared

LOG_PAGE_SIZE = 1000
_COLUMNS = ("job_id", "task_id", "level", "ts", "trace_id", "span_id", "message")
# A step's lines go in one multi-row INSERT: PostgreSQL runs an executemany as one statement per
# row, and a step writes two to four lines (more when a UDF logs).
LINES_PER_INSERT = 32


def _line_binds(count: int) -> list[dict[str, BindParameter]]:
    """The bind parameters of ``count`` lines, named ``<column>_<line number>``."""
    columns = JobLog.__table__.c
    return [
        {name: bindparam(f"{name}_{number}", type_=columns[name].type) for name in _COLUMNS}
        for number in range(count)
    ]


@functools.cache
def _insert_lines(count: int) -> Prepared:
    """The INSERT of ``count`` lines, built once per count: a prepared statement
    (shared/store/prepared.py) with the parameters of ``line_params``."""
    return Prepared(insert(JobLog.__table__).values(_line_binds(count)))


def insert_lines_if(count: int, condition: ColumnElement[bool]) -> Insert:
    """An INSERT of ``count`` lines that inserts nothing unless ``condition`` holds, with the
    parameters of ``line_params``: for a PostgreSQL statement that writes the lines only if its
    own UPDATE changed a row (shared/engine/statements.py)."""
    lines = values(
        *[column(name, JobLog.__table__.c[name].type) for name in _COLUMNS], name="lines"
    ).data([tuple(row.values()) for row in _line_binds(count)])
    return insert(JobLog.__table__).from_select(list(_COLUMNS), select(lines).where(condition))


def line_params(lines: list[dict]) -> dict:
    """The parameters of an INSERT of ``lines`` (entries of a JobLogger)."""
    return {
        f"{name}_{number}": value
        for number, line in enumerate(lines)
        for name, value in line.items()
    }


@dataclass
class JobLogger:
    job_id: str
    task_id: str
    trace_id: str
    prefix: str = ""
    span_id: str = field(default_factory=lambda: secrets.token_hex(8))
    entries: list[dict] = field(default_factory=list)

    def log(self, level: str, message: str) -> None:
        self.entries.append(self.line(level, message))

    def line(self, level: str, message: str) -> dict:
        """A line of this logger, not collected: for a caller that writes it itself."""
        return {
            "job_id": self.job_id,
            "task_id": self.task_id,
            "level": level.upper(),
            "ts": datetime.now(UTC),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "message": f"{self.prefix}{message}",
        }

    def info(self, message: str) -> None:
        self.log("INFO", message)

    def warning(self, message: str) -> None:
        self.log("WARNING", message)

    def error(self, message: str) -> None:
        self.log("ERROR", message)

    def flush(self, session: Session) -> None:
        if self.entries and session.new:
            session.flush()  # the job row may still be pending in this session
        self.write(session.connection())

    def take(self) -> list[dict]:
        """The collected lines, for a caller that writes them in a statement of its own."""
        lines, self.entries = self.entries, []
        return lines

    def write(self, conn: Connection) -> None:
        """Insert the collected lines in ``conn``'s transaction (``write_lines``)."""
        write_lines(conn, self.entries)
        self.entries = []


def write_lines(conn: Connection, lines: list[dict]) -> None:
    """Insert ``lines`` (entries of a JobLogger) in ``conn``'s transaction: one statement for
    up to ``LINES_PER_INSERT`` of them."""
    for start in range(0, len(lines), LINES_PER_INSERT):
        part = lines[start : start + LINES_PER_INSERT]
        _insert_lines(len(part)).execute(conn, line_params(part))


def read_logs(
    session: Session,
    job_id: str,
    offset: int,
    limit: int = LOG_PAGE_SIZE,
    after_id: int | None = None,
) -> list[dict]:
    """A page of the job's lines, oldest first: ``offset`` lines after the line ``after_id``
    (a keyset position, read straight from the (job_id, id) index, so a page deep in a long
    log costs what the first does) or, without it, after the start. Each line has its ``id``,
    the ``after_id`` of the page that follows."""
    # Plain rows, not ORM objects: building a thousand objects cost more than the query.
    lines = JobLog.__table__.c
    query = select(
        lines.id, lines.job_id, lines.task_id, lines.level, lines.ts, lines.trace_id,
        lines.span_id, lines.message,
    ).where(lines.job_id == job_id)  # fmt: skip
    if after_id is not None:
        query = query.where(lines.id > after_id)
    # All rows in one fetch, unpacked as tuples: a fetch and attribute lookups a row took a
    # third of a 1,000-line page.
    rows = session.execute(query.order_by(lines.id).offset(offset).limit(limit)).all()
    return [
        {
            "id": line_id,
            "job_id": job,
            "task_id": task_id,
            "level": level,
            "ts": seed_timestamp(ts),
            "trace_id": trace_id,
            "span_id": span_id,
            "log": message,
        }
        for line_id, job, task_id, level, ts, trace_id, span_id, message in rows
    ]


def seed_timestamp(ts: datetime) -> str:
    """``ts`` as seed 000's logs show a time, in UTC."""
    # The seed's format: "2022-12-07 23:27:54,636" (UTC, milliseconds after a comma).
    # isoformat is C code: strftime took half as long again, for each of a page's 1,000 lines.
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    shown = ts.isoformat(" ", "milliseconds")  # then "+00:00" if the time is aware
    return f"{shown[:19]},{shown[20:23]}"
