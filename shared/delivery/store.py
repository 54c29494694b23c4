"""Deliveries in the store: when the next attempt is due, who may make it, what each one did.

A delivery is tried until a receiver acknowledges it, at most MAX_ATTEMPTS times (its policy
is in shared/delivery/policy.py). Workers take
due deliveries with a claim: a conditional UPDATE that only one worker can win (on PostgreSQL
after ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers skip each other's rows instead of
waiting), which stamps a lease (``claimed_until``) and a token. No one else attempts a claimed
delivery before the lease ends; a worker that dies mid-attempt never records its outcome, so
after the lease the delivery is due again and the lost attempt is recorded as such. The claim
counts the attempt, so a delivery whose attempts keep dying still ends.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.accounts.access import JobNeed, get_job_for
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.delivery.policy import MAX_ATTEMPTS, lease_seconds, retry_delay
from shared.errors import NotFound
from shared.states import AttemptOutcome, DeliveryStatus
from shared.store.models import Delivery, DeliveryAttempt, Job, WebhookSecret

LOST_ERROR = "the worker stopped before the attempt finished (its claim lapsed)"


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did; senders return it and never raise."""

    delivered: bool
    duration_ms: int
    status_code: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Claim:
    """A delivery a worker holds until ``claimed_until``, with what it needs to attempt it."""

    delivery_id: int
    attempt_id: int
    number: int
    token: str
    job_id: str
    channel: str
    target: str
    headers: dict
    payload: dict
    secret: str | None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _lapsed(now: datetime):
    return or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now)


