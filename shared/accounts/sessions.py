"""Web UI sessions: a signed cookie keeps only the id of the credential (token or API key) its
user signed in with, never the secret, and every request asks the store again who that
credential is, so a revoked key or an expired one ends the session at once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from shared.accounts.credentials import key_expired, principal_of
from shared.accounts.principal import Principal
from shared.errors import Unauthorized
from shared.store.db import connection_of
from shared.store.models import ApiToken, User
from shared.store.prepared import Prepared

SIGNED_OUT = "your session has ended (its token or API key was revoked or expired): sign in again"

_tokens = ApiToken.__table__
_users = User.__table__
_CREDENTIAL_BY_ID = Prepared(
    select(
        _users.c.id,
        _users.c.username,
        _users.c.is_admin,
        _tokens.c.key_id,
        _tokens.c.permissions,
        _tokens.c.expires_at,
    )
    .join(_tokens, _tokens.c.user_id == _users.c.id)
    .where(_tokens.c.id == bindparam("credential_id"))
)


def principal_of_credential(store: Session | Connection, credential_id: int) -> Principal:
    """Who the credential ``credential_id`` authenticates now, with the same rights as the
    Authorization header carrying it would have (shared/accounts/credentials.identify)."""
    row = _CREDENTIAL_BY_ID.first(connection_of(store), {"credential_id": credential_id})
    if row is None or (row.key_id is not None and key_expired(row, datetime.now(UTC))):
        raise Unauthorized(SIGNED_OUT)
    return principal_of(row, credential_id)
