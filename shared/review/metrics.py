"""A job's ``flow_review_metrics``: how many of its records were reviewed, and how many stopped
at a checkpoint still await review."""

from __future__ import annotations

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from shared.jobs.summary import RunSummary, flow_review_metrics
from shared.states import JobKind, JobStatus
from shared.store.models import Job, RecordReview
from shared.store.sets import among


def review_metrics(
    session: Session, jobs: list[Job], summaries: dict[str, RunSummary]
) -> dict[str, dict | None]:
    """Each job's ``flow_review_metrics``: ``{"reviewed", "pending"}`` for asynchronous flow
    runs, None for compile and sync jobs (which never stop at a checkpoint)."""
    flow_ids = [job.id for job in jobs if job.kind == JobKind.FLOW]
    counts: dict[str, tuple[int, int]] = {}
    if flow_ids:
        in_current_stop = and_(
            Job.status == JobStatus.STOPPED_AT_CHECKPOINT,
            RecordReview.job_stopped_at == Job.finished_at,
        )
        rows = session.execute(
            select(RecordReview.job_id, func.count(), func.sum(case((in_current_stop, 1), else_=0)))
            .join(Job, Job.id == RecordReview.job_id)
            .where(among(session, RecordReview.job_id, flow_ids))
            .group_by(RecordReview.job_id)
        )
        counts = {job_id: (reviewed, int(current or 0)) for job_id, reviewed, current in rows}
    return {
        job.id: flow_review_metrics(
            summaries[job.id].num_checkpoint_failed, *counts.get(job.id, (0, 0))
        )
        if job.kind == JobKind.FLOW
        else None
        for job in jobs
    }
