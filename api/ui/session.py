"""The web UI's session: sign in with a token or API key, a signed, expiring, HttpOnly and
SameSite cookie that keeps only the credential's id and a CSRF token, and the check of that
CSRF token on every API request made with the cookie.

The cookie is Flask's session, signed with the app's SECRET_KEY: ``FLOWBIN_SECRET_KEY``, or a
key generated once into ``<data dir>/secret_key`` so that every gunicorn worker and every
restart signs and reads the same cookies."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, request, session

from shared.accounts.credentials import identify, record_use
from shared.accounts.principal import Principal
from shared.accounts.sessions import principal_of_credential
from shared.config import Settings
from shared.errors import Forbidden, Unauthorized
from shared.store.db import statement_scope

SESSION_LIFETIME = timedelta(hours=12)
CSRF_HEADER = "X-CSRF-Token"
SECRET_KEY_FILE = "secret_key"


def secret_key(settings: Settings) -> str:
    """``FLOWBIN_SECRET_KEY``, else the data folder's key, created by whichever process comes
    first: the key is written whole to a file of its own, then hard-linked into place, which
    fails if another process linked its key first (gunicorn workers starting together agree)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / SECRET_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        try:
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    return path.read_text().strip()


def configure(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_NAME="flowbin_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # The session lasts 12 hours from sign-in, however busy; and answers carry no
        # Set-Cookie but the sign-in's and sign-out's.
        SESSION_REFRESH_EACH_REQUEST=False,
    )


def sign_in(sql_url: str, secret: str) -> Principal:
    """Check ``secret`` (a token or an API key) as an Authorization header would carry it and
    start a session for its credential."""
    secret = secret.strip()
    if not secret:
        raise Unauthorized("enter a token (fb_...) or an API key (fbk_...) to sign in")
    with statement_scope(sql_url, read_only=True) as conn:
        scheme = "basic" if secret.startswith("fbk_") else "bearer"
        principal, used_at = identify(conn, scheme, secret)
    if used_at is not None:
        with statement_scope(sql_url) as conn:
            record_use(conn, principal, used_at)
    session.clear()
    session.permanent = True
    session["credential_id"] = principal.credential_id
    session["csrf"] = secrets.token_urlsafe(32)
    return principal


def sign_out() -> None:
    session.clear()


def has_session() -> bool:
    return "credential_id" in session


def csrf_token() -> str:
    return session.get("csrf", "")


def check_csrf() -> None:
    """An API request made with the session cookie must carry the session's CSRF token in the
    X-CSRF-Token header: another site can make a browser send the cookie, but cannot read the
    token. Every method needs it, not only the state-changing ones: the seed's job control
    calls (jobs/pause, jobs/cancel ...) are GETs, and a top-level navigation from another site
    carries a SameSite=Lax cookie."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent, csrf_token()):
        raise Forbidden(
            f"missing or wrong {CSRF_HEADER} header: a request signed in with the web UI's "
            "session must send the CSRF token of the page's csrf-token meta tag"
        )


def session_principal(sql_url: str) -> Principal | None:
    """The session's principal, checked against the store on every request; None without a
    session. A session whose credential is gone is ended (401)."""
    credential_id = session.get("credential_id")
    if credential_id is None:
        return None
    try:
        with statement_scope(sql_url, read_only=True) as conn:
            return principal_of_credential(conn, credential_id)
    except Unauthorized:
        session.clear()
        raise
