"""Who reviews a job: the records of a flow run are reviewed by its owner, an admin, the
reviewer its owner assigned (who closes the review when done), and its collaborators on the
steps they were given (shared/accounts/access.py decides). Every review action is a line in the
job's log."""

from __future__ import annotations

from sqlalchemy.orm import Session

from shared.accounts.access import JobGrant, JobNeed, job_and_grant
from shared.accounts.principal import Principal
from shared.accounts.users import find_user
from shared.errors import Conflict, Forbidden, InvalidRequest
from shared.jobs.log import JobLogger
from shared.states import REVIEW_CLOSING, JobKind, ReviewState
from shared.store.models import Job

# The task id of review log lines: they come from a person through the API, not a worker task.
REVIEW_TASK = "review"


def get_job_for_review(
    session: Session, principal: Principal, job_id: str | None
) -> tuple[Job, JobGrant]:
    """The job if the caller may review some of its steps, and which. Anyone else is told
    that it does not exist, as for any job."""
    job, grant = job_and_grant(session, principal, job_id, JobNeed.REVIEW)
    if job.kind != JobKind.FLOW:
        raise Conflict(
            f"job {job.id!r} is a {job.kind} job: only asynchronous flow runs "
            "have records to review"
        )
    return job, grant


def assign_reviewer(session: Session, principal: Principal, job_id: str, username: str) -> Job:
    job, grant = get_job_for_review(session, principal, job_id)
    if not grant.controls:
        raise Forbidden(
            f"only the owner of job {job.id!r}, an admin or a collaborator on every step "
            "can assign its reviewer"
        )
    if find_user(session, username) is None:
        raise InvalidRequest(
            f"no user {username!r}: the reviewer must be the username of an existing user"
        )
    job.reviewer = username
    job.review_state = ReviewState.IN_REVIEW
    review_log(job, f"Reviewer {username} assigned by {principal.username}", session)
    return job


def close_review(session: Session, principal: Principal, job_id: str, state: str) -> Job:
    if state not in REVIEW_CLOSING:
        raise InvalidRequest(f"state must be one of {', '.join(REVIEW_CLOSING)}, not {state!r}")
    job, _ = get_job_for_review(session, principal, job_id)
    job.review_state = state
    review_log(job, f"Review marked {state} by {principal.username}", session)
    return job


def review_log(job: Job, message: str, session: Session) -> None:
    """Write ``message`` to the job's log, in ``session``'s transaction."""
    logger = JobLogger(job.id, REVIEW_TASK, job.trace_id, prefix=job.log_prefix)
    logger.info(message)
    logger.flush(session)
