"""Stalled-step recovery, run periodically by beat.

Three kinds of pending file of a queued or running job would wait for nothing:

- a step whose claim has lapsed (its worker died and the message will come back only after the
  broker's visibility timeout, or its hard time limit killed it and the message was acked)
  would hold its file until then, or forever;
- a file with neither a claim nor a token is one whose step advanced while its job was paused,
  next to a resume that did not see it: on PostgreSQL a resume's read cannot see a file that a
  step is still advancing, and that step read the job as paused, so neither of them scheduled
  the file's next step;
- the unclaimed files of a job still marked unpublished after the grace period: the API that
  recorded the run, or a recovery round, died after its commit and before it sent every
  message (shared/engine/publication.py). Which of those tokens were sent is unknown, so all
  of the job's unclaimed files get fresh ones.

Minting a fresh token retires any old message and lets the file go on now; the attempt cap in
the claim still stops a step that kills every worker. A round marks the jobs it restarts
unpublished in its own transaction, so a round that dies before publishing is repaired by a
later one; a job still within the grace of its mark is left to the sender that is publishing it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, or_, select, update

from shared.config import Settings
from shared.engine.broker_work import BrokerWork
from shared.engine.publication import PUBLISH_GRACE
from shared.engine.scheduling import schedule_files
from shared.states import RUNNABLE, FileStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile


def recover_stalled_steps(settings: Settings, limit: int = 500) -> BrokerWork:
    """Steps to publish again, and the marks to clear once they are sent (``confirm``); call
    after nothing else holds their files. ``limit`` bounds the stalled files and the
    unpublished jobs of one round (an unpublished job's files are restarted all together)."""
    now = datetime.now(UTC)
    with session_scope(settings.sql_url) as session:
        unpublished = list(
            session.scalars(
                select(Job)
                .where(Job.status.in_(RUNNABLE), Job.unpublished_since < now - PUBLISH_GRACE)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        files: list[JobFile] = []
        if unpublished:
            # Every unclaimed file at once: clearing the mark later says all of them were sent.
            files += session.scalars(
                select(JobFile)
                .where(
                    JobFile.job_id.in_([job.id for job in unpublished]),
                    JobFile.status == FileStatus.PENDING,
                    or_(JobFile.claimed_by.is_(None), JobFile.claimed_until < now),
                )
                # A file another transaction holds is being claimed: its message was sent.
                .with_for_update(skip_locked=True)
            )
        files += session.scalars(
            select(JobFile)
            .join(Job, Job.id == JobFile.job_id)
            .where(
                Job.status.in_(RUNNABLE),
                Job.unpublished_since.is_(None),
                JobFile.status == FileStatus.PENDING,
                or_(
                    and_(JobFile.claimed_by.is_not(None), JobFile.claimed_until < now),
                    and_(JobFile.claimed_by.is_(None), JobFile.next_task_id.is_(None)),
                ),
            )
            .limit(limit)
            .with_for_update(skip_locked=True, of=JobFile)
        )
        by_job: dict[str, list[JobFile]] = {}
        for row in files:
            by_job.setdefault(row.job_id, []).append(row)
        work = BrokerWork(confirm={job_id: now for job_id in by_job})
        for job_id, rows in by_job.items():
            work.publish += schedule_files(session, settings, session.get(Job, job_id), rows)
        if by_job:
            session.execute(
                update(Job).where(Job.id.in_(list(by_job))).values(unpublished_since=now)
            )
        # An unpublished job none of whose files waits unclaimed: every message arrived.
        settled = [job.id for job in unpublished if job.id not in by_job]
        if settled:
            session.execute(update(Job).where(Job.id.in_(settled)).values(unpublished_since=None))
    return work
