"""``among``: a column among a request's list of values, on both stores. On PostgreSQL the list
is one array parameter, so the statement's text is the same for any number of values, and its
rows are still found by index."""

from __future__ import annotations

from sqlalchemy import insert, select, text

from shared.accounts.users import create_user
from shared.store.db import connection_scope, session_scope
from shared.store.models import Job, JobTag
from shared.store.sets import among

JOBS = 1200


def make_tagged_jobs(url: str) -> None:
    with session_scope(url) as session:
        owner = create_user(session, "carol").id
        session.execute(
            insert(Job),
            [
                {
                    "id": f"job-{n:04d}",
                    "owner_id": owner,
                    "kind": "flow",
                    "status": "complete",
                    "trace_id": "t",
                }
                for n in range(JOBS)
            ],
        )
        session.execute(
            insert(JobTag), [{"job_id": f"job-{n:04d}", "tag": f"t{n % 3}"} for n in range(JOBS)]
        )


def tagged(url: str, ids: list[str]) -> list[tuple[str, str]]:
    with session_scope(url, read_only=True) as session:
        query = select(JobTag.job_id, JobTag.tag).where(among(session, JobTag.job_id, ids))
        return sorted(session.execute(query).all())


def test_among_finds_the_rows_of_the_listed_values(store_url):
    make_tagged_jobs(store_url)
    ids = [f"job-{n:04d}" for n in range(0, JOBS, 7)]
    assert tagged(store_url, ids) == [(job_id, f"t{int(job_id[4:]) % 3}") for job_id in ids]
    assert tagged(store_url, []) == []
    assert tagged(store_url, ["job-0001", "no-such-job", "job-0001"]) == [("job-0001", "t1")]
    with session_scope(store_url, read_only=True) as session:  # an integer column too
        owner = session.scalar(select(Job.owner_id).limit(1))
        assert session.scalars(select(Job.id).where(among(session, Job.owner_id, [owner]))).all()


def test_on_postgresql_one_statement_serves_any_number_of_values(postgresql_store):
    make_tagged_jobs(postgresql_store)
    with connection_scope(postgresql_store, read_only=True) as conn:

        def sql(ids: list[str]) -> str:
            query = select(JobTag.tag).where(among(conn, JobTag.job_id, ids))
            return str(query.compile(conn))

        assert sql(["job-0001"]) == sql([f"job-{n:04d}" for n in range(1000)])
        assert len(sql([f"job-{n:04d}" for n in range(1000)])) < 300
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        query = select(JobTag.tag).where(among(conn, JobTag.job_id, ["job-0001", "job-0002"]))
        compiled = query.compile(conn)
        plan = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars().all()
    assert not [line for line in plan if "Seq Scan" in line], "\n".join(plan)
