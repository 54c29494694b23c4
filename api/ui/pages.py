"""The UI's pages and its session endpoints. A page is a shell: it renders at once, whatever
the store holds, and its script pages the data in with the JSON API.

A page needs a signed-in caller: the session cookie, or an Authorization header as the API
takes it. Without one it answers 401: the sign-in form for a browser (which then comes back to
the page), the API's JSON error for anything else."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, redirect, render_template, request

from api.context import settings
from api.errors import error_response
from api.permissions import PUBLIC, SIGNED_IN, needs
from api.ui import session as web_session
from shared.accounts.credentials import identify
from shared.accounts.principal import Principal
from shared.errors import InvalidRequest, Unauthorized
from shared.store.db import statement_scope

blp = Blueprint("ui", __name__, template_folder="templates")

SIGN_IN_NEEDED = (
    "sign in at / first, or send 'Authorization: Bearer <token>' or "
    "'Authorization: Basic <api key>'"
)


def _caller() -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() not in ("bearer", "basic") or not credentials.strip():
            return None
        with statement_scope(settings().sql_url, read_only=True) as conn:
            return identify(conn, scheme.lower(), credentials.strip())[0]
    return web_session.session_principal(settings().sql_url)


def _wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > 0


def _sign_in_page(message: str, status: int):
    return render_template("sign_in.html", message=message, next_page=request.full_path), status


def _page(template: str, **context):
    try:
        caller = _caller()
    except Unauthorized as error:
        if _wants_html():
            return _sign_in_page(error.msg, 401)
        raise
    if caller is None:
        if _wants_html():
            return _sign_in_page("Sign in to see this page.", 401)
        return error_response(401, SIGN_IN_NEEDED)
    g.principal = caller
    return render_template(
        template,
        caller=caller,
        csrf_token=web_session.csrf_token(),
        cookie_session=web_session.has_session(),
        **context,
    )


@blp.get("/")
@needs(PUBLIC)
def sign_in_page():
    """The sign-in form; a signed-in browser goes on to its jobs."""
    if web_session.has_session():
        try:
            if web_session.session_principal(settings().sql_url) is not None:
                return redirect("/jobs")
        except Unauthorized as error:
            return _sign_in_page(error.msg, 200)
    return _sign_in_page("", 200)


@blp.post("/ui/session")
@needs(PUBLIC)
def sign_in():
    """Sign in: ``{"token": "<token or API key>"}`` as JSON (a cross-site form cannot send a
    JSON body, so no other site can sign a browser in)."""
    if not request.is_json:
        raise InvalidRequest('send the token as JSON: {"token": "..."}')
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        raise InvalidRequest('send the token as JSON: {"token": "..."}')
    principal = web_session.sign_in(settings().sql_url, body["token"])
    return jsonify({"status": "OK", "username": principal.username, "next": "/jobs"})


@blp.delete("/ui/session")
@needs(PUBLIC)
def sign_out():
    """Sign out: the session ends (its CSRF token is needed, as for every state change)."""
    if web_session.has_session():
        web_session.check_csrf()
    web_session.sign_out()
    return jsonify({"status": "OK"})


@blp.get("/jobs")
@needs(SIGNED_IN)
def jobs_page():
    return _page("jobs.html", page="jobs")


@blp.get("/jobs/<string(minlength=1, maxlength=50):job_id>")
@needs(SIGNED_IN)
def job_page(job_id: str):
    return _page("job.html", page="jobs", job_id=job_id)


@blp.get("/run")
@needs(SIGNED_IN)
def run_page():
    return _page("run.html", page="run")


@blp.get("/drive")
@needs(SIGNED_IN)
def drive_page():
    return _page("drive.html", page="drive")


@blp.get("/review")
@needs(SIGNED_IN)
def review_queue_page():
    return _page("review_queue.html", page="review")


@blp.get("/review/<string(minlength=1, maxlength=50):job_id>")
@needs(SIGNED_IN)
def review_page(job_id: str):
    return _page("review.html", page="review", job_id=job_id)


def register(app) -> None:
    web_session.configure(app, app.config["FLOWBIN_SETTINGS"])
    app.register_blueprint(blp)
