"""Stalled-step recovery, run periodically by beat.

Four kinds of pending file of a queued or running job would wait for nothing:

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
  of the job's unclaimed files in its window get fresh ones, and its window is filled (a run
  of more than a few files leaves that to a worker), or, for a big input folder that a worker
  was to list, that listing is sent again;
- the waiting files of a job whose window has room (shared/engine/window.py): a place lost to
  a pause racing a file's end, or to a publish that failed, is filled again.

Minting a fresh token retires any old message and lets the file go on now; the attempt cap in
the claim still stops a step that kills every worker. A round marks the jobs it restarts
unpublished in its own transaction, so a round that dies before publishing is repaired by a
later one; a job still within the grace of its mark is left to the sender that is publishing it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.sql import ColumnElement

from shared.config import Settings
from shared.engine import window
from shared.engine.broker_work import BrokerWork
from shared.engine.publication import PUBLISH_GRACE
from shared.engine.scheduling import schedule_files
from shared.states import RUNNABLE, FileStatus
from shared.store.db import session_scope
from shared.store.models import Job, JobFile, claimed_file, unsent_file


def stalled_files(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """On JobFile, the two kinds of stalled file: a lapsed claim, and neither claim nor token.
    Each states its partial index's predicate (shared/store/models.py) so that it is read."""
    return (and_(claimed_file(), JobFile.claimed_until < now), unsent_file())


def stalled_of_runnable_jobs(kind: ColumnElement[bool]) -> Select:
    """The files of ``kind`` whose job may run and is not marked unpublished. The job is a
    correlated EXISTS, not a join: a join lets SQLite (without statistics) start from the jobs
    and read every file of each, where the files' partial index holds a few rows."""
    job_runs = (
        select(Job.id)
        .where(Job.id == JobFile.job_id, Job.status.in_(RUNNABLE), Job.unpublished_since.is_(None))
        .exists()
    )
    return select(JobFile).where(kind, job_runs).with_for_update(skip_locked=True, of=JobFile)


def recover_stalled_steps(settings: Settings, limit: int = 500) -> BrokerWork:
    """Steps to publish again, and the marks to clear once they are sent (``confirm``); call
    after nothing else holds their files. ``limit`` bounds the stalled files of each kind and the
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
                    # Not a file waiting for a place in the window: none was sent.
                    or_(JobFile.next_task_id.is_(None), JobFile.next_task_id != window.WAITING),
                )
                # A file another transaction holds is being claimed: its message was sent.
                .with_for_update(skip_locked=True)
            )
        # Two reads, each of a partial index of a few rows (the claimed files, the files with
        # neither claim nor token), not of every file the store keeps.
        for kind in stalled_files(now):
            files += session.scalars(stalled_of_runnable_jobs(kind).limit(limit))
        by_job: dict[str, list[JobFile]] = {}
        for row in files:
            by_job.setdefault(row.job_id, []).append(row)
        work = BrokerWork()
        for job_id, rows in by_job.items():
            work.publish += schedule_files(session, settings, session.get(Job, job_id), rows)
        marked = set(by_job)
        for job in unpublished:
            if job.inputs_pending:
                # A big input folder whose listing the API may not have sent: sent again (a
                # second listing of a job records nothing the first did: runs/input_listing.py).
                work.release.append(job.id)
                marked.add(job.id)
            else:
                # Files that the API left to a worker to let into the window.
                filled = window.fill(session.connection(), settings, job)
                if filled:
                    work.publish += filled
                    marked.add(job.id)
        # A job whose window has room while files wait (a place lost to a race with pause,
        # or to a publish that failed): filled, and marked like the rest until it is sent.
        for job in session.scalars(
            select(Job)
            .where(
                Job.status.in_(RUNNABLE),
                Job.unpublished_since.is_(None),
                window.has_waiting_files(Job.id),
            )
            .limit(limit)
        ):
            if job.id not in marked:
                filled = window.fill(session.connection(), settings, job)
                if filled:
                    work.publish += filled
                    marked.add(job.id)
        work.confirm = {job_id: now for job_id in marked}
        if marked:
            session.execute(
                update(Job).where(Job.id.in_(list(marked))).values(unpublished_since=now)
            )
        # An unpublished job none of whose files waits unclaimed: every message arrived.
        settled = [job.id for job in unpublished if job.id not in marked]
        if settled:
            session.execute(update(Job).where(Job.id.in_(settled)).values(unpublished_since=None))
    return work