def claim_due(session: Session, settings: Settings, now: datetime, limit: int = 1) -> list[Claim]:
    """Claim up to ``limit`` due deliveries for this worker (the caller commits at once)."""
    query = (
        select(Delivery.id)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= now,
            _lapsed(now),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claims = []
    for delivery_id in session.scalars(query).all():
        claim = _claim_one(session, delivery_id, now, lease_seconds(settings))
        if claim is not None:
            claims.append(claim)
    return claims


def _claim_one(session: Session, delivery_id: int, now: datetime, lease: float) -> Claim | None:
    due = (
        Delivery.id == delivery_id,
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.next_attempt_at <= now,
        _lapsed(now),
    )
    token = secrets.token_hex(16)
    won = session.execute(
        update(Delivery)
        .where(*due, Delivery.attempts < MAX_ATTEMPTS)
        .values(
            attempts=Delivery.attempts + 1,
            claimed_until=now + timedelta(seconds=lease),
            claim_token=token,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    exhausted = 0
    if won != 1:
        # The last allowed attempt was lost: nothing more to try.
        exhausted = session.execute(
            update(Delivery)
            .where(*due, Delivery.attempts >= MAX_ATTEMPTS)
            .values(
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                claimed_until=None,
                claim_token=None,
                last_error=LOST_ERROR,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    if won == 1 or exhausted == 1:
        # An attempt still running when its claim lapsed belongs to a worker that died.
        session.execute(
            update(DeliveryAttempt)
            .where(
                DeliveryAttempt.delivery_id == delivery_id,
                DeliveryAttempt.outcome == AttemptOutcome.RUNNING,
            )
            .values(outcome=AttemptOutcome.LOST, error=LOST_ERROR)
            .execution_options(synchronize_session=False)
        )
    if won != 1:
        return None
    row = session.execute(
        select(
            Delivery.attempts,
            Delivery.job_id,
            Delivery.channel,
            Delivery.target,
            Delivery.headers,
            Delivery.payload,
            WebhookSecret.secret,
        )
        .join(Job, Job.id == Delivery.job_id)
        .outerjoin(WebhookSecret, WebhookSecret.user_id == Job.owner_id)
        .where(Delivery.id == delivery_id)
    ).one()
    attempt = DeliveryAttempt(
        delivery_id=delivery_id,
        number=row.attempts,
        outcome=AttemptOutcome.RUNNING,
        started_at=now,
        error="",
    )
    session.add(attempt)
    session.flush()
    return Claim(
        delivery_id=delivery_id,
        attempt_id=attempt.id,
        number=row.attempts,
        token=token,
        job_id=row.job_id,
        channel=row.channel,
        target=row.target,
        headers=dict(row.headers or {}),
        payload=dict(row.payload or {}),
        secret=row.secret,
    )


def record_attempt(
    session: Session,
    settings: Settings,
    claim: Claim,
    result: AttemptResult,
    now: datetime,
    rng: Callable[[], float] = random.random,
) -> DeliveryStatus | None:
    """Write the attempt's outcome and decide what follows: done, failed for good, or the next
    attempt's time. None when the claim had lapsed and another worker took the delivery over
    (the attempt is still recorded, the delivery is left to its new holder)."""
    session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.id == claim.attempt_id)
        .values(
            outcome=AttemptOutcome.DELIVERED if result.delivered else AttemptOutcome.FAILED,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
        )
        .execution_options(synchronize_session=False)
    )
    if result.delivered:
        status, next_at = DeliveryStatus.DELIVERED, None
    elif claim.number >= MAX_ATTEMPTS:
        status, next_at = DeliveryStatus.FAILED, None
    else:
        delay = retry_delay(
            claim.number, settings.delivery_retry_base, settings.delivery_retry_cap, rng
        )
        status, next_at = DeliveryStatus.PENDING, now + timedelta(seconds=delay)
    moved = session.execute(
        update(Delivery)
        .where(Delivery.id == claim.delivery_id, Delivery.claim_token == claim.token)
        .values(
            status=status,
            next_attempt_at=next_at,
            claimed_until=None,
            claim_token=None,
            last_status_code=result.status_code,
            last_error=result.error,
            last_duration_ms=result.duration_ms,
            delivered_at=now if result.delivered else None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    return status if moved == 1 else None


def get_delivery_for(
    session: Session, principal: Principal, delivery_id: int, need: JobNeed = JobNeed.VIEW
) -> Delivery:
    """The delivery, if the caller may do ``need`` to its job; one of a job the caller may not
    see is reported as missing."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None:
        try:
            get_job_for(session, principal, delivery.job_id, need)
        except NotFound:
            delivery = None
    if delivery is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    return delivery


def deliveries_of(session: Session, job_id: str) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """A job's deliveries, oldest first, each with its attempts in order."""
    rows = list(
        session.scalars(select(Delivery).where(Delivery.job_id == job_id).order_by(Delivery.id))
    )
    attempts: dict[int, list[DeliveryAttempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(list(attempts)))
            .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(row, attempts[row.id]) for row in rows]


def redeliver(session: Session, principal: Principal, delivery_id: int, now: datetime) -> Delivery:
    """Make a delivery due now. A pending one is moved forward (it keeps its attempts); a
    delivered or failed one is copied into a new delivery with a fresh set of attempts, so the
    history of the first stays as it was."""
    delivery = get_delivery_for(session, principal, delivery_id, JobNeed.CONTROL)
    if delivery.status == DeliveryStatus.PENDING:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.PENDING)
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        session.refresh(delivery)
        return delivery
    copy = Delivery(
        job_id=delivery.job_id,
        channel=delivery.channel,
        target=delivery.target,
        headers=delivery.headers,
        payload=delivery.payload,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        last_error="",
        redelivery_of=delivery.id,
        created_at=now,
    )
    session.add(copy)
    session.flush()
    return copy


def set_secret(session: Session, user_id: int, secret: str | None, now: datetime) -> None:
    """Set (or with None, remove) the secret that signs the user's webhooks."""
    row = session.get(WebhookSecret, user_id)
    if secret is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(WebhookSecret(user_id=user_id, secret=secret, updated_at=now))
    else:
        row.secret, row.updated_at = secret, now
    session.flush()


def has_secret(session: Session, user_id: int) -> bool:
    return session.get(WebhookSecret, user_id) is not None
