"""Liveness: answers without a token."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import text

from api.blueprint import Blueprint
from api.context import store

blp = Blueprint(
    "health",
    __name__,
    url_prefix="/health",
    authenticated=False,
    description="Liveness of the API and its store",
)


@blp.route("")
class Health(MethodView):
    def get(self):
        # Read-only: on SQLite a liveness probe must not queue behind a writer's lock.
        with store(read_only=True) as session:
            session.execute(text("SELECT 1"))
        return {"status": "OK"}
