"""Stalled-step recovery and "is a step of the job running" read the partial indexes of claimed
and unsent files (migration 0011), a few rows whatever the store keeps, not job_files: on both
stores, by their plans. Beat's recovery once scanned all of job_files every minute (394-503 ms
at 2M rows). PostgreSQL is asked with sequential scans off, as in test_statement_plans.py: on
tables this small it would otherwise scan anyway."""

import enum
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared.engine.recovery import stalled_files, stalled_of_runnable_jobs
from shared.store.db import connection_scope
from shared.store.models import JobFile, claimed_file
from tests.unit.test_statement_plans import scans

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PARTIAL = ("ix_job_files_claimed", "ix_job_files_unsent")


def plan(url: str, statement) -> list[str]:
    with connection_scope(url) as conn:
        compiled = statement.compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        values = {
            name: value.value if isinstance(value, enum.Enum) else value
            for name, value in compiled.params.items()
        }
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + compiled.string, values)
        else:
            params = tuple(values[name] for name in compiled.positiontup)
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params)
        return [str(row[-1]) for row in rows]


def file_scans(lines: list[str]) -> list[str]:
    """The plan's reads of job_files other than by one of its partial indexes (which hold the
    few files of one kind: reading all of one is the point)."""
    return [
        line
        for line in scans(lines)
        if "job_files" in line and not any(index in line for index in PARTIAL)
    ]


@pytest.mark.parametrize(
    ("name", "index"),
    [("lapsed claims", "ix_job_files_claimed"), ("unsent", "ix_job_files_unsent")],
)
def test_recovery_reads_the_index_of_its_kind_of_file(store_url, name, index):
    lapsed, unsent = stalled_files(NOW)
    kind = {"lapsed claims": lapsed, "unsent": unsent}[name]
    lines = plan(store_url, stalled_of_runnable_jobs(kind).limit(500))
    assert any(index in line for line in lines), "\n".join(lines)
    assert not file_scans(lines), "\n".join(lines)


def test_running_steps_read_the_index_of_claimed_files(store_url):
    # As shared/jobs/summary.py jobs_with_running_steps reads them.
    statement = select(JobFile.job_id).where(claimed_file(), JobFile.claimed_until > NOW)
    lines = plan(store_url, statement)
    assert any("ix_job_files_claimed" in line for line in lines), "\n".join(lines)
    assert not file_scans(lines), "\n".join(lines)
