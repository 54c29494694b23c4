"""The job listing's statements are never served by a generic cached plan on PostgreSQL, and its
filters and pages read indexes on both stores.

psycopg prepares a statement once it has run a few times on a connection, and PostgreSQL may
then plan it once for any parameters: for a listing, a plan that sorts every job, whatever the
offset or filter (a first page once took 382 ms instead of 11 ms after ten deep pages on one
pooled connection). ``custom_plans`` (shared/store/db.py) plans each run for its own parameters;
PostgreSQL counts which kind of plan each prepared statement got (pg_prepared_statements).
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared.accounts.principal import Principal
from shared.jobs.listing import Cursor, JobFilter, list_jobs
from shared.store.db import custom_plans, session_scope
from shared.store.migrate import upgrade
from shared.store.models import Job
from tests.conftest import fresh_database

ADMIN = Principal(user_id=1, username="admin", is_admin=True)
RUNS = 15  # psycopg prepares after 5; PostgreSQL weighs a generic plan after 5 more


@pytest.fixture
def postgresql_store(tmp_path) -> str:
    url = fresh_database("postgresql", tmp_path, schema="listing_plans")
    upgrade(url)
    with session_scope(url) as session:
        session.execute(
            text(
                "INSERT INTO users (id, username, is_admin, created_at) "
                "VALUES (1, 'admin', true, now())"
            )
        )
        now = datetime.now(UTC)
        session.add_all(
            Job(
                id=f"job-{number:04d}",
                owner_id=1,
                kind="flow",
                status="complete",
                trace_id="t",
                created_at=now - timedelta(minutes=number),
            )
            for number in range(300)
        )
    return url


def plans_of_listing(session) -> list[tuple[int, int]]:
    """(generic, custom) plans of each prepared statement that lists jobs on this connection."""
    return [
        (generic, custom)
        for generic, custom in session.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT jobs.id%ORDER BY jobs.created_at DESC%'"
            )
        )
    ]


def test_listing_pages_are_planned_for_their_own_parameters(postgresql_store):
    now = datetime.now(UTC)
    with session_scope(postgresql_store, read_only=True) as session:
        custom_plans(session)
        for run in range(RUNS):
            wanted = JobFilter(now - timedelta(days=7), now, offset=200 + run, states=("COMPLETE",))
            page, more = list_jobs(session, ADMIN, wanted)
            assert len(page) == 20 and more
        # And keyset pages: a cursor deep in the list, then the first page.
        after = Cursor(page[-1].created_at, page[-1].id)
        for _ in range(RUNS):
            deep, _ = list_jobs(
                session, ADMIN, JobFilter(now - timedelta(days=7), now, after=after)
            )
            assert deep[0].id == f"job-{int(page[-1].id[4:]) + 1:04d}"
        plans = plans_of_listing(session)
    assert plans, "psycopg prepared no listing statement: the test proves nothing"
    assert all(generic == 0 for generic, _ in plans), plans
    assert sum(custom for _, custom in plans) >= RUNS


def test_without_custom_plans_postgresql_would_reuse_a_generic_plan(postgresql_store):
    """The check above can fail: a connection told to prefer generic plans gets them."""
    now = datetime.now(UTC)
    with session_scope(postgresql_store, read_only=True) as session:
        session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        for run in range(RUNS):
            list_jobs(session, ADMIN, JobFilter(now - timedelta(days=7), now, offset=run))
        plans = plans_of_listing(session)
    assert any(generic > 0 for generic, _ in plans), plans
