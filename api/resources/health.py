"""Liveness: answers without a token."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import text

from api.blueprint import Blueprint
from api.context import store
from api.permissions import PUBLIC, needs

blp = Blueprint(
    "health",
    __name__,
    url_prefix="/health",
    authenticated=False,
    description="Liveness of the API and its store",
)


class HealthSchema(ma.Schema):
    status = ma.fields.String()


@blp.route("")
class Health(MethodView):
    @needs(PUBLIC)
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    def get(self):
        # Read-only: on SQLite a liveness probe must not queue behind a writer's lock.
        with store(read_only=True) as session:
            session.execute(text("SELECT 1"))
        return {"status": "OK"}
