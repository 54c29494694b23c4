"""Migration 0008 (the resource API's job columns) on a store with jobs in it, on SQLite and
PostgreSQL: existing jobs get empty metadata and no desired status, error limit or last change,
their files, tags and logs stay (the jobs table is altered in place, never rebuilt, which would
cascade into them); new jobs get the defaults; a downgrade to 0007 and a second upgrade keep it
all."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, func, select

from shared.accounts.users import create_user
from shared.store.db import engine_for, session_scope
from shared.store.migrate import downgrade, upgrade
from shared.store.models import Job
from tests.conftest import BACKENDS, fresh_database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHILDREN = ("job_files", "job_tags", "job_logs")


def tables_of(conn) -> dict:
    metadata = MetaData()
    metadata.reflect(conn)
    return metadata.tables


def seed(url: str) -> None:
    """A user with a job, a file, a tag and a log line, written with 0007's tables."""
    with engine_for(url).begin() as conn:
        t = tables_of(conn)
        assert "metadata" not in t["jobs"].c
        conn.execute(
            t["users"].insert(),
            {"id": 21, "username": "old", "is_admin": False, "created_at": NOW},
        )
        conn.execute(
            t["jobs"].insert(),
            {
                "id": "old-job",
                "owner_id": 21,
                "kind": "flow",
                "status": "complete",
                "message": "Done",
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
                "num_files": 1,
                "num_steps": 1,
                "files_done": 1,
                "reviewer": "",
                "review_state": "NONE",
                "created_at": NOW,
            },
        )
        conn.execute(
            t["job_files"].insert(),
            {"job_id": "old-job", "file_index": 0, "file_name": "a.txt", "status": "complete"}
            | {"next_step": 1, "attempts": 1, "num_records": 2, "num_errors": 0}
            | {"num_checkpoint_failed": 0, "num_filtered": 0, "error_counts": {}}
            | {"updated_at": NOW},
        )
        conn.execute(t["job_tags"].insert(), {"job_id": "old-job", "tag": "kept"})
        conn.execute(
            t["job_logs"].insert(),
            {"job_id": "old-job", "task_id": "", "level": "INFO", "ts": NOW}
            | {"trace_id": "", "span_id": "", "message": "kept"},
        )


@pytest.fixture(params=BACKENDS)
def old_store(request, tmp_path) -> str:
    url = fresh_database(request.param, tmp_path, schema="migration_resource_api")
    upgrade(url, "0007")
    seed(url)
    return url


def children_of(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        t = tables_of(conn)
        return {
            name: conn.scalar(select(func.count()).where(t[name].c.job_id == "old-job"))
            for name in CHILDREN
        }


def test_old_jobs_get_the_defaults_and_keep_their_rows(old_store):
    upgrade(old_store)
    assert children_of(old_store) == dict.fromkeys(CHILDREN, 1)
    with session_scope(old_store, read_only=True) as session:
        job = session.get(Job, "old-job")
        assert job.job_metadata == {}
        assert job.desired_execution_status is None and job.max_parse_exceptions is None
        assert job.last_modified_by is None and job.updated_at is None

    with session_scope(old_store) as session:
        user = create_user(session, "new")
        session.add(
            Job(
                id="new-job",
                owner_id=user.id,
                kind="compile",
                status="queued",
                trace_id="t",
                last_modified_by=user.id,
            )
        )
    with session_scope(old_store, read_only=True) as session:
        assert session.get(Job, "new-job").job_metadata == {}

    downgrade(old_store, "0007")
    with engine_for(old_store).connect() as conn:
        assert "metadata" not in tables_of(conn)["jobs"].c
    assert children_of(old_store) == dict.fromkeys(CHILDREN, 1)
    upgrade(old_store)
    assert children_of(old_store) == dict.fromkeys(CHILDREN, 1)
    with session_scope(old_store, read_only=True) as session:
        assert session.get(Job, "old-job").job_metadata == {}
