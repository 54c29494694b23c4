"""What a job's file rows say about it: its run summary (the seed's ``run_summary``) and whether
any of its steps is running now."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.states import FILE_FINISHED, FileStatus, JobKind
from shared.store.models import Job, JobFile


@dataclass(frozen=True)
class RunSummary:
    num_files: int
    num_records: int
    num_runtime_errors: int
    num_checkpoint_failed: int
    num_filtered: int
    records_with_msg: dict[str, int]
    progress: float

    def to_seed(self) -> dict:
        return {
            "numFiles": self.num_files,
            "numRecords": self.num_records,
            "numRuntimeErrors": self.num_runtime_errors,
            "numCheckpointFailed": self.num_checkpoint_failed,
            "recordsWithMsg": self.records_with_msg,
        }


def run_summaries(session: Session, jobs: list[Job]) -> dict[str, RunSummary]:
    """Summaries of several jobs, derived from their file rows in one query."""
    by_job: dict[str, list[JobFile]] = {job.id: [] for job in jobs}
    if by_job:
        for row in session.scalars(select(JobFile).where(JobFile.job_id.in_(list(by_job)))):
            by_job[row.job_id].append(row)
    return {job.id: _summarize(job, by_job[job.id]) for job in jobs}


def _summarize(job: Job, files: list[JobFile]) -> RunSummary:
    messages: Counter[str] = Counter()
    steps_done = 0
    for row in files:
        messages.update(row.error_counts or {})
        finished = row.status in FILE_FINISHED
        steps_done += job.num_steps if finished else min(row.next_step, job.num_steps)
    if job.kind != JobKind.FLOW:
        progress = 1.0 if job.finished_at else 0.0
    elif job.num_files and job.num_steps:
        progress = round(steps_done / (job.num_files * job.num_steps), 4)
    else:
        progress = 1.0 if job.finished_at else 0.0
    return RunSummary(
        num_files=job.num_files,
        num_records=sum(row.num_records for row in files),
        num_runtime_errors=sum(row.num_errors for row in files),
        num_checkpoint_failed=sum(row.num_checkpoint_failed for row in files),
        num_filtered=sum(row.num_filtered for row in files),
        records_with_msg=dict(messages),
        progress=progress,
    )


def jobs_with_running_steps(session: Session, job_ids: list[str]) -> set[str]:
    """Those of ``job_ids`` with a step running now (its claim has not lapsed): a paused job
    still finishing one is shown as pausing."""
    if not job_ids:
        return set()
    return set(
        session.scalars(
            select(JobFile.job_id)
            .distinct()
            .where(
                JobFile.job_id.in_(job_ids),
                JobFile.status == FileStatus.PENDING,
                JobFile.claimed_by.is_not(None),
                JobFile.claimed_until > datetime.now(UTC),
            )
        )
    )
