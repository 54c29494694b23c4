"""The machinery of tests/integration/test_authorization_matrix.py: how a row of the matrix says
whom an endpoint lets in, how a cell is called as one principal, and how its answer is judged.

A row is one (method, rule) of the app's url_map; it has one or more cases (a way to call it,
e.g. a drive path in the team's space or in a shared job's output) and, per case, an outcome
for each principal:

- OK: allowed and done (200/201/204); CONFLICT: allowed, but the job's state refuses the action
  (409, e.g. pausing a finished job); ALLOWED: either of those.
- FORBIDDEN: 403 whose msg says who may (or, for an API key, names the missing permission).
- HIDDEN: 404 whose body is exactly what the same request naming an object that does not exist
  answers, so that a job, team or path the caller may not see cannot be told from a missing one.
- UNAUTHORIZED: 401 (no credential).

KEY (an API key of the owner without the permission the row declares), ADMIN_KEY (a key of an
admin with every permission but Admin: it acts as a plain user) and ANON (no credential) are
derived from the row's permission, so that the table states only what depends on the row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.permissions import PUBLIC, SIGNED_IN
from shared.states import Permission

OK = "ok"
CONFLICT = "conflict"
ALLOWED = "allowed"
FORBIDDEN = "forbidden"
HIDDEN = "hidden"
UNAUTHORIZED = "unauthorized"

STATUSES = {
    OK: {200, 201, 202, 204},
    CONFLICT: {409},
    ALLOWED: {200, 201, 202, 204, 409},
    FORBIDDEN: {403},
    HIDDEN: {404},
    UNAUTHORIZED: {401},
}

# The principals whose outcome each case states; the last three are derived (see above).
USERS = ("OWNER", "MEMBER", "VIEWER", "STEP", "STAR", "STRANGER", "ADMIN")
DERIVED = ("KEY", "ADMIN_KEY", "ANON")
PRINCIPALS = USERS + DERIVED


def rule(
    ok: tuple[str, ...] = (),
    conflict: tuple[str, ...] = (),
    allowed: tuple[str, ...] = (),
    forbidden: tuple[str, ...] = (),
    hidden: tuple[str, ...] = (),
) -> dict[str, str]:
    """Each of USERS's outcome; every one of them must be named exactly once."""
    table: dict[str, str] = {}
    for kind, names in (
        (OK, ok),
        (CONFLICT, conflict),
        (ALLOWED, allowed),
        (FORBIDDEN, forbidden),
        (HIDDEN, hidden),
    ):
        for name in names:
            assert name in USERS, f"unknown principal {name!r}"
            assert name not in table, f"{name} named twice"
            table[name] = kind
    assert set(table) == set(USERS), f"no outcome for {sorted(set(USERS) - set(table))}"
    return table


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: Any = None  # a dict is sent as JSON text (as the seeds' clients do), bytes as they are
    headers: dict[str, str] | None = None  # besides the credential


# (context, principal, subject) -> the request; the subject is the object the cell is about
# (a job id, a drive path, a team id ...), so that the same request can name a missing one.
Builder = Callable[[Any, str, str], Call]


@dataclass(frozen=True)
class Case:
    name: str
    call: Builder
    expect: dict[str, str]
    # The object the request names, per principal (it may create it: a fresh key, team, file).
    subject: Callable[[Any, str], str] = lambda ctx, who: ""
    # The same kind of object, but one that does not exist (for HIDDEN cells).
    unknown: Callable[[str], str] | None = None
    # What a FORBIDDEN cell's msg (other than a key's) must contain.
    says: str = ""
    # Further checks of an allowed answer: (context, principal, body) -> None, asserting.
    check: Callable[[Any, str, Any], None] | None = None


@dataclass(frozen=True)
class Row:
    permission: Permission | str  # what the endpoint declares (checked against the app)
    cases: tuple[Case, ...] = field(default_factory=tuple)


def row(permission: Permission | str, *cases: Case) -> Row:
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), f"duplicate case names {names}"
    return Row(permission, cases)


def key_message(permission: Permission) -> str:
    return f"this API key lacks the {permission} permission"


def outcome(row_: Row, case: Case, who: str) -> str:
    """What ``who`` gets for ``case`` of ``row_``."""
    if who == "ANON":
        return OK if row_.permission == PUBLIC else UNAUTHORIZED
    if who == "KEY":
        return FORBIDDEN if isinstance(row_.permission, Permission) else OK
    if who == "ADMIN_KEY":
        # Without Admin the key's admin owner acts as a plain user with no relation to anything.
        return FORBIDDEN if row_.permission == Permission.ADMIN else case.expect["STRANGER"]
    return case.expect[who]


def substituted(body: Any, unknown: str, subject: str) -> Any:
    """``body`` with every mention of ``unknown`` replaced by ``subject``."""
    return json.loads(json.dumps(body).replace(unknown, subject))


def judge(
    row_: Row,
    case: Case,
    who: str,
    send: Callable[[str, Call], Any],
    ctx: Any,
) -> None:
    """Call ``case`` as ``who`` through ``send(who, call)`` and assert the row's outcome."""
    subject = case.subject(ctx, who)
    call = case.call(ctx, who, subject)
    response = send(who, call)
    body = response.get_json(silent=True)
    kind = outcome(row_, case, who)
    shown = f"{call.method} {call.url} as {who}: {response.status_code} {body!r}"
    assert response.status_code in STATUSES[kind], f"expected {kind}; {shown}"
    if kind == FORBIDDEN:
        message = body["msg"]
        if who in ("KEY", "ADMIN_KEY"):
            permission = Permission.ADMIN if who == "ADMIN_KEY" else row_.permission
            assert key_message(permission) in message, shown
        else:
            assert case.says, f"row {call.method} has no 'says' for its 403s"
            assert case.says in message, f"the 403 does not say {case.says!r}; {shown}"
    elif kind == HIDDEN:
        assert case.unknown is not None, f"{shown}: the case names no unknown object"
        missing = case.unknown(subject)
        reference = send(who, case.call(ctx, who, missing))
        assert reference.status_code == 404, (
            f"the reference request for a missing object is not a 404: "
            f"{reference.status_code} {reference.get_json(silent=True)!r}"
        )
        expected = substituted(reference.get_json(), missing, subject)
        assert body == expected, (
            f"a hidden object is told apart from a missing one; {shown}; a missing one gives "
            f"{reference.get_json()!r}"
        )
    elif kind == UNAUTHORIZED:
        assert "Authorization" in body["msg"], shown
    elif case.check is not None:
        case.check(ctx, who, body)


def cells(matrix: dict[tuple[str, str], Row]) -> list[tuple[tuple[str, str], str, str, str]]:
    """(row key, case name, principal, test id) of every cell."""
    found = []
    for key, row_ in matrix.items():
        for case in row_.cases:
            label = f"{key[0]} {key[1]}" + (f"[{case.name}]" if case.name else "")
            for who in PRINCIPALS:
                found.append((key, case.name, who, f"{label}-{who}"))
    return found


def case_of(row_: Row, name: str) -> Case:
    return next(case for case in row_.cases if case.name == name)


__all__ = [
    "ALLOWED",
    "CONFLICT",
    "FORBIDDEN",
    "HIDDEN",
    "OK",
    "PRINCIPALS",
    "PUBLIC",
    "SIGNED_IN",
    "USERS",
    "Call",
    "Case",
    "Row",
    "case_of",
    "cells",
    "judge",
    "row",
    "rule",
]
