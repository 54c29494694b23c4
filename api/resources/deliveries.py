"""Completion webhooks and notification emails: a job's deliveries with every attempt, redelivery,
and the secret that signs the caller's webhooks."""

from __future__ import annotations

import secrets as random_secrets

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate

from api.blueprint import Blueprint, principal
from api.context import publisher, store
from api.fields import MAX_INT64, Text
from api.lenient import V1Response
from api.permissions import needs
from shared.accounts.access import get_job_for
from shared.delivery import store as delivery_store
from shared.delivery.policy import MAX_ATTEMPTS
from shared.engine.broker_work import BrokerWork
from shared.states import Permission
from shared.store.models import Delivery, DeliveryAttempt

blp = Blueprint(
    "deliveries",
    __name__,
    url_prefix="/api/v1",
    description="Completion webhooks and notification emails of jobs, and webhook signing",
)


def _seconds(moment) -> float | None:
    return round(moment.timestamp(), 3) if moment is not None else None


class AttemptSchema(ma.Schema):
    number = fields.Integer()
    outcome = fields.String(metadata={"description": "running, delivered, failed or lost"})
    started_at = fields.Float(metadata={"description": "Unix seconds"})
    duration_ms = fields.Integer(allow_none=True)
    status_code = fields.Integer(allow_none=True)
    error = fields.String()


class DeliverySchema(ma.Schema):
    id = fields.Integer()
    job_id = fields.String()
    channel = fields.String(metadata={"description": "webhook or email"})
    target = fields.String(metadata={"description": "the webhook URL or the email address"})
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    next_attempt_at = fields.Float(allow_none=True, metadata={"description": "Unix seconds"})
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String()
    last_duration_ms = fields.Integer(allow_none=True)
    created_at = fields.Float()
    delivered_at = fields.Float(allow_none=True)
    redelivery_of = fields.Integer(allow_none=True)
    payload = fields.Dict(metadata={"description": "webhook: the body; email: subject, text"})


class DeliveryWithAttempts(DeliverySchema):
    attempt_log = fields.List(fields.Nested(AttemptSchema))


def _delivery(row: Delivery) -> dict:
    return {
        "id": row.id,
        "job_id": row.job_id,
        "channel": row.channel,
        "target": row.target,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": MAX_ATTEMPTS,
        "next_attempt_at": _seconds(row.next_attempt_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "last_duration_ms": row.last_duration_ms,
        "created_at": _seconds(row.created_at),
        "delivered_at": _seconds(row.delivered_at),
        "redelivery_of": row.redelivery_of,
        "payload": row.payload,
    }


def _attempt(row: DeliveryAttempt) -> dict:
    return {
        "number": row.number,
        "outcome": row.outcome,
        "started_at": _seconds(row.started_at),
        "duration_ms": row.duration_ms,
        "status_code": row.status_code,
        "error": row.error,
    }


class DeliveriesArgs(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    job_id = Text(required=True, validate=validate.Length(min=1))


class DeliveriesResponse(V1Response):
    status = fields.String()
    job_id = fields.String()
    deliveries = fields.List(fields.Nested(DeliveryWithAttempts))


class RedeliverResponse(V1Response):
    status = fields.String()
    delivery = fields.Nested(DeliverySchema)


class SecretArgs(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    secret = Text(
        load_default=None,
        validate=validate.Length(min=16, max=200),
        metadata={"description": "your own secret; left out, one is generated"},
    )


class SecretResponse(V1Response):
    status = fields.String()
    configured = fields.Boolean()
    secret = fields.String(metadata={"description": "only in the answer that set it"})


@blp.route("/deliveries")
class JobDeliveries(MethodView):
    @needs(Permission.VIEW_JOBS)
    @blp.arguments(DeliveriesArgs, location="query")
    @blp.response(200, DeliveriesResponse)
    def get(self, args):
        """A job's webhook and email deliveries, each with every attempt, oldest first"""
        with store() as session:
            job = get_job_for(session, principal(), args["job_id"])
            found = delivery_store.deliveries_of(session, job.id)
            listed = [
                {**_delivery(row), "attempt_log": [_attempt(a) for a in log]} for row, log in found
            ]
        return {"status": "OK", "job_id": job.id, "deliveries": listed}


# Ids are the store's 64-bit integers: a larger one names no delivery (a 404 from the router)
# rather than reaching the store, which cannot compare it.
@blp.route(f"/deliveries/<int(max={MAX_INT64}):delivery_id>/redeliver")
class Redeliver(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.response(200, RedeliverResponse)
    def post(self, delivery_id: int):
        """Send a delivery again now: a pending one is moved forward, a delivered or failed
        one is copied into a new delivery (redelivery_of names the first)"""
        with store() as session:
            row = delivery_store.redeliver(
                session, principal(), delivery_id, delivery_store.utcnow()
            )
            dumped = _delivery(row)
        publisher().apply(BrokerWork(deliver_now=True))
        return {"status": "OK", "delivery": dumped}


@blp.route("/webhooks/secret")
class WebhookSecretView(MethodView):
    @needs(Permission.MANAGE_JOBS)
    @blp.response(200, SecretResponse)
    def get(self):
        """Whether your webhooks are signed (the secret itself is never shown again)"""
        with store() as session:
            configured = delivery_store.has_secret(session, principal().user_id)
        return {"status": "OK", "configured": configured}

    @needs(Permission.MANAGE_JOBS)
    @blp.arguments(SecretArgs)
    @blp.response(200, SecretResponse)
    def put(self, args):
        """Set the secret that signs your webhooks (X-Flowbin-Signature); shown in this answer
        only. Applies to every attempt from now on, including retries of earlier deliveries."""
        secret = args["secret"] or "whsec_" + random_secrets.token_urlsafe(32)
        with store() as session:
            delivery_store.set_secret(session, principal().user_id, secret, delivery_store.utcnow())
        return {"status": "OK", "configured": True, "secret": secret}

    @needs(Permission.MANAGE_JOBS)
    @blp.response(200, SecretResponse)
    def delete(self):
        """Stop signing your webhooks"""
        with store() as session:
            delivery_store.set_secret(session, principal().user_id, None, delivery_store.utcnow())
        return {"status": "OK", "configured": False}
