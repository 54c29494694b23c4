"""Stalled-step recovery, run periodically by beat.

Two kinds of pending file of a queued or running job would wait for nothing:

- a step whose claim has lapsed (its worker died and the message will come back only after the
  broker's visibility timeout, or its hard time limit killed it and the message was acked)
  would hold its file until then, or forever;
- a file with neither a claim nor a token is one whose step advanced while its job was paused,
  next to a resume that did not see it: on PostgreSQL a resume's read cannot see a file that a
  step is still advancing, and that step read the job as paused, so neither of them scheduled
  the file's next step.

Minting a fresh token retires any old message and lets the file go on now; the attempt cap in
the claim still stops a step that kills every worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, or_, select

from shared.config import Settings
from shared.engine.scheduling import NextStep, schedule_files
from shared.states import RUNNABLE, FileStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile


def recover_stalled_steps(settings: Settings, limit: int = 500) -> list[NextStep]:
    """Steps to publish again; call after nothing else holds their files."""
    now = datetime.now(UTC)
    steps: list[NextStep] = []
    with session_scope(settings.sql_url) as session:
        stalled = list(
            session.scalars(
                select(JobFile)
                .join(Job, Job.id == JobFile.job_id)
                .where(
                    Job.status.in_(RUNNABLE),
                    JobFile.status == FileStatus.PENDING,
                    or_(
                        and_(JobFile.claimed_by.is_not(None), JobFile.claimed_until < now),
                        and_(JobFile.claimed_by.is_(None), JobFile.next_task_id.is_(None)),
                    ),
                )
                .limit(limit)
                .with_for_update(skip_locked=True, of=JobFile)
            )
        )
        by_job: dict[str, list[JobFile]] = {}
        for row in stalled:
            by_job.setdefault(row.job_id, []).append(row)
        for job_id, files in by_job.items():
            job = session.get(Job, job_id)
            steps += schedule_files(session, settings, job, files)
    return steps
