"""Telling people a job ended: deliveries are created with the job's final state change and sent
by workers when beat asks them to.

``schedule_for_job`` runs inside ``shared.jobs.store.transition_job``, in the transaction that
moves the job into a state it will not leave on its own, so a job that ended always has its
deliveries and a rolled-back change has none. ``deliver_due`` is what the periodic task runs:
claim a due delivery, attempt it outside any transaction, record the outcome; again until none
is due.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert

from shared.config import Settings
from shared.delivery import emails, webhooks
from shared.delivery import store as delivery_store
from shared.delivery.store import AttemptResult, Claim, DeliveryStatus
from shared.metrics import recorder
from shared.states import ENDED, JobStatus
from shared.store.db import session_scope
from shared.store.models import Delivery, Job

log = logging.getLogger(__name__)

WEBHOOK = "webhook"
EMAIL = "email"
# An attempt's outcome in the metrics (shared/metrics/): what the delivery's status became.
OUTCOMES = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
}


# What a job's receivers hear, returned by the UPDATE that ends the job (shared/jobs/store.py).
JOB_COLUMNS_FOR_NOTIFYING = tuple(
    Job.__table__.c[name]
    for name in ("settings", "message", "binary_path", "input_dir", "output_dir")
)
_INSERT_DELIVERIES = insert(Delivery.__table__)


def schedule_for_job(conn: Connection, job_id: str, status: JobStatus, job: Any) -> int:
    """Create the deliveries a job asked for (``webhook_config``, ``notification_emails``),
    due now; ``job`` holds JOB_COLUMNS_FOR_NOTIFYING as of the change. Called once per state
    change into one of ``ENDED``, in that change's transaction; returns how many were created."""
    if status not in ENDED:
        return 0
    wanted = job.settings or {}
    webhook = wanted.get("webhook_config") or None
    addresses = list(dict.fromkeys(wanted.get("notification_emails") or []))
    if not webhook and not addresses:
        return 0
    body = webhooks.payload(
        job_id, status, job.message, job.binary_path, job.input_dir, job.output_dir
    )
    now = delivery_store.utcnow()

    def delivery(channel: str, target: str, headers: dict, payload: dict) -> dict:
        return {
            "job_id": job_id,
            "channel": channel,
            "target": target,
            "headers": headers,
            "payload": payload,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "created_at": now,
        }

    rows = []
    if webhook and webhook.get("url"):
        rows.append(delivery(WEBHOOK, webhook["url"], dict(webhook.get("headers") or {}), body))
    mail = emails.content(job_id, status, job.message, body)
    rows.extend(delivery(EMAIL, address, {}, mail) for address in addresses)
    conn.execute(_INSERT_DELIVERIES, rows)
    return len(rows)


SENDERS: dict[str, Callable[[Settings, Claim], AttemptResult]] = {
    WEBHOOK: webhooks.attempt,
    EMAIL: emails.attempt,
}


def attempt(settings: Settings, claim: Claim) -> AttemptResult:
    sender = SENDERS.get(claim.channel)
    if sender is None:
        return AttemptResult(False, 0, None, f"unknown delivery channel {claim.channel!r}")
    try:
        return sender(settings, claim)
    except Exception as error:  # senders do not raise; a bug must still end as a failed attempt
        log.exception("delivery %s: the %s sender raised", claim.delivery_id, claim.channel)
        return AttemptResult(False, 0, None, f"internal error: {type(error).__name__}: {error}")


def deliver_due(
    settings: Settings, *, budget_seconds: float = 60.0, max_deliveries: int = 100
) -> int:
    """Attempt due deliveries one at a time until none is due or the budget is spent (the next
    beat tick carries on); returns how many were attempted. Safe to run in many workers at once:
    each delivery is claimed before it is attempted."""
    deadline = time.monotonic() + budget_seconds
    done = 0
    while done < max_deliveries and time.monotonic() < deadline:
        with session_scope(settings.sql_url) as session:
            claims = delivery_store.claim_due(session, settings, delivery_store.utcnow())
        if not claims:
            break
        for claim in claims:
            result = attempt(settings, claim)
            with session_scope(settings.sql_url) as session:
                outcome = delivery_store.record_attempt(
                    session, settings, claim, result, delivery_store.utcnow()
                )
            if outcome is not None:
                recorder.delivery_attempted(settings, claim.channel, OUTCOMES[outcome])
            log.info(
                "delivery %s (%s, job %s) attempt %s: %s%s",
                claim.delivery_id,
                claim.channel,
                claim.job_id,
                claim.number,
                "delivered" if result.delivered else f"failed ({result.error})",
                "" if outcome else "; its claim had lapsed, another worker holds it now",
            )
            done += 1
    return done
