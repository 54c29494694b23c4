"""Migration 0011 (a job's file totals kept on its row, and its step counts' shards; the
claimed and unsent files' partial indexes; the listing's indexes with the id; a trigram index on
PostgreSQL) on a store with jobs and files in it, on SQLite and PostgreSQL: each job starts from
what its files add up to, the files, tags and logs stay; a downgrade to 0010 and a second
upgrade keep them."""

import pytest
from sqlalchemy import inspect, select, text

from shared.jobs.counters import JobCounters, totals_from_files
from shared.store.db import engine_for, session_scope
from shared.store.migrate import downgrade, upgrade
from shared.store.models import Job
from tests.conftest import BACKENDS, fresh_database
from tests.unit.test_migration_error_budget import KEPT, children_of, seed, tables_of

NEW_INDEXES = {"ix_job_files_claimed", "ix_job_files_unsent"}


@pytest.fixture(params=BACKENDS)
def store_at_0010(request, tmp_path) -> str:
    url = fresh_database(request.param, tmp_path, schema="migration_job_counters")
    upgrade(url, "0008")
    seed(url)
    upgrade(url, "0010")
    with engine_for(url).begin() as conn:
        # Error messages as the files recorded them, and warnings 0010 would have counted.
        conn.execute(
            text(
                "UPDATE job_files SET error_counts = :counts, num_warnings = 1, num_filtered = 2 "
                "WHERE job_id = 'limited' AND file_index = 0"
            ),
            {"counts": '{"bad total": 2}'},
        )
        conn.execute(
            text(
                "UPDATE job_files SET error_counts = :counts "
                "WHERE job_id = 'limited' AND file_index = 1"
            ),
            {"counts": '{"bad total": 1}'},
        )
    return url


def kept(url: str) -> dict[str, tuple[JobCounters, dict]]:
    # Read with 0011's columns only: the models may be ahead of this revision.
    c = Job.__table__.c
    columns = [c.id, c.total_records, c.total_errors, c.total_filtered]
    columns += [c.total_checkpoint_failed, c.steps_done, c.total_warnings, c.error_counts]
    with engine_for(url).connect() as conn:
        return {
            row[0]: (JobCounters(*row[1:7]), dict(row[7]))
            for row in conn.execute(select(*columns).order_by(c.id))
        }


def indexes_of(url: str) -> set[str]:
    with engine_for(url).connect() as conn:
        found = {index["name"] for index in inspect(conn).get_indexes("job_files")}
        return found | {index["name"] for index in inspect(conn).get_indexes("jobs")}


def test_old_jobs_start_from_their_files_totals_and_keep_their_rows(store_at_0010):
    url = store_at_0010
    upgrade(url, "0011")
    assert children_of(url) == KEPT
    # limited: 3 files of 3 records, 2 steps each (the pending one at its last); steered: 1.
    expected = {
        "limited": (JobCounters(9, 3, 2, 0, 6, 1), {"bad total": 3}),
        "steered": (JobCounters(3, 4, 0, 0, 2, 0), {}),
    }
    assert kept(url) == expected
    with session_scope(url, read_only=True) as session:
        reference = totals_from_files(session, ["limited", "steered"])
    assert reference == expected
    assert indexes_of(url) >= NEW_INDEXES
    with engine_for(url).connect() as conn:
        assert "job_step_counts" in tables_of(conn)
    assert ("ix_jobs_id_trgm" in indexes_of(url)) == url.startswith("postgresql")

    downgrade(url, "0010")
    with engine_for(url).connect() as conn:
        assert "steps_done" not in tables_of(conn)["jobs"].c
        assert "job_step_counts" not in tables_of(conn)
    assert not NEW_INDEXES & indexes_of(url)
    assert children_of(url) == KEPT
    upgrade(url, "0011")
    assert children_of(url) == KEPT
    assert kept(url) == expected
