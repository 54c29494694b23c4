"""One error payload for every error: ``{"status": "ERROR", "msg": "<what to fix>"}``."""

from __future__ import annotations

import logging

import marshmallow as ma
from flask import has_request_context, jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from shared.errors import FlowbinError

log = logging.getLogger(__name__)


# v2's errors also carry a ``code``: a word a program can branch on.
V2_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "unprocessable",
    503: "unavailable",
}


def error_response(code: int, msg: str, headers: dict | None = None):
    body = {"status": "ERROR", "msg": msg}
    if has_request_context() and request.path.startswith("/api/v2/"):
        body["code"] = V2_CODES.get(code, "internal_error" if code >= 500 else "error")
    response = jsonify(body)
    response.status_code = code
    response.headers.update(headers or {})
    return response


def describe_messages(messages, prefix: str = "", top: bool = True) -> list[str]:
    """Flatten webargs' nested validation messages into 'field: reason' lines."""
    if isinstance(messages, dict):
        lines = []
        for key, value in messages.items():
            # Top-level keys are webargs locations ("json", "query"); they add nothing. Only
            # there: a body field may be called "files" (run_binary_sync).
            name = (
                prefix
                if top and key in ("json", "query", "files", "form", "headers") and not prefix
                else f"{prefix}.{key}"
                if prefix
                else str(key)
            )
            lines.extend(describe_messages(value, name, top=False))
        return lines
    if isinstance(messages, list):
        return [f"{prefix}: {m}" if prefix else str(m) for m in messages if isinstance(m, str)] + [
            line
            for m in messages
            if not isinstance(m, str)
            for line in describe_messages(m, prefix, top=False)
        ]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


class ErrorSchema(ma.Schema):
    """The body of every error answer, as the spec shows it."""

    status = ma.fields.String(metadata={"enum": ["ERROR"]})
    msg = ma.fields.String(metadata={"description": "what is wrong and how to fix it"})
    code = ma.fields.String(metadata={"description": "/api/v2 only: the kind of error"})


class FlowbinApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or data.get("errors")
        if messages:
            msg = "; ".join(describe_messages(messages))
        else:
            msg = data.get("message") or error.description or error.name
        return error_response(error.code or 500, msg, data.get("headers"))


def register_error_handlers(app) -> None:
    @app.errorhandler(FlowbinError)
    def _flowbin_error(error: FlowbinError):
        return error_response(error.http_status, error.msg)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return app.extensions["flowbin.api"].handle_http_exception(error)
        log.exception("unhandled error")
        return error_response(500, "internal error: this is a bug in Flowbin, please report it")
