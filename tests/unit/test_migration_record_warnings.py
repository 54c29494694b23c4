"""Migration 0010 (job_files.num_warnings) on a store with jobs in it, on SQLite and
PostgreSQL: the files stay, each counting 0 warnings; a downgrade to 0009 and a second upgrade
keep them."""

import pytest
from sqlalchemy import select

from shared.store.db import engine_for, session_scope
from shared.store.migrate import downgrade, upgrade
from shared.store.models import JobFile
from tests.conftest import BACKENDS, fresh_database
from tests.unit.test_migration_error_budget import KEPT, children_of, seed, tables_of


@pytest.fixture(params=BACKENDS)
def store_at_0009(request, tmp_path) -> str:
    url = fresh_database(request.param, tmp_path, schema="migration_record_warnings")
    upgrade(url, "0008")
    seed(url)
    upgrade(url, "0009")
    return url


def warnings_of(url: str) -> list[tuple[str, int, int]]:
    with session_scope(url, read_only=True) as session:
        return [
            (row.job_id, row.file_index, row.num_warnings)
            for row in session.scalars(select(JobFile).order_by(JobFile.job_id, JobFile.file_index))
        ]


def test_old_files_count_no_warnings_and_stay(store_at_0009):
    upgrade(store_at_0009)
    assert children_of(store_at_0009) == KEPT
    assert warnings_of(store_at_0009) == [
        ("limited", 0, 0),
        ("limited", 1, 0),
        ("limited", 2, 0),
        ("steered", 0, 0),
    ]
    downgrade(store_at_0009, "0009")
    with engine_for(store_at_0009).connect() as conn:
        assert "num_warnings" not in tables_of(conn)["job_files"].c
    assert children_of(store_at_0009) == KEPT
    upgrade(store_at_0009)
    assert len(warnings_of(store_at_0009)) == 4
