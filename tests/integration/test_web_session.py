"""The web UI's session against the `stack` store, through a test client of its own (its own
cookie jar): sign in with a token or an API key, the CSRF token the API needs with the cookie,
a key's permissions and its revocation, sign out, and the session key kept in the data folder."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from api.app import create_app
from api.ui.session import secret_key
from shared.accounts.credentials import create_key, revoke_key
from shared.accounts.users import find_user
from shared.config import Settings
from shared.states import Permission
from shared.store.db import session_scope

pytestmark = pytest.mark.integration

CSRF = re.compile(rb'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def browser_like(stack):
    """A client with a cookie jar of its own, as one browser is."""
    return create_app(stack.settings).test_client()


def sign_in(client, secret: str) -> str:
    answer = client.post("/ui/session", json={"token": secret})
    assert answer.status_code == 200, answer.get_json()
    page = client.get("/jobs")
    assert page.status_code == 200
    return CSRF.search(page.data).group(1).decode()


def test_the_cookie_needs_its_csrf_token_and_an_authorization_header_wins(stack, browser_like):
    csrf = sign_in(browser_like, stack.tokens["alice"])
    refused = browser_like.get("/api/v1/jobs/list")
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.get_json()["msg"]
    wrong = browser_like.get("/api/v1/jobs/list", headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403
    me = browser_like.get("/api/v2/users/me", headers={"X-CSRF-Token": csrf})
    assert me.status_code == 200 and me.get_json()["username"] == "alice"
    # A request with an Authorization header is the header's caller, cookie or not.
    bob = browser_like.get("/api/v2/users/me", headers=stack.headers("bob"))
    assert bob.get_json()["username"] == "bob"
    # A form post from another site can send neither JSON nor the header.
    forged = browser_like.post("/ui/session", data={"token": stack.tokens["bob"]})
    assert forged.status_code == 400
    assert browser_like.delete("/ui/session").status_code == 403  # sign-out needs it too
    assert browser_like.delete("/ui/session", headers={"X-CSRF-Token": csrf}).status_code == 200
    after = browser_like.get("/api/v2/users/me", headers={"X-CSRF-Token": csrf})
    assert after.status_code == 401
    assert browser_like.get("/jobs").status_code == 401


def test_a_key_session_has_the_keys_permissions_and_ends_when_it_is_revoked(stack, browser_like):
    with session_scope(stack.settings.sql_url) as session:
        alice = find_user(session, "alice")
        row, key = create_key(session, alice.id, "ui view only", frozenset({Permission.VIEW_JOBS}))
        key_id = row.key_id
    csrf = sign_in(browser_like, key)
    headers = {"X-CSRF-Token": csrf}
    assert browser_like.get("/api/v1/jobs/list", headers=headers).status_code == 200
    tagged = browser_like.post("/api/v1/jobs/tags", json={"job_id": "x"}, headers=headers)
    assert tagged.status_code == 403 and "ManageJobs" in tagged.get_json()["msg"]
    with session_scope(stack.settings.sql_url) as session:
        revoke_key(session, alice.id, key_id)
    ended = browser_like.get("/api/v1/jobs/list", headers=headers)
    assert ended.status_code == 401 and "sign in again" in ended.get_json()["msg"]
    page = browser_like.get("/jobs", headers={"Accept": "text/html"})
    assert page.status_code == 401 and b'<label for="token">Token</label>' in page.data


def test_the_session_key_is_made_once_and_kept(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    first = secret_key(settings)
    assert len(first) >= 40 and secret_key(settings) == first
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert secret_key(replace(settings, secret_key="from-the-environment")) == (
        "from-the-environment"
    )
