"""Credentials: bearer tokens (every right of their user) and API keys (a name, permissions, an
optional expiry). Both are shown once and stored only as a SHA-256 hash, in one table, so that a
request is authenticated by one indexed lookup whichever it carries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from shared.accounts.principal import Principal
from shared.accounts.users import ADMIN_USERNAME, create_user
from shared.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from shared.states import ALL_PERMISSIONS, Permission
from shared.store.db import connection_of
from shared.store.models import ApiToken, User
from shared.store.prepared import Prepared
from shared.store.types import new_uuid

# A key's last use is written at most this often: a write per request would serialise every
# request on SQLite's write lock, and "used in the last minute" is what an owner wants to know.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_KEY_NAME = 100


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "fb_" + secrets.token_urlsafe(32)


def new_key() -> str:
    return "fbk_" + secrets.token_urlsafe(32)


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


def parse_permissions(names: list[str]) -> frozenset[Permission]:
    known = {permission.value: permission for permission in Permission}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidRequest(f"unknown permission {unknown[0]!r}: use {', '.join(known)}")
    if not names:
        raise InvalidRequest(f"a key needs at least one permission: {', '.join(known)}")
    return frozenset(known[name] for name in names)


def create_key(
    session: Session,
    user_id: int,
    name: str,
    permissions: frozenset[Permission],
    expires_at: datetime | None = None,
    *,
    granted_by: Principal | None = None,
) -> tuple[ApiToken, str]:
    """A new API key of ``user_id`` and its secret in the clear (the only time it is seen).
    A key made with a key (``granted_by``) can hold no permission that key lacks."""
    if not name.strip() or len(name) > MAX_KEY_NAME:
        raise InvalidRequest(f"a key's name is 1-{MAX_KEY_NAME} characters")
    if granted_by is not None:
        beyond = [p for p in sorted(permissions) if not granted_by.may(p)]
        if beyond:
            raise InvalidRequest(f"a key cannot grant {beyond[0]}, which the key making it lacks")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidRequest("expires_at is in the past: give a time in the future")
    key = new_key()
    row = ApiToken(
        user_id=user_id,
        token_hash=hash_token(key),
        name=name,
        key_id=new_uuid(),
        permissions=sorted(permission.value for permission in permissions),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, key


def keys_of(session: Session, user_id: int) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.key_id.is_not(None))
            .order_by(ApiToken.created_at, ApiToken.id)
        )
    )


def revoke_key(session: Session, user_id: int, key_id: str) -> None:
    """Delete the key at once: the next request with it is a 401. Another user's key is as
    missing as one that does not exist."""
    row = session.scalar(
        select(ApiToken).where(ApiToken.key_id == key_id, ApiToken.user_id == user_id)
    )
    if row is None:
        raise NotFound(f"no API key with id {key_id!r}")
    session.delete(row)


# Every request runs it: a prepared statement (shared/store/prepared.py).
_tokens = ApiToken.__table__
_users = User.__table__
_CREDENTIAL_BY_HASH = Prepared(
    select(
        _users.c.id,
        _users.c.username,
        _users.c.is_admin,
        _tokens.c.id.label("credential_id"),
        _tokens.c.key_id,
        _tokens.c.permissions,
        _tokens.c.expires_at,
        _tokens.c.last_used_at,
    )
    .join(_tokens, _tokens.c.user_id == _users.c.id)
    .where(_tokens.c.token_hash == bindparam("token_hash"))
)
_TOUCH = (
    update(_tokens)
    .where(_tokens.c.id == bindparam("credential_id"))
    .values(last_used_at=bindparam("now"))
)


def _candidates(scheme: str, credentials: str) -> list[tuple[str, str | None]]:
    """The secrets an Authorization header may carry, each with the username it claims.

    ``Bearer <token>``; ``Basic <key>`` (seed 003's form) or ``Basic base64(user:key)`` (HTTP
    basic auth, as most HTTP clients send it). The bare form is tried first: a key is not
    base64 of anything with a colon, but nothing forbids it."""
    found: list[tuple[str, str | None]] = [(credentials, None)]
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, secret = decoded.partition(":")
        if colon and secret:
            found.append((secret, username))
    return found


def authenticate(store: Session | Connection, secret: str) -> Principal:
    return identify(store, "bearer", secret)[0]


def key_expired(row, now: datetime) -> bool:
    """Whether the API key of a credential row (``expires_at``) has expired at ``now``."""
    return row.expires_at is not None and row.expires_at <= now


def principal_of(row, credential_id: int) -> Principal:
    """Who a credential row (the user's ``id``, ``username``, ``is_admin``; the credential's
    ``key_id`` and ``permissions``) authenticates: a token acts with its user's rights; an API
    key holds only its permissions, and acts as an admin only with Admin."""
    if row.key_id is None:
        return Principal(row.id, row.username, row.is_admin, credential_id=credential_id)
    permissions = frozenset(Permission(name) for name in row.permissions or ())
    return Principal(
        row.id,
        row.username,
        row.is_admin and Permission.ADMIN in permissions,
        permissions=permissions & ALL_PERMISSIONS,
        key_id=row.key_id,
        credential_id=credential_id,
    )


def identify(
    store: Session | Connection, scheme: str, credentials: str
) -> tuple[Principal, datetime | None]:
    """The principal an Authorization header's ``scheme`` and ``credentials`` authenticate,
    and for a key whose last use is not recent the time to record as its last use (the caller
    writes it, outside its read-only transaction)."""
    row = None
    for secret, claimed_user in _candidates(scheme, credentials):
        row = _CREDENTIAL_BY_HASH.first(connection_of(store), {"token_hash": hash_token(secret)})
        if row is not None and (claimed_user is None or claimed_user == row.username):
            break
        row = None
    if row is None:
        raise Unauthorized(
            "the token or API key is not valid: send 'Authorization: Bearer <token>' or "
            "'Authorization: Basic <api key>'"
        )
    now = datetime.now(UTC)
    if row.key_id is None:
        return principal_of(row, row.credential_id), None
    if key_expired(row, now):
        raise Unauthorized(f"the API key expired at {row.expires_at.isoformat()}: create a new one")
    principal = principal_of(row, row.credential_id)
    last_used = row.last_used_at
    stale = last_used is None or now - last_used >= LAST_USED_RESOLUTION
    return principal, now if stale else None


def record_use(connection: Connection, principal: Principal, now: datetime) -> None:
    connection.execute(_TOUCH, {"credential_id": principal.credential_id, "now": now})
