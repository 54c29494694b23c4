"""Migration 0009 (a job's running count of record errors, and when its desired status was
recorded) on a store with jobs in it, on SQLite and PostgreSQL: a job with a maxParseExceptions
starts from the errors its files recorded, every other job from 0; a desired status set
through the resource API takes that change's time; files, tags and logs stay (the jobs table
is altered in place); a downgrade to 0008 and a second upgrade keep it all."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, func, select

from shared.store.db import engine_for, session_scope
from shared.store.migrate import downgrade, upgrade
from shared.store.models import Job
from tests.conftest import BACKENDS, fresh_database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHANGED = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
CHILDREN = ("job_files", "job_tags", "job_logs")
KEPT = {"job_files": 3, "job_tags": 1, "job_logs": 1}


def tables_of(conn) -> dict:
    metadata = MetaData()
    metadata.reflect(conn)
    return metadata.tables


def job_row(job_id: str, **extra) -> dict:
    return {
        "id": job_id,
        "owner_id": 31,
        "kind": "flow",
        "status": "running",
        "message": "Running",
        "flow_type": "single_flow",
        "binary_path": "old/flow.ibflowbin",
        "binary_hash": "h" * 64,
        "input_dir": "old/in",
        "output_dir": "old/out",
        "settings": {},
        "priority": 0,
        "step_timeout": 0,
        "log_prefix": "",
        "log_to_timeline": False,
        "trace_id": "t" * 16,
        "num_files": 3,
        "num_steps": 2,
        "files_done": 2,
        "reviewer": "",
        "review_state": "NONE",
        "created_at": NOW,
        "max_parse_exceptions": None,
        "desired_execution_status": None,
        "updated_at": None,
        **extra,
    }


def file_row(job_id: str, index: int, status: str, errors: int) -> dict:
    return (
        {"job_id": job_id, "file_index": index, "file_name": f"{index}.txt", "status": status}
        | {"next_step": 2, "attempts": 0, "num_records": 3, "num_errors": errors}
        | {"num_checkpoint_failed": 0, "num_filtered": 0, "error_counts": {}}
        | {"updated_at": NOW}
    )


def seed(url: str) -> None:
    """Two running jobs, written with 0008's tables: ``limited`` with a maxParseExceptions and
    files that recorded 2 and 1 errors (and a pending one), ``steered`` without a limit, its
    desired status set through the resource API."""
    with engine_for(url).begin() as conn:
        t = tables_of(conn)
        assert "num_record_errors" not in t["jobs"].c
        conn.execute(
            t["users"].insert(),
            {"id": 31, "username": "old", "is_admin": False, "created_at": NOW},
        )
        conn.execute(
            t["jobs"].insert(),
            [
                job_row("limited", max_parse_exceptions=5),
                job_row("steered", desired_execution_status="suspended", updated_at=CHANGED),
            ],
        )
        conn.execute(
            t["job_files"].insert(),
            [
                file_row("limited", 0, "complete", 2),
                file_row("limited", 1, "failed", 1),
                file_row("limited", 2, "pending", 0),
                file_row("steered", 0, "complete", 4),
            ],
        )
        conn.execute(t["job_tags"].insert(), {"job_id": "limited", "tag": "kept"})
        conn.execute(
            t["job_logs"].insert(),
            {"job_id": "limited", "task_id": "", "level": "INFO", "ts": NOW}
            | {"trace_id": "", "span_id": "", "message": "kept"},
        )


@pytest.fixture(params=BACKENDS)
def old_store(request, tmp_path) -> str:
    url = fresh_database(request.param, tmp_path, schema="migration_error_budget")
    upgrade(url, "0008")
    seed(url)
    return url


def children_of(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        t = tables_of(conn)
        return {
            name: conn.scalar(select(func.count()).where(t[name].c.job_id == "limited"))
            for name in CHILDREN
        }


def columns_of(url: str) -> dict[str, tuple]:
    with session_scope(url, read_only=True) as session:
        return {
            job.id: (job.num_record_errors, job.desired_at)
            for job in session.scalars(select(Job).order_by(Job.id))
        }


def test_old_jobs_start_from_their_recorded_errors_and_keep_their_rows(old_store):
    upgrade(old_store)
    assert children_of(old_store) == KEPT
    assert columns_of(old_store) == {"limited": (3, None), "steered": (0, CHANGED)}

    downgrade(old_store, "0008")
    with engine_for(old_store).connect() as conn:
        assert "num_record_errors" not in tables_of(conn)["jobs"].c
    assert children_of(old_store) == KEPT
    upgrade(old_store)
    assert children_of(old_store) == KEPT
    assert columns_of(old_store) == {"limited": (3, None), "steered": (0, CHANGED)}
