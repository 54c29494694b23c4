"""Users (``/api/v2/users``): admins create and list them; anyone reads who they are."""

from __future__ import annotations

from flask.views import MethodView

from api.account_presenters import user_view
from api.account_schemas import CreateUserArgs, NewUserSchema, UserSchema, UsersResponse
from api.blueprint import Blueprint, principal
from api.context import guarded_drive, store
from api.permissions import SIGNED_IN, needs
from shared.accounts import credentials, users
from shared.errors import Forbidden, NotFound
from shared.states import Permission
from shared.store.models import User

blp = Blueprint("users", __name__, url_prefix="/api/v2/users", description="Users")


def _require_admin() -> None:
    if not principal().is_admin:
        raise Forbidden("only admins can list and create users")


@blp.route("")
class Users(MethodView):
    @needs(Permission.ADMIN)
    @blp.response(200, UsersResponse)
    def get(self):
        """Every user (admins only)"""
        _require_admin()
        with store(read_only=True) as session:
            return {"values": [user_view(user) for user in users.list_users(session)]}

    @needs(Permission.ADMIN)
    @blp.arguments(CreateUserArgs)
    @blp.response(201, NewUserSchema)
    def post(self, args):
        """Create a user with a first token (admins only); the token is shown only here"""
        _require_admin()
        with store() as session:
            user = users.create_user(
                session, args["username"], is_admin=args["is_admin"], email=args["email"]
            )
            token = credentials.create_token(session, user.username, name="first token")
            shown = {**user_view(user), "token": token}
        guarded_drive().space_home(user.username)
        return shown


@blp.route("/me")
class Me(MethodView):
    @needs(SIGNED_IN)
    @blp.response(200, UserSchema)
    def get(self):
        """The user the request's token or key belongs to"""
        with store(read_only=True) as session:
            user = session.get(User, principal().user_id)
            if user is None:  # deleted between authentication and now
                raise NotFound("your user no longer exists")
            return user_view(user)
