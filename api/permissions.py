"""What each endpoint needs: every view method declares one permission with ``@needs`` (or that
any signed-in caller may use it, or that it is public), the blueprint checks it before the view
runs, and the app refuses to start with an endpoint that declares nothing (``check_declared``).

A bearer token holds every permission; an API key only those it was made with, and a key
without the one an endpoint needs gets a 403 naming it."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_smorest.utils import deepupdate

from shared.states import Permission

# Declarations that are not a permission.
SIGNED_IN = "signed in"  # any valid credential (e.g. GET /api/v2/users/me)
PUBLIC = "public"  # no credential at all (health, docs)
NEEDS_ATTRIBUTE = "_flowbin_needs"


def needs(requirement: Permission | str):
    """Declare what the decorated view method needs; put it above the other decorators."""
    if requirement not in (SIGNED_IN, PUBLIC) and not isinstance(requirement, Permission):
        raise ValueError(f"not a permission: {requirement!r}")

    def mark(view):
        setattr(view, NEEDS_ATTRIBUTE, requirement)
        if isinstance(requirement, Permission):
            # Shown in the spec beside the operation, as seed 003 names its permissions.
            view._apidoc = getattr(view, "_apidoc", {})
            view._apidoc["manual_doc"] = deepupdate(
                view._apidoc.get("manual_doc", {}), {"x-permission": str(requirement)}
            )
        return view

    return mark


def _view_method(app: Flask, endpoint: str, method: str):
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    if method == "HEAD" and not hasattr(view_class, "head"):
        return getattr(view_class, "get", None)  # Flask answers HEAD with GET
    return getattr(view_class, method.lower(), None)


def requirement_of(app: Flask, endpoint: str, method: str) -> Permission | str | None:
    return getattr(_view_method(app, endpoint, method), NEEDS_ATTRIBUTE, None)


def current_requirement() -> Permission | str:
    """What the request's endpoint declared (checked at start-up, so it declared something)."""
    return requirement_of(current_app, request.endpoint, request.method)


# Flask's and flask-smorest's own endpoints, which serve no data.
FRAMEWORK_ENDPOINTS = {"static", "api-docs.openapi_json", "api-docs.openapi_swagger_ui"}


def check_declared(app: Flask) -> None:
    """Refuse to start if an endpoint method declares no permission."""
    missing = [
        f"{sorted(rule.methods - {'HEAD', 'OPTIONS'})} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in FRAMEWORK_ENDPOINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if requirement_of(app, rule.endpoint, method) is None
    ]
    if missing:
        raise RuntimeError(
            "these endpoints declare no permission (api/permissions.py needs): "
            + ", ".join(sorted(set(missing)))
        )
