"""The one state vocabulary: job and file states, the transitions between them, the named sets
the code decides by, job kinds, and the seeds' names for each state.

The transition table is written as the actions that move a job (``Transition``: the states it
may leave and the state it enters). A user action's precondition is its ``sources``; the store
writes every change through ``shared.jobs.store.transition_job``, which turns the same table
into a conditional UPDATE and checks the row count, so two processes racing on one job cannot
both win.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # accepted; no step of it has started yet
    RUNNING = "running"  # at least one step has started
    PAUSED = "paused"  # held by a user; nothing of it runs until resumed
    STOPPED_AT_CHECKPOINT = "stopped_at_checkpoint"  # finished but for records awaiting review
    COMPLETE = "complete"  # every file finished and at least one record came through
    FAILED = "failed"  # nothing came through, or the run could not go on
    CANCELLED = "cancelled"  # stopped by a user for good; never runs again


class JobKind(enum.StrEnum):
    FLOW = "flow"  # a flow run over an input folder, step by step in workers
    COMPILE = "compile"  # a flow project compiled into a binary by a worker
    SYNC = "sync"  # a run_binary_sync run, recorded once it has finished
    COPY = "copy"  # a drive copy (Filesystem API), done in the request and recorded finished
    EXTRACT = "extract"  # a zip extracted into a drive folder, likewise


LISTED_KINDS = frozenset({JobKind.FLOW, JobKind.SYNC})
"""The kinds of job the seed's job list shows: runs of flows, not compiles or file work."""


@dataclass(frozen=True)
class Transition:
    """An action that moves a job into ``target`` from any of ``sources``."""

    name: str
    sources: frozenset[JobStatus]
    target: JobStatus


def _transition(name: str, sources: set[JobStatus], target: JobStatus) -> Transition:
    return Transition(name, frozenset(sources), target)


# -- what users do ----------------------------------------------------------------------------
PAUSE = _transition("pause", {JobStatus.QUEUED, JobStatus.RUNNING}, JobStatus.PAUSED)
RESUME = _transition("resume", {JobStatus.PAUSED}, JobStatus.QUEUED)
CANCEL = _transition(
    "cancel",
    {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.STOPPED_AT_CHECKPOINT},
    JobStatus.CANCELLED,
)
RETRY = _transition(
    "retry",
    {JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.STOPPED_AT_CHECKPOINT},
    JobStatus.QUEUED,
)

# -- what workers do --------------------------------------------------------------------------
START = _transition("start", {JobStatus.QUEUED}, JobStatus.RUNNING)
# A paused job whose last running step finished its last file has nothing left to hold, so it
# ends like a running one.
ENDING_SOURCES = frozenset({JobStatus.RUNNING, JobStatus.PAUSED})
COMPLETE = _transition(
    "complete", {*ENDING_SOURCES, JobStatus.STOPPED_AT_CHECKPOINT}, JobStatus.COMPLETE
)
STOP_AT_CHECKPOINT = _transition(
    "stop_at_checkpoint", set(ENDING_SOURCES), JobStatus.STOPPED_AT_CHECKPOINT
)
# A queued job fails when its first steps cannot be published.
FAIL = _transition("fail", {JobStatus.QUEUED, *ENDING_SOURCES}, JobStatus.FAILED)

ALL_TRANSITIONS = (PAUSE, RESUME, CANCEL, RETRY, START, COMPLETE, STOP_AT_CHECKPOINT, FAIL)

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    source: frozenset(t.target for t in ALL_TRANSITIONS if source in t.sources)
    for source in JobStatus
}
"""Every state a job may enter from each state: the union of the actions above."""


def allowed_sources(target: JobStatus) -> frozenset[JobStatus]:
    """Every state from which ``target`` may be entered."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[source]


# -- named sets -------------------------------------------------------------------------------
RUNNABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""States in which a job's steps may start."""

ENDED = frozenset(
    {
        JobStatus.STOPPED_AT_CHECKPOINT,
        JobStatus.COMPLETE,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }
)
"""States a job does not leave on its own: entering one stamps ``finished_at`` and is what the
job's webhooks and emails tell."""

FAILED_OR_CANCELLED = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
"""Ended without results: the seeds report them as errors."""

REPORTED_DONE = ENDED | {JobStatus.PAUSED}
"""States the seed's status API reports as DONE (results present)."""


# -- the seeds' vocabularies -----------------------------------------------------------------
SEED_STATUS = {
    JobStatus.QUEUED: "RUNNING",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.PAUSED: "PAUSED",
    JobStatus.STOPPED_AT_CHECKPOINT: "STOPPED_AT_CHECKPOINT",
    JobStatus.COMPLETE: "COMPLETE",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "CANCELLED",
}
"""``cur_status.status`` of the seed's status API, and ``state`` in its job list."""

SEED_STATE = {status: ("DONE" if status in REPORTED_DONE else "PENDING") for status in JobStatus}
"""``state`` of the seed's status API."""

