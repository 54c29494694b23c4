"""The authenticated caller of a request, with what its credential allows."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Forbidden
from shared.states import ALL_PERMISSIONS, Permission


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    # Effective: the user is an admin and the credential does not withhold it (a key without
    # the Admin permission acts as a plain user, even when its owner is an admin).
    is_admin: bool
    permissions: frozenset[Permission] = ALL_PERMISSIONS
    # The API key the request came with; None for a bearer token or a worker acting as owner.
    key_id: str | None = None
    # The credential row that authenticated it (shared/accounts/credentials.py).
    credential_id: int | None = None

    def may(self, permission: Permission) -> bool:
        return Permission.ADMIN in self.permissions or permission in self.permissions

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise Forbidden(
                f"this API key lacks the {permission} permission; "
                f"create a key with {permission} to do this"
            )
