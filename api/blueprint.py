"""A Blueprint that reads JSON bodies sent without a JSON content type, as the seeds' Python
examples do (``requests.post(url, data=json.dumps(args))``), that needs a token or an API key,
and that checks the permission each endpoint declares (api/permissions.py)."""

from __future__ import annotations

import json
import typing

import flask
import flask_smorest
from flask import g, request
from webargs import core
from webargs.flaskparser import FlaskParser

from api import permissions
from api.lenient import LenientSchema
from api.ui import session as web_session
from shared.accounts.credentials import identify, record_use
from shared.accounts.principal import Principal
from shared.errors import Unauthorized
from shared.store.db import statement_scope


class LenientJsonParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        data = req.get_data(cache=True)
        if not data.strip():
            return core.missing
        return core.parse_json(data)

    def _handle_invalid_json_error(self, error, req, *args, **kwargs) -> typing.NoReturn:
        flask_smorest.abort(400, message=f"the request body is not valid JSON: {error}")


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = LenientJsonParser()

    def __init__(self, *args, authenticated: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if authenticated:
            self.before_request(_require_principal)

    def arguments(self, schema, *args, **kwargs):
        # One schema instance per endpoint: handed a class, webargs builds a new schema (and
        # every nested one) on each request. Loading keeps no state on the instance.
        if isinstance(schema, type):
            schema = schema()
        if isinstance(schema, LenientSchema):
            schema.reports_unknown = True
        return super().arguments(schema, *args, **kwargs)


def _require_principal() -> None:
    # OPTIONS, which Flask answers itself, is the only method that declares nothing.
    requirement = permissions.current_requirement() or permissions.SIGNED_IN
    if requirement == permissions.PUBLIC:
        return
    header = request.headers.get("Authorization", "")
    url = flask.current_app.config["FLOWBIN_SETTINGS"].sql_url
    if not header and web_session.has_session():
        # The web UI's fetch calls: the session cookie, always with its CSRF token.
        web_session.check_csrf()
        g.principal = web_session.session_principal(url)
        if requirement != permissions.SIGNED_IN:
            g.principal.require(requirement)
        return
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() not in ("bearer", "basic") or not credentials.strip():
        raise Unauthorized(
            "missing or malformed Authorization header: send 'Authorization: Bearer <token>' "
            "or 'Authorization: Basic <api key>'"
        )
    with statement_scope(url, read_only=True) as conn:
        principal, used_at = identify(conn, scheme.lower(), credentials.strip())
    if used_at is not None:
        with statement_scope(url) as conn:
            record_use(conn, principal, used_at)
    g.principal = principal
    if requirement != permissions.SIGNED_IN:
        principal.require(requirement)


def require_principal() -> None:
    """What this Blueprint does before each view, for a plain Flask view (``GET /metrics``)."""
    _require_principal()


def principal() -> Principal:
    return g.principal


def dumps(payload) -> str:
    return json.dumps(payload, separators=(", ", ": "))
