"""What a job's file rows say about it: its run summary (the seed's ``run_summary``, from the
totals kept on the job's row) and whether any of its steps is running now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.jobs.counters import JobCounters, counters_of_job, shard_sums
from shared.states import JobKind
from shared.store.models import Job, JobFile, claimed_file


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
    """Summaries of several jobs, from the totals kept on their rows (shared/jobs/counters.py):
    no query, however many files they have."""
    shards = shard_sums(session, [job.id for job in jobs])
    return {job.id: summarize(job, counters_of_job(job, shards[job.id])) for job in jobs}


def summarize(job: Job, counters: JobCounters) -> RunSummary:
    if job.kind != JobKind.FLOW:
        progress = 1.0 if job.finished_at else 0.0
    elif job.num_files and job.num_steps:
        steps = job.num_files * job.num_steps
        progress = round(min(counters.steps_done, steps) / steps, 4)
    else:
        progress = 1.0 if job.finished_at else 0.0
    return RunSummary(
        num_files=job.num_files,
        num_records=counters.records,
        num_runtime_errors=counters.errors,
        num_checkpoint_failed=counters.checkpoint_failed,
        num_filtered=counters.filtered,
        records_with_msg=dict(job.error_counts or {}),
        progress=progress,
    )


def jobs_with_running_steps(session: Session, job_ids: list[str]) -> set[str]:
    """Those of ``job_ids`` with a step running now (its claim has not lapsed): a paused job
    still finishing one is shown as pausing."""
    if not job_ids:
        return set()
    # Every job with a running step, read from ix_job_files_claimed alone (the claimed files:
    # a few per worker slot), then kept if asked for: a condition on job_id would let SQLite
    # read every file of those jobs by their job_id instead.
    # No DISTINCT either: SQLite would read the job_id index in order for it.
    now = datetime.now(UTC)
    running = session.scalars(
        select(JobFile.job_id).where(claimed_file(), JobFile.claimed_until > now)
    )
    return set(running) & set(job_ids)


def flow_review_metrics(stopped: int, reviewed: int, reviewed_in_current_stop: int) -> dict:
    """``reviewed``: records ever reviewed; ``pending``: records stopped at a checkpoint now
    and not reviewed since they stopped."""
    return {"reviewed": reviewed, "pending": max(0, stopped - reviewed_in_current_stop)}
