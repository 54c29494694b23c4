"""Prometheus metrics (``GET /metrics``), for admins and for the scraper's metrics token.

A plain Flask route, out of the OpenAPI spec: it answers Prometheus's text format, not JSON,
and is an operator's endpoint rather than part of the API (docs/metrics.md)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from api import blueprint
from api.context import settings
from api.permissions import needs
from shared.errors import Forbidden
from shared.metrics import exposition
from shared.states import Permission

blp = Blueprint("metrics", __name__)


@blp.route("/metrics", methods=["GET"])
@needs(Permission.ADMIN)
def metrics() -> Response:
    """Every series (docs/metrics.md): to an admin's token or key, or the metrics token."""
    if not _is_metrics_token(request.headers.get("Authorization", "")):
        blueprint.require_principal()  # 401 without a credential; a key lacking Admin: 403
        if not blueprint.principal().is_admin:
            raise Forbidden(
                "only admins or the metrics token (FLOWBIN_METRICS_TOKEN) may read /metrics"
            )
    return Response(exposition.render(settings()), content_type=exposition.CONTENT_TYPE)


def _is_metrics_token(header: str) -> bool:
    token = settings().metrics_token
    scheme, _, credentials = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    # Constant time: how much of a guess matched must not show in how long the answer takes.
    return hmac.compare_digest(credentials.strip().encode(), token.encode())
