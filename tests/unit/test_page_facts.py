"""A page of jobs/list reads its jobs' owners, totals, review counts and running steps in one
statement (shared/jobs/page_facts.py), and says of each job what the per-job reads say; its
tags and pipelines in another (shared/jobs/listing.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from shared.jobs.job_status import job_status
from shared.jobs.listing import tags_and_pipelines_of
from shared.jobs.page_facts import page_facts
from shared.jobs.store import set_tags, tags_of
from shared.states import JobStatus
from shared.store.db import engine_for, session_scope, statement_session
from shared.store.models import Job, JobPipeline, JobStepCount
from tests.unit.test_job_status_read import principal_of, stopped_job


def more_jobs(url: str) -> None:
    """Beside ``stopped_job``'s: a running flow job of olive's with no shards and no reviews,
    and a compile job of stranger's."""
    with session_scope(url) as session:
        olive, stranger = principal_of(session, "olive"), principal_of(session, "stranger")
        session.add_all(
            [
                Job(
                    id="job-2",
                    owner_id=olive.user_id,
                    kind="flow",
                    status=JobStatus.RUNNING.value,
                    trace_id="t2",
                    num_files=1,
                    num_steps=2,
                    steps_done=1,
                ),
                Job(
                    id="job-3",
                    owner_id=stranger.user_id,
                    kind="compile",
                    status=JobStatus.COMPLETE.value,
                    trace_id="t3",
                    finished_at=datetime.now(UTC),
                ),
            ]
        )
        session.flush()
        session.add(JobStepCount(job_id="job-3", shard=1, steps_done=0, filtered=0))


@pytest.mark.parametrize("claim_lasts", [True, False], ids=["claim-lasts", "claim-lapsed"])
def test_it_says_of_each_job_what_its_status_read_says(store_url, claim_lasts):
    now = datetime.now(UTC)
    stopped_job(store_url, now + timedelta(minutes=5) if claim_lasts else now)
    more_jobs(store_url)
    ids = ["job-1", "job-2", "job-3"]
    with session_scope(store_url, read_only=True) as session:
        jobs = [session.get(Job, job_id) for job_id in ids]
        facts = page_facts(session, jobs)
    assert set(facts) == set(ids)
    with statement_session(store_url) as session:
        admin = principal_of(session, "olive")
        for job_id in ["job-1", "job-2"]:
            read = job_status(session, admin, job_id)
            assert facts[job_id].status.summary == read.summary
            assert facts[job_id].status.review_metrics == read.review_metrics
            assert facts[job_id].status.steps_running is read.steps_running
    assert facts["job-1"].status.review_metrics == {"reviewed": 2, "pending": 2}
    assert facts["job-1"].status.steps_running is claim_lasts
    assert facts["job-2"].status.review_metrics == {"reviewed": 0, "pending": 0}
    assert facts["job-3"].status.review_metrics is None  # a compile job never stops at a checkpoint
    assert [facts[job_id].owner for job_id in ids] == ["olive", "olive", "stranger"]


def test_it_is_one_statement_for_the_page(store_url):
    stopped_job(store_url, datetime.now(UTC))
    more_jobs(store_url)
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with session_scope(store_url, read_only=True) as session:
        jobs = [session.get(Job, job_id) for job_id in ["job-1", "job-2", "job-3"]]
        event.listen(engine_for(store_url), "before_cursor_execute", count)
        try:
            page_facts(session, jobs)
        finally:
            event.remove(engine_for(store_url), "before_cursor_execute", count)
        assert page_facts(session, []) == {}
    assert len(statements) == 1, statements


def test_a_page_reads_its_tags_and_pipelines_in_one_statement(store_url):
    stopped_job(store_url, datetime.now(UTC))
    more_jobs(store_url)
    with session_scope(store_url) as session:
        set_tags(session, "job-1", ["zeta", "Alpha", "mid"])
        set_tags(session, "job-3", ["only"])
        session.add_all(
            [JobPipeline(job_id="job-1", pipeline_id=name) for name in ("p2", "p10", "p1")]
        )
    ids = ["job-1", "job-2", "job-3"]
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with session_scope(store_url, read_only=True) as session:
        event.listen(engine_for(store_url), "before_cursor_execute", count)
        try:
            tags, pipelines = tags_and_pipelines_of(session, ids)
        finally:
            event.remove(engine_for(store_url), "before_cursor_execute", count)
        # In the order the job's own tag reads give them (the database's, by tag).
        assert tags == tags_of(session, ids)
        assert tags_and_pipelines_of(session, []) == ({}, {})
    assert len(statements) == 1, statements
    assert tags["job-3"] == ["only"] and tags["job-2"] == []
    assert sorted(tags["job-1"]) == ["Alpha", "mid", "zeta"]
    assert pipelines == {"job-1": ["p1", "p10", "p2"], "job-2": [], "job-3": []}
