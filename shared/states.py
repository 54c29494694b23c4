"""The job state machine: one table of allowed transitions and the vocabularies it is shown in.

Transitions are written only through ``shared.store.jobs.transition_job``, which turns this table
into a conditional UPDATE and checks the row count, so two processes racing on one job cannot
both win.
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # accepted; no step of it has started yet
    RUNNING = "running"  # at least one step has started
    PAUSED = "paused"  # held by a user; nothing of it runs until resumed
    STOPPED_AT_CHECKPOINT = "stopped_at_checkpoint"  # finished but for records awaiting review
    COMPLETE = "complete"  # every file finished and at least one record came through
    FAILED = "failed"  # nothing came through, or the run could not go on
    CANCELLED = "cancelled"  # stopped by a user for good; never runs again


TERMINAL = frozenset(
    {
        JobStatus.PAUSED,
        JobStatus.STOPPED_AT_CHECKPOINT,
        JobStatus.COMPLETE,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }
)
"""States the seed's status API reports as DONE (results present)."""

FINISHED = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED})
"""States in which no more work of the job will ever run unless a user retries it."""

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.PAUSED,
            JobStatus.STOPPED_AT_CHECKPOINT,
            JobStatus.COMPLETE,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }
    ),
    # A paused job whose last running step finished its last file has nothing left to hold.
    JobStatus.PAUSED: frozenset(
        {
            JobStatus.QUEUED,
            JobStatus.CANCELLED,
            JobStatus.COMPLETE,
            JobStatus.FAILED,
            JobStatus.STOPPED_AT_CHECKPOINT,
        }
    ),
    JobStatus.STOPPED_AT_CHECKPOINT: frozenset(
        {JobStatus.QUEUED, JobStatus.COMPLETE, JobStatus.CANCELLED}
    ),
    JobStatus.COMPLETE: frozenset({JobStatus.QUEUED}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset(),
}


def allowed_sources(target: JobStatus) -> frozenset[JobStatus]:
    """Every state from which ``target`` may be entered."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[source]


# The vocabularies of DESIGN section 4.
SEED_STATUS = {
    JobStatus.QUEUED: "RUNNING",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.PAUSED: "PAUSED",
    JobStatus.STOPPED_AT_CHECKPOINT: "STOPPED_AT_CHECKPOINT",
    JobStatus.COMPLETE: "COMPLETE",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "CANCELLED",
}

SEED_STATE = {status: ("DONE" if status in TERMINAL else "PENDING") for status in JobStatus}

RESOURCE_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "paused",
    JobStatus.STOPPED_AT_CHECKPOINT: "blocked",
    JobStatus.COMPLETE: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}

POLARIS_STATUS = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "suspended",
    JobStatus.STOPPED_AT_CHECKPOINT: "suspended",
    JobStatus.COMPLETE: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "canceled",
}


class FileStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next step
    COMPLETE = "complete"  # every step ran; its results are written
    FAILED = "failed"  # every record failed, or a step could not run at all
    STOPPED_AT_CHECKPOINT = "stopped_at_checkpoint"  # some record awaits review
    CANCELLED = "cancelled"  # its job was cancelled before it finished


FILE_FINISHED = frozenset(
    {FileStatus.COMPLETE, FileStatus.FAILED, FileStatus.STOPPED_AT_CHECKPOINT, FileStatus.CANCELLED}
)


class ReviewState(enum.StrEnum):
    NONE = "NONE"
    IN_REVIEW = "IN REVIEW"
    COMPLETED = "COMPLETED"
    NOT_COMPLETED = "NOT_COMPLETED"
