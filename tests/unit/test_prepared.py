"""Prepared statements (shared/store/prepared.py) on SQLite and PostgreSQL: the same values go in
and come out as through SQLAlchemy's own execution, and errors look the same."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, exc, insert, select, update

from shared.store.db import connection_scope, session_scope
from shared.store.models import Job, JobFile, User
from shared.store.prepared import Prepared, one_of

_files = JobFile.__table__
_jobs = Job.__table__
WHEN = datetime(2026, 11, 22, 10, 30, 0, tzinfo=UTC)  # whole seconds: the format's edge case


def make_job(url: str) -> None:
    with session_scope(url) as session:
        user = User(username="dana")
        session.add(user)
        session.flush()
        session.add(
            Job(
                id="job-p",
                owner_id=user.id,
                kind="flow",
                status="running",
                trace_id="t",
                settings={"a": [1, "b"]},
            )
        )
        session.add(JobFile(job_id="job-p", file_index=0, file_name="in.txt"))


CLAIM = Prepared(
    update(_files)
    .where(
        _files.c.job_id == bindparam("job_id"),
        _files.c.status == "pending",
        select(_jobs.c.id)
        .where(_jobs.c.id == bindparam("job_id"), one_of(_jobs.c.status, ["queued", "running"]))
        .exists(),
    )
    .values(
        attempts=_files.c.attempts + 1,
        claimed_until=bindparam("until", type_=_files.c.claimed_until.type),
        error_counts=bindparam("counts", type_=_files.c.error_counts.type),
        next_task_id=None,
        updated_at=bindparam("until", type_=_files.c.updated_at.type),
    )
    .returning(_files.c.file_name, _files.c.attempts, _files.c.claimed_until, _files.c.error_counts)
)


def test_parameters_and_results_go_through_the_column_types(store_url):
    make_job(store_url)
    with connection_scope(store_url) as conn:
        row = CLAIM.first(conn, {"job_id": "job-p", "until": WHEN, "counts": {"Error <x>": 2}})
    assert row.file_name == "in.txt" and row[0] == "in.txt"
    assert row.attempts == 1  # the statement's own constant 1
    assert row.claimed_until == WHEN and row.claimed_until.tzinfo is not None
    assert row.error_counts == {"Error <x>": 2}
    # What SQLAlchemy reads back through the ORM is the same.
    with session_scope(store_url, read_only=True) as session:
        stored = session.scalars(select(JobFile)).one()
    assert stored.claimed_until == WHEN
    assert stored.error_counts == {"Error <x>": 2}
    assert stored.next_task_id is None


def test_a_statement_that_matches_nothing_returns_none(store_url):
    make_job(store_url)
    with connection_scope(store_url) as conn:
        assert CLAIM.first(conn, {"job_id": "no-such-job", "until": WHEN, "counts": {}}) is None


def test_selects_return_named_rows(store_url):
    make_job(store_url)
    query = Prepared(
        select(_jobs.c.id, _jobs.c.settings).where(
            one_of(_jobs.c.status, ["running", "it's quoted"])
        )
    )
    with connection_scope(store_url, read_only=True) as conn:
        rows = query.all(conn, {})
    assert [(row.id, row.settings) for row in rows] == [("job-p", {"a": [1, "b"]})]


def test_driver_errors_are_raised_as_sqlalchemy_errors(store_url):
    make_job(store_url)
    add_user = Prepared(
        insert(User.__table__).values(
            username=bindparam("name"),
            uuid=bindparam("uuid"),
            is_admin=False,
            created_at=bindparam("at", type_=User.__table__.c.created_at.type),
        )
    )
    with pytest.raises(exc.IntegrityError), connection_scope(store_url) as conn:
        add_user.execute(conn, {"name": "dana", "uuid": "u-dana-2", "at": WHEN})
    with connection_scope(store_url) as conn:  # the connection is usable afterwards
        add_user.execute(conn, {"name": "erin", "uuid": "u-erin", "at": WHEN})
        add_user.execute(
            conn, {"name": "finn", "uuid": "u-finn", "at": WHEN + timedelta(seconds=1)}
        )
    with session_scope(store_url, read_only=True) as session:
        names = session.scalars(select(User.username).order_by(User.username)).all()
    assert names == ["dana", "erin", "finn"]


def test_statements_that_need_execution_time_work_are_refused(store_url):
    with connection_scope(store_url) as conn:
        # updated_at has an onupdate default that a prepared statement would not run.
        with pytest.raises(ValueError, match="pass a value for updated_at"):
            Prepared(update(_files).values(attempts=0)).execute(conn, {})
        with pytest.raises(ValueError, match="use one_of"):
            Prepared(select(_jobs.c.id).where(_jobs.c.status.in_(["a", "b"]))).all(conn, {})
