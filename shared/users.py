"""Users and their API tokens. Tokens are shown once and stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from shared.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from shared.store.db import connection_of
from shared.store.models import ApiToken, User
from shared.store.prepared import Prepared

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request."""

    user_id: int
    username: str
    is_admin: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "fb_" + secrets.token_urlsafe(32)


def create_user(session: Session, username: str, *, is_admin: bool = False) -> User:
    if not USERNAME.match(username):
        raise InvalidRequest(
            f"username {username!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def create_token(
    session: Session, username: str, *, name: str = "", token: str | None = None
) -> str:
    """Create a token for ``username`` and return it in the clear (the only time it is seen)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}: create it first with `flowbin users create`")
    token = token or new_token()
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), name=name))
    session.flush()
    return token


def ensure_admin(session: Session, token: str) -> None:
    """Create (or update) the admin user ``admin`` so that ``token`` authenticates as it."""
    if len(token) < 16:
        raise InvalidRequest("FLOWBIN_ADMIN_TOKEN must be at least 16 characters long")
    user = session.scalar(select(User).where(User.username == ADMIN_USERNAME))
    if user is None:
        user = create_user(session, ADMIN_USERNAME, is_admin=True)
    user.is_admin = True
    token_hash = hash_token(token)
    existing = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if existing is None:
        session.add(ApiToken(user_id=user.id, token_hash=token_hash, name="FLOWBIN_ADMIN_TOKEN"))
    elif existing.user_id != user.id:
        raise Conflict("FLOWBIN_ADMIN_TOKEN is already the token of another user")
    session.flush()


# Every request runs it: a prepared statement (shared/store/prepared.py).
_PRINCIPAL_BY_TOKEN_HASH = Prepared(
    select(User.__table__.c.id, User.__table__.c.username, User.__table__.c.is_admin)
    .join(ApiToken.__table__, ApiToken.__table__.c.user_id == User.__table__.c.id)
    .where(ApiToken.__table__.c.token_hash == bindparam("token_hash"))
)


def authenticate(store: Session | Connection, token: str) -> Principal:
    row = _PRINCIPAL_BY_TOKEN_HASH.first(connection_of(store), {"token_hash": hash_token(token)})
    if row is None:
        raise Unauthorized("the token is not valid: pass 'Authorization: Bearer <token>'")
    return Principal(user_id=row.id, username=row.username, is_admin=row.is_admin)


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))