LIST_STATE_FILTER = {
    "PENDING": RUNNABLE,
    "RUNNING": RUNNABLE,
    "COMPLETE": frozenset({JobStatus.COMPLETE}),
    "FAILED": frozenset({JobStatus.FAILED}),
    "CANCELLED": frozenset({JobStatus.CANCELLED}),
    "PAUSED": frozenset({JobStatus.PAUSED}),
    "CHECKPOINT_FAILED": frozenset({JobStatus.STOPPED_AT_CHECKPOINT}),
    "STOPPED_AT_CHECKPOINT": frozenset({JobStatus.STOPPED_AT_CHECKPOINT}),
}
"""The seed's ``jobs/list?state=`` values and the states each one selects. PENDING is every job
not yet done, as the seed's ``state`` field says; RUNNING is what ``cur_status.status`` calls
RUNNING."""

# The resource API's (/api/v2/jobs) names, DESIGN section 4: seed 002's ``status``, seed 003's
# ``executionStatus``, and each kind's job ``type``.
RESOURCE_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "paused",
    JobStatus.STOPPED_AT_CHECKPOINT: "blocked",
    JobStatus.COMPLETE: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
EXECUTION_STATUS = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "suspended",
    JobStatus.STOPPED_AT_CHECKPOINT: "suspended",
    JobStatus.COMPLETE: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "canceled",
}
RESOURCE_TYPE = {
    JobKind.FLOW: "flow-run",
    JobKind.COMPILE: "flow-compile",
    JobKind.SYNC: "flow-sync",
    JobKind.COPY: "file-copy",
    JobKind.EXTRACT: "file-extract",
}


class DesiredExecution(enum.StrEnum):
    """Seed 003's ``desiredExecutionStatus``: what a user asked a job to do."""

    RUNNING = "running"  # run (the default; resumes a paused job)
    SUSPENDED = "suspended"  # pause at the next step boundary
    CANCELED = "canceled"  # cancel for good


# -- files ------------------------------------------------------------------------------------
class FileStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next step
    COMPLETE = "complete"  # every step ran; its results are written
    FAILED = "failed"  # every record failed, or a step could not run at all
    STOPPED_AT_CHECKPOINT = "stopped_at_checkpoint"  # some record awaits review
    CANCELLED = "cancelled"  # its job was cancelled before it finished


FILE_TRANSITIONS: dict[FileStatus, frozenset[FileStatus]] = {
    # A step ends a file; cancelling its job stops it.
    FileStatus.PENDING: frozenset(
        {
            FileStatus.COMPLETE,
            FileStatus.FAILED,
            FileStatus.STOPPED_AT_CHECKPOINT,
            FileStatus.CANCELLED,
        }
    ),
    # A retry starts a file again from the step where its records failed or stopped.
    FileStatus.COMPLETE: frozenset({FileStatus.PENDING}),
    FileStatus.FAILED: frozenset({FileStatus.PENDING}),
    FileStatus.STOPPED_AT_CHECKPOINT: frozenset({FileStatus.PENDING}),
    FileStatus.CANCELLED: frozenset(),
}
"""Every state a job's file may enter from each state."""

FILE_FINISHED = frozenset(status for status in FileStatus if status != FileStatus.PENDING)
"""States of a file that no step of its job will move any more (unless a user retries it)."""


# -- review -----------------------------------------------------------------------------------
class ReviewState(enum.StrEnum):
    NONE = "NONE"  # nobody was asked to review the job
    IN_REVIEW = "IN REVIEW"  # a reviewer is assigned
    COMPLETED = "COMPLETED"  # the reviewer closed the review
    NOT_COMPLETED = "NOT_COMPLETED"  # the reviewer closed it without finishing


REVIEW_CLOSING = (ReviewState.COMPLETED, ReviewState.NOT_COMPLETED)
"""The states a reviewer may close a review with."""


# -- deliveries -------------------------------------------------------------------------------
class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt, or being attempted under a claim
    DELIVERED = "delivered"  # a receiver acknowledged it
    FAILED = "failed"  # every attempt failed; only a redelivery tries again


class AttemptOutcome(enum.StrEnum):
    RUNNING = "running"  # started and not finished yet
    DELIVERED = "delivered"  # acknowledged (webhook: a 2xx; email: accepted by the server)
    FAILED = "failed"  # refused, timed out, unreachable or any other answer
    LOST = "lost"  # its worker stopped before it finished; the lease ran out


# -- teams and keys ---------------------------------------------------------------------------
class TeamRole(enum.StrEnum):
    ADMIN = "admin"  # reads and writes the team's space, manages its members
    MEMBER = "member"  # reads and writes the team's space
    VIEWER = "viewer"  # reads the team's space


class Permission(enum.StrEnum):
    """What an API key may do (seed 003's permissions); a bearer token may do all of it."""

    VIEW_JOBS = "ViewJobs"  # status, logs, lists, deliveries
    MANAGE_JOBS = "ManageJobs"  # compile, run, pause, resume, cancel, retry, tags, sharing
    MANAGE_FILES = "ManageFiles"  # the drive: read, write, delete
    REVIEW_JOBS = "ReviewJobs"  # records stopped at checkpoints: read, correct, close
    ADMIN = "Admin"  # all of the above, and teams, keys and users as the owner may


ALL_PERMISSIONS = frozenset(Permission)
