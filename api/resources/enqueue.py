"""Publishing a new job's first tasks, and what happens when the broker cannot take them."""

from __future__ import annotations

import logging

from api.context import publisher, settings, store
from shared.engine.broker_work import BrokerWork
from shared.engine.publication import confirm_published
from shared.errors import Unavailable
from shared.jobs.store import transition_job
from shared.states import JobStatus

log = logging.getLogger(__name__)


def publish_or_fail(job_id: str, work: BrokerWork) -> None:
    """Publish, then clear the job's unpublished mark; if the broker is unreachable the job is
    marked failed (never silently lost) and the caller gets a 503 that says to try again."""
    try:
        publisher().apply(work)
    except Exception as error:  # kombu raises a variety of connection errors
        log.exception("could not publish job %s", job_id)
        message = f"Could not enqueue the job: the broker is unreachable ({error})"
        with store() as session:
            transition_job(session, job_id, JobStatus.FAILED, message=message, strict=False)
        raise Unavailable(f"{message}; try again shortly") from error
    try:
        confirm_published(settings().sql_url, work.confirm)
    except Exception:
        # The steps are on their way, so the run is not failed for this: the mark stays, and
        # recovery restarts the job's unclaimed files after the grace (fresh tokens, so
        # nothing runs twice). Failing the request would only make the client submit again.
        log.warning("could not confirm job %s published", job_id, exc_info=True)
