"""Users, teams and keys as the API shows them (the shapes of api/account_schemas.py)."""

from __future__ import annotations

from shared.states import TeamRole
from shared.store.models import ApiToken, Team, User


def user_ref(user: User) -> dict:
    return {"id": user.uuid, "username": user.username, "email": user.email}


def user_view(user: User) -> dict:
    return {**user_ref(user), "is_admin": user.is_admin, "created_at": user.created_at}


def team_view(team: Team, members: list[tuple[User, TeamRole]]) -> dict:
    return {
        "id": team.id,
        "name": team.name,
        "created_at": team.created_at,
        "members": [{"user": user_ref(user), "role": role} for user, role in members],
    }


def key_view(row: ApiToken) -> dict:
    return {
        "id": row.key_id,
        "name": row.name,
        "permissions": list(row.permissions or ()),
        "expires_at": row.expires_at,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
    }
