"""Retention (shared/jobs/retention.py) on both stores: the jobs that ended before the cutoff go
with every row of theirs (files, logs, tags, pipelines, shares, deliveries and their attempts),
a batch at a time; a job still running, one stopped at a checkpoint, and one that ended since
stay whole; off (0 days), nothing goes."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shared.accounts.users import create_user
from shared.jobs import retention
from shared.states import JobStatus
from shared.store.db import session_scope
from shared.store.models import (
    Delivery,
    DeliveryAttempt,
    Job,
    JobFile,
    JobLog,
    JobPipeline,
    JobShare,
    JobTag,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHILDREN = (JobFile, JobLog, JobTag, JobPipeline, JobShare, Delivery)


def make_jobs(url: str) -> None:
    """Five old ended jobs, and three that stay: running, at a checkpoint, ended yesterday."""
    old = NOW - timedelta(days=40)
    jobs = {f"old-{n}": (JobStatus.COMPLETE, old) for n in range(3)}
    jobs |= {"old-failed": (JobStatus.FAILED, old), "old-cancelled": (JobStatus.CANCELLED, old)}
    jobs |= {
        "running": (JobStatus.RUNNING, None),
        "review": (JobStatus.STOPPED_AT_CHECKPOINT, old),
        "recent": (JobStatus.COMPLETE, NOW - timedelta(days=1)),
    }
    with session_scope(url) as session:
        owner = create_user(session, "rita")
        friend = create_user(session, "sam")
        for job_id, (status, finished) in jobs.items():
            session.add(
                Job(
                    id=job_id,
                    owner_id=owner.id,
                    kind="flow",
                    status=status,
                    trace_id="t",
                    created_at=old - timedelta(hours=1),
                    finished_at=finished,
                )
            )
        session.flush()
        for job_id in jobs:
            session.add_all(
                JobFile(job_id=job_id, file_index=n, file_name=f"{n}.txt") for n in range(3)
            )
            session.add_all(JobLog(job_id=job_id, message=f"line {n}") for n in range(7))
            session.add(JobTag(job_id=job_id, tag="kept"))
            session.add(JobPipeline(job_id=job_id, pipeline_id="p"))
            session.add(JobShare(job_id=job_id, user_id=friend.id, steps=["*"], controls=True))
            delivery = Delivery(
                job_id=job_id, channel="webhook", target="https://example.com/h", status="failed"
            )
            session.add(delivery)
            session.flush()
            session.add(DeliveryAttempt(delivery_id=delivery.id, number=1, outcome="failed"))


def rows_left(url: str) -> dict[str, int]:
    with session_scope(url, read_only=True) as session:
        counts = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Job, *CHILDREN, DeliveryAttempt)
        }
        counts["job ids"] = sorted(session.scalars(select(Job.id)))
    return counts


def test_ended_jobs_past_the_cutoff_go_with_all_their_rows(store_url, monkeypatch):
    make_jobs(store_url)
    # Small batches and chunks, so that a round takes several transactions.
    monkeypatch.setattr(retention, "ROWS_PER_TRANSACTION", 4)
    assert retention.delete_expired_jobs(store_url, 30, batch=2, now=NOW) == 5
    left = rows_left(store_url)
    assert left["job ids"] == ["recent", "review", "running"]
    assert left["jobs"] == 3 and left["job_files"] == 9 and left["job_logs"] == 21
    for name in ("job_tags", "job_pipelines", "job_shares", "deliveries", "delivery_attempts"):
        assert left[name] == 3, (name, left)
    assert retention.delete_expired_jobs(store_url, 30, batch=2, now=NOW) == 0


def test_retention_off_deletes_nothing(store_url):
    make_jobs(store_url)
    assert retention.delete_expired_jobs(store_url, 0, now=NOW) == 0
    assert len(rows_left(store_url)["job ids"]) == 8


def test_the_cutoff_is_the_retention_period_before_now(store_url):
    make_jobs(store_url)
    # 40 days old: kept at 45 days' retention, gone at 39.
    assert retention.delete_expired_jobs(store_url, 45, now=NOW) == 0
    assert retention.delete_expired_jobs(store_url, 39, now=NOW) == 5
