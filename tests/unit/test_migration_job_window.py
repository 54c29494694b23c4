"""Migration 0012 (jobs.inputs_pending and the index of files waiting for a place in their job's
window) on a store with jobs in it, on SQLite and PostgreSQL: the jobs table is altered in
place, so every job keeps its files, tags and logs; no job is being listed and no file waits;
a downgrade to 0011 and a second upgrade keep it all."""

import pytest
from sqlalchemy import inspect, select

from shared.store.db import engine_for, session_scope
from shared.store.migrate import downgrade, upgrade
from shared.store.models import Job, JobFile
from tests.conftest import BACKENDS, fresh_database
from tests.unit.test_migration_error_budget import KEPT, children_of, seed, tables_of


@pytest.fixture(params=BACKENDS)
def store_at_0011(request, tmp_path) -> str:
    url = fresh_database(request.param, tmp_path, schema="migration_job_window")
    upgrade(url, "0008")
    seed(url)
    upgrade(url, "0011")
    return url


def waiting_index(url: str) -> list[str]:
    with engine_for(url).connect() as conn:
        return [
            index["name"]
            for index in inspect(conn).get_indexes("job_files")
            if index["name"] == "ix_job_files_waiting"
        ]


def test_jobs_keep_their_files_and_none_is_listed_or_waits(store_at_0011):
    upgrade(store_at_0011)
    assert children_of(store_at_0011) == KEPT
    assert waiting_index(store_at_0011) == ["ix_job_files_waiting"]
    with session_scope(store_at_0011, read_only=True) as session:
        assert session.scalars(select(Job.inputs_pending).order_by(Job.id)).all() == [False] * 2
        tokens = session.scalars(select(JobFile.next_task_id)).all()
    assert len(tokens) == 4 and "" not in tokens

    downgrade(store_at_0011, "0011")
    with engine_for(store_at_0011).connect() as conn:
        assert "inputs_pending" not in tables_of(conn)["jobs"].c
    assert waiting_index(store_at_0011) == []
    assert children_of(store_at_0011) == KEPT

    upgrade(store_at_0011)
    assert children_of(store_at_0011) == KEPT
    assert waiting_index(store_at_0011) == ["ix_job_files_waiting"]
