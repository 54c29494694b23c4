"""API keys (``/api/v2/api-keys``): your keys for programs, each with a name, permissions and an
optional expiry. A new key is shown once; it is stored hashed, and revoking it works at once."""

from __future__ import annotations

from flask.views import MethodView

from api.account_presenters import key_view
from api.account_schemas import CreateKeyArgs, KeysResponse, NewKeySchema
from api.blueprint import Blueprint, principal
from api.context import store
from api.permissions import needs
from shared.accounts import credentials
from shared.states import Permission

blp = Blueprint(
    "api_keys",
    __name__,
    url_prefix="/api/v2/api-keys",
    description="API keys: 'Authorization: Basic <key>', with the permissions they were given",
)


@blp.route("")
class ApiKeys(MethodView):
    @needs(Permission.ADMIN)
    @blp.response(200, KeysResponse)
    def get(self):
        """Your API keys, without their secrets"""
        with store(read_only=True) as session:
            rows = credentials.keys_of(session, principal().user_id)
            return {"values": [key_view(row) for row in rows]}

    @needs(Permission.ADMIN)
    @blp.arguments(CreateKeyArgs)
    @blp.response(201, NewKeySchema)
    def post(self, args):
        """Create an API key; its secret (`key`) is shown only in this answer"""
        caller = principal()
        with store() as session:
            row, key = credentials.create_key(
                session,
                caller.user_id,
                args["name"],
                credentials.parse_permissions(args["permissions"]),
                args["expires_at"],
                granted_by=caller,
            )
            return {**key_view(row), "key": key}


@blp.route("/<string(length=36):key_id>")
class ApiKey(MethodView):
    @needs(Permission.ADMIN)
    @blp.response(204)
    def delete(self, key_id: str):
        """Revoke an API key: the next request with it is refused"""
        with store() as session:
            credentials.revoke_key(session, principal().user_id, key_id)
