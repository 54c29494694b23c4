"""Who may call which endpoint: every (method, rule) of the app's url_map has a row in MATRIX,
and every row says, for each kind of caller, whether it is let in (and done, or refused by the
job's state), refused with a 403 that says who may, or told that the object does not exist with
exactly the 404 a missing object gives. The rules are shared/accounts/access.py's and
docs/teams-and-sharing.md's; an endpoint added without a row fails
``test_every_endpoint_has_a_row``.

The callers (matrix_support.py): OWNER owns the jobs and is admin of team "Matrix Team", MEMBER
and VIEWER are its member and viewer, STEP collaborates on one step (``check_a``) of the jobs,
STAR on every step (``"*"``), STRANGER has no relation, ADMIN is an admin; KEY is an API key of
OWNER without the permission the row declares, ADMIN_KEY a key of ADMIN without Admin (a plain
user then), ANON sends no credential.

The jobs run once per module on the real worker, in the team's space: R stops two records at
two checkpoints (a.txt at ``check_a``, b.txt at ``check_b``) and is shared at submit; C completes
and is shared afterwards with POST jobs/collaboration. Control cells act on C, which is finished,
so that an allowed pause or cancel is a 409 and changes nothing; every cell can run in any order.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from uuid import uuid4

import pytest
from sqlalchemy import select, update

from api.app import create_app
from api.permissions import FRAMEWORK_ENDPOINTS, requirement_of
from shared.accounts.credentials import create_key, create_token
from shared.accounts.principal import Principal
from shared.accounts.teams import create_team, set_member
from shared.accounts.users import create_user, find_user
from shared.config import Settings
from shared.drive import Drive
from shared.states import (
    ALL_PERMISSIONS,
    ENDED,
    DeliveryStatus,
    JobKind,
    JobStatus,
    Permission,
    TeamRole,
)
from shared.store.db import session_scope
from shared.store.models import Delivery, Job, JobShare, Team
from tests.conftest import ApiUser
from tests.integration.control_udfs import CONTROL_UDFS
from tests.integration.flows import compile_flow, invoice, run_async, wait_done
from tests.integration.matrix_support import (
    ALLOWED,
    CONFLICT,
    FORBIDDEN,
    HIDDEN,
    OK,
    PUBLIC,
    SIGNED_IN,
    USERS,
    Call,
    Case,
    Row,
    case_of,
    cells,
    judge,
    row,
    rule,
)
from tests.support import wait_for

pytestmark = pytest.mark.integration

OWNER, MEMBER, VIEWER, STEP, STAR, STRANGER, ADMIN = USERS
USERNAMES = {
    OWNER: "mx_owner",
    MEMBER: "mx_member",
    VIEWER: "mx_viewer",
    STEP: "mx_step",
    STAR: "mx_star",
    STRANGER: "mx_stranger",
    ADMIN: "mx_admin",
    "KEY": "mx_owner",
    "ADMIN_KEY": "mx_admin",
    "ANON": "mx_stranger",
}
# Collaborators of R on the other checkpoint and on a step that is no checkpoint; a user who is
# added to and removed from the throwaway team.
STEP_B, STEP_READ, EXTRA = "mx_step_b", "mx_step_read", "mx_extra"
ACCOUNTS = sorted({*USERNAMES.values(), STEP_B, STEP_READ, EXTRA})

TEAM = "Matrix Team"
THROWAWAY = "Matrix Throwaway"  # renamed (to itself) and its members changed by the cells
PROJECT = f"{TEAM}/project"
DATA_FILE = f"{TEAM}/data/note.txt"
INPUTS = f"{TEAM}/inputs"
RUNS = f"{TEAM}/runs/out"
UNKNOWN_JOB = "mx-no-such-job"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"  # no team, no key
UNKNOWN_DELIVERY = "987654321"
NO_TAG = "mx-tag-of-no-job"  # the bulk cells' filter: they must move nothing of anyone's

MATRIX_FLOW = """
name: matrix
steps:
  - {id: read, type: extract_text}
  - id: fields
    type: refine
    params:
      fields:
        invoice_number: "regex(text, 'Invoice #\\\\s*(\\\\S+)')"
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: check_a
    type: checkpoint
    params:
      rules:
        - {formula: "total > 0", message: "total must be positive"}
  - id: check_b
    type: checkpoint
    params:
      rules:
        - {formula: "total > 10", message: "total must be above 10"}
  - {id: hold, type: udf, params: {function: "udfs/control.py:gate"}}
"""
STEP_A_FOLDER = "steps/02_check_a"  # steps/NN_<step id>, NN from 00
FIELDS_FOLDER = "steps/01_fields"

R_COLLABORATION = {
    "teams": [],
    "users": [
        {"username": "mx_step", "steps": ["check_a"]},
        {"username": "mx_star", "steps": ["*"]},
        {"username": STEP_B, "steps": ["check_b"]},
        {"username": STEP_READ, "steps": ["read"]},
    ],
}
C_COLLABORATION = {
    "teams": [],
    "users": [
        {"username": "mx_step", "steps": ["check_a"]},
        {"username": "mx_star", "steps": ["*"]},
    ],
}


@dataclass
class Matrix(ApiUser):
    """What the cells need: the callers' credentials and the objects they are called on."""

    client: Any
    tokens: dict[str, str]  # by username
    settings: Settings
    user_ids: dict[str, int]
    keys: dict[str, str]  # OWNER's: by the permission each lacks; "any": ViewJobs only
    admin_key: str  # ADMIN's, with every permission but Admin
    open_dir: Path  # the gate of the flow's `hold` step is open
    team_id: str = ""
    throwaway_id: str = ""
    binary: str = ""
    job_r: str = ""
    job_c: str = ""
    out_c: str = ""
    delivery_id: int = 0

    def credential(self, who: str, permission: Permission | str) -> dict[str, str]:
        if who == "ANON":
            return {}
        if who == "KEY":
            secret = self.keys[permission.value if isinstance(permission, Permission) else "any"]
            return {"Authorization": f"Basic {secret}"}
        if who == "ADMIN_KEY":
            return {"Authorization": f"Basic {self.admin_key}"}
        return self.headers(USERNAMES[who])

    def send(self, row_: Row):
        def send(who: str, call: Call):
            body = json.dumps(call.body) if isinstance(call.body, dict | list) else call.body
            return self.client.open(
                call.url,
                method=call.method,
                data=body,
                headers={**self.credential(who, row_.permission), **(call.headers or {})},
            )

        return send

    @property
    def drive_root(self) -> Path:
        return self.settings.drive_root


def call(ctx: Matrix, method: str, url: str, user: str, body=None):
    data = json.dumps(body) if body is not None else None
    return ctx.client.open(url, method=method, data=data, headers=ctx.headers(user))


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def matrix(stack, tmp_path_factory):
    url = stack.settings.sql_url
    tokens, user_ids = {}, {}
    with session_scope(url) as session:
        # Found again if this module's fixture is built twice on one backend.
        for name in ACCOUNTS:
            user = find_user(session, name) or create_user(
                session, name, is_admin=name == "mx_admin", email=f"{name}@matrix.test"
            )
            user_ids[name] = user.id
            tokens[name] = create_token(session, name, name="matrix")
        keys = {}
        for permission in Permission:
            held = ALL_PERMISSIONS - {permission, Permission.ADMIN}
            keys[permission.value] = create_key(
                session, user_ids["mx_owner"], f"mx without {permission}", held
            )[1]
        keys["any"] = create_key(
            session, user_ids["mx_owner"], "mx view only", frozenset({Permission.VIEW_JOBS})
        )[1]
        admin_key = create_key(
            session,
            user_ids["mx_admin"],
            "mx admin without Admin",
            ALL_PERMISSIONS - {Permission.ADMIN},
        )[1]
    drive = Drive(stack.settings.drive_root)
    for name in ACCOUNTS:
        drive.space_home(name)
    open_dir = tmp_path_factory.mktemp("mx-gate-open")
    (open_dir / "open").touch()
    ctx = Matrix(
        client=stack.client,
        tokens=tokens,
        settings=stack.settings,
        user_ids=user_ids,
        keys=keys,
        admin_key=admin_key,
        open_dir=open_dir,
    )
    ctx.team_id = team_named(ctx, TEAM)
    ctx.throwaway_id = team_named(ctx, THROWAWAY)

    owner = "mx_owner"
    ctx.upload(f"{PROJECT}/flows/main.ibflow", MATRIX_FLOW.encode(), owner)
    ctx.upload(f"{PROJECT}/udfs/control.py", CONTROL_UDFS.encode(), owner)
    ctx.upload(DATA_FILE, b"a note in the team's space", owner)
    for name, total in (("a.txt", "0"), ("b.txt", "5"), ("c.txt", "100.00")):
        ctx.upload(f"{INPUTS}/review/{name}", invoice(name[0].upper(), total), owner)
    ctx.upload(f"{INPUTS}/clean/c.txt", invoice("C", "100.00"), owner)
    ctx.upload(f"{INPUTS}/gated/g.txt", invoice("G", "100.00"), owner)
    compiled = compile_flow(ctx, PROJECT, user=owner)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    ctx.binary = compiled["results"][0]["binary_path"]
    assert ctx.binary.startswith(f"{PROJECT}/build/bin/"), ctx.binary

    ctx.job_r = submit(ctx, f"{INPUTS}/review", ["mx-review"], R_COLLABORATION)
    ctx.job_c = submit(ctx, f"{INPUTS}/clean", ["mx-clean"])
    shared = call(
        ctx,
        "POST",
        "/api/v1/jobs/collaboration",
        owner,
        {"job_id": ctx.job_c, "collaboration": C_COLLABORATION},
    )
    assert shared.status_code == 200, shared.get_json()
    stopped = wait_done(ctx, ctx.job_r, owner)
    assert stopped["cur_status"]["status"] == "STOPPED_AT_CHECKPOINT", stopped
    done = wait_done(ctx, ctx.job_c, owner)
    assert done["cur_status"]["status"] == "COMPLETE", done
    ctx.out_c = done["results"][0]["output_folder"]
    assert ctx.out_c.startswith(f"{RUNS}/"), ctx.out_c
    assert (ctx.drive_root / ctx.out_c / STEP_A_FOLDER / "c.txt.json").is_file()
    assert (ctx.drive_root / ctx.out_c / "results.json").is_file()

    # A failed delivery of C to redeliver. Its target refuses at once (loopback is not an
    # allowed webhook network, and nothing listens on port 9), so no worker waits on it.
    with session_scope(url) as session:
        delivery = Delivery(
            job_id=ctx.job_c,
            channel="webhook",
            target="http://127.0.0.1:9/mx-matrix-hook",
            headers={},
            payload={"job_id": ctx.job_c, "status": "OK"},
            status=DeliveryStatus.FAILED,
            attempts=1,
            last_error="inserted by the authorization matrix",
            created_at=datetime.now(UTC),
        )
        session.add(delivery)
        session.flush()
        ctx.delivery_id = delivery.id
    yield ctx

    # Leave the stack as it was found: every job the cells started has ended (the next module
    # gets an idle worker), and the redeliveries the cells made are not retried.
    owners = sorted(user_ids.values())

    def all_ended() -> bool:
        with session_scope(url, read_only=True) as session:
            running = select(Job.id).where(
                Job.owner_id.in_(owners), Job.status.not_in(sorted(ENDED))
            )
            return session.scalars(running).first() is None

    wait_for(all_ended, timeout=60, message="the jobs the cells started to end")
    with session_scope(url) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.job_id == ctx.job_c, Delivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.FAILED, next_attempt_at=None)
        )


def team_named(ctx: Matrix, name: str) -> str:
    """The id of the team ``name`` (OWNER admin, MEMBER member, VIEWER viewer), made through the
    API the first time."""
    listed = call(ctx, "GET", "/api/v2/teams", "mx_owner")
    for team in listed.get_json()["values"]:
        if team["name"] == name:
            return team["id"]
    members = [{"user": "mx_member", "role": "member"}, {"user": "mx_viewer", "role": "viewer"}]
    created = call(ctx, "POST", "/api/v2/teams", "mx_owner", {"name": name, "members": members})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def submit(ctx: Matrix, input_dir: str, tags: list[str], collaboration=None, gate=None) -> str:
    settings = {
        "output_has_run_id": True,
        "tags": tags,
        "runtime_config": {"control_dir": str(gate or ctx.open_dir)},
    }
    if collaboration:
        settings["collaboration"] = collaboration
    body = {"binary_path": ctx.binary, "input_dir": input_dir, "output_dir": RUNS}
    answer = run_async(ctx, {**body, "settings": settings}, user="mx_owner")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["data"]["job_id"]


# -- building requests ------------------------------------------------------------------------
def query(path: str, **params) -> str:
    return f"{path}?{urlencode(params)}"


def drive_url(path: str) -> str:
    return "/api/v1/drive/" + quote(path)


def unknown_space(path: str) -> str:
    """``path`` in a space that does not exist."""
    _, slash, rest = path.partition("/")
    return "Nonexistent Space" + slash + rest


def const(value: str):
    return lambda ctx, who: value


def job_c(ctx, who):
    return ctx.job_c


def job_r(ctx, who):
    return ctx.job_r


def no_job(subject):
    return UNKNOWN_JOB


def no_id(subject):
    return UNKNOWN_ID


def in_output(folder: str = ""):
    return lambda ctx, who: f"{ctx.out_c}/{folder}".rstrip("/")


def fresh_file(folder):
    """A new file in ``folder(ctx)`` (written straight to the disk), for a DELETE to remove."""

    def subject(ctx, who):
        path = f"{folder(ctx)}/{fresh('del-' + who)}.txt"
        target = ctx.drive_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"to be deleted")
        return path

    return subject


def fresh_team(with_admin_as_member: bool = False):
    """A new team (OWNER admin, MEMBER, VIEWER; ADMIN too if asked) in the store."""

    def subject(ctx, who):
        members = [("mx_member", TeamRole.MEMBER), ("mx_viewer", TeamRole.VIEWER)]
        if with_admin_as_member:
            members.append(("mx_admin", TeamRole.MEMBER))
        owner = Principal(ctx.user_ids["mx_owner"], "mx_owner", False)
        with session_scope(ctx.settings.sql_url) as session:
            return create_team(session, owner, fresh("Matrix Scratch"), members).id

    return subject


def throwaway_with_extra(ctx, who):
    """The throwaway team, with mx_extra in it (for a cell to remove)."""
    with session_scope(ctx.settings.sql_url) as session:
        set_member(session, session.get(Team, ctx.throwaway_id), EXTRA, TeamRole.VIEWER)
    return ctx.throwaway_id


def fresh_key_of(user):
    def subject(ctx, who):
        username = user(who)
        with session_scope(ctx.settings.sql_url) as session:
            row_, _ = create_key(
                session, ctx.user_ids[username], "mx to revoke", frozenset({Permission.VIEW_JOBS})
            )
            return row_.key_id

    return subject


def get(url):
    return lambda ctx, who, subject: Call("GET", url(ctx, who, subject))


def post(url, body):
    return lambda ctx, who, subject: Call("POST", url, body(ctx, who, subject))


def job_query(path: str, **extra):
    return get(lambda ctx, who, subject: query(path, job_id=subject, **extra))


def drive(method: str, body: bytes | None = None):
    return lambda ctx, who, subject: Call(method, drive_url(subject), body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- expected outcomes ------------------------------------------------------------------------
EVERYONE = rule(ok=USERS)
VIEW = rule(ok=(OWNER, STEP, STAR, ADMIN), hidden=(MEMBER, VIEWER, STRANGER))
REVIEW = VIEW
CONTROL_FINISHED = rule(
    conflict=(OWNER, STAR, ADMIN), forbidden=(STEP,), hidden=(MEMBER, VIEWER, STRANGER)
)
CONTROL = rule(ok=(OWNER, STAR, ADMIN), forbidden=(STEP,), hidden=(MEMBER, VIEWER, STRANGER))
SHARE = rule(ok=(OWNER, ADMIN), forbidden=(STEP, STAR), hidden=(MEMBER, VIEWER, STRANGER))
TEAM_READ = rule(ok=(OWNER, MEMBER, VIEWER, ADMIN), hidden=(STEP, STAR, STRANGER))
TEAM_WRITE = rule(ok=(OWNER, MEMBER, ADMIN), forbidden=(VIEWER,), hidden=(STEP, STAR, STRANGER))
STEP_OUTPUT = rule(ok=(OWNER, MEMBER, VIEWER, STEP, STAR, ADMIN), hidden=(STRANGER,))
OTHER_OUTPUT = rule(ok=(OWNER, MEMBER, VIEWER, STAR, ADMIN), hidden=(STEP, STRANGER))
TEAM_MANAGE = rule(ok=(OWNER, ADMIN), forbidden=(MEMBER, VIEWER), hidden=(STEP, STAR, STRANGER))
ADMINS_ONLY = rule(ok=(ADMIN,), forbidden=(OWNER, MEMBER, VIEWER, STEP, STAR, STRANGER))

SOME_STEPS = "is shared with you for some steps only"  # a collaborator on some steps
VIEWER_SAYS = "you are a viewer of team 'Matrix Team'"
SEES_JOBS = {OWNER, STEP, STAR, ADMIN}
IN_TEAM = {OWNER, MEMBER, VIEWER, ADMIN, "KEY"}


# -- checks of allowed answers ----------------------------------------------------------------
def shows_job(ctx, who, body):
    assert body["job_id"] == ctx.job_c, body


def shows_logs(ctx, who, body):
    assert body["logs"], body


def lists_the_jobs(ctx, who, body):
    listed = {job["job_id"] for job in body["jobs"]}
    wanted = {ctx.job_c, ctx.job_r} if who in SEES_JOBS else set()
    assert listed == wanted, f"{who} lists {listed}, not {wanted}"


def moves_nothing(ctx, who, body):
    assert body["affected_jobs"] == 0, body


def shows_collaboration(ctx, who, body):
    users = [(user["username"], user["steps"]) for user in body["collaboration"]["users"]]
    assert users == [("mx_step", ["check_a"]), ("mx_star", ["*"])], body


def lists_records(ctx, who, body):
    stopped = sorted((r["file_name"], r["checkpoint_step"]) for r in body["records"])
    everything = [("a.txt", "check_a"), ("b.txt", "check_b")]
    assert stopped == ([("a.txt", "check_a")] if who == STEP else everything), (who, body)


def shows_delivery(ctx, who, body):
    assert ctx.delivery_id in [delivery["id"] for delivery in body["deliveries"]], body


def lists_step_output(ctx, who, body):
    assert "c.txt.json" in [entry["name"] for entry in body["entries"]], body


def is_me(ctx, who, body):
    assert body["username"] == USERNAMES[who], body


def lists_the_team(ctx, who, body):
    names = {team["name"] for team in body["values"]}
    assert (TEAM in names) == (who in IN_TEAM), f"{who} lists {names}"


def shows_the_team(ctx, who, body):
    assert body["name"] == TEAM and body["id"] == ctx.team_id, body


def has_records(ctx, who, body):
    assert [record["file_name"] for record in body["records"]] == ["c.txt"], body  # one file


def has_paths(ctx, who, body):
    assert "/api/v1/jobs/status" in body["paths"], sorted(body["paths"])


def is_a_page(ctx, who, body):
    assert body is None  # HTML, not JSON (tests/browser/ drives the pages)


def signed_in_then_out(ctx, who, body):
    assert body["username"] == USERNAMES[who], body
    # The test client keeps cookies for every later cell: end the session it just got.
    ctx.client.delete_cookie("flowbin_session")


def shows_file_steps(ctx, who, body):
    assert [f["file_name"] for f in body["files"]] == ["c.txt"], body
    assert {cell["state"] for cell in body["files"][0]["steps"]} == {"done"}, body


def page(path: str) -> Row:
    return row(SIGNED_IN, Case("", get(lambda c, w, s: path), EVERYONE, check=is_a_page))


# -- the matrix -------------------------------------------------------------------------------
def compile_body(binary_folder, root_in_body: bool = True):
    def body(ctx, who, subject):
        wanted = {
            "binary_type": "Single Flow",
            "predefined_binary_path": binary_folder(who),
            "settings": {"flow_file": "flows/main.ibflow"},
        }
        return {"flow_project_root": subject, **wanted} if root_in_body else wanted

    return body


def compile_at_path(binary_folder):
    """POST /compile/<project path> (Instabase's form): the project is named by the URL."""
    body = compile_body(binary_folder, root_in_body=False)
    return lambda ctx, who, subject: Call(
        "POST", f"/api/v1/flow_binary/compile/{quote(subject)}", body(ctx, who, subject)
    )


def run_body(output_dir):
    return lambda ctx, who, subject: {
        "binary_path": subject,
        "input_dir": f"{INPUTS}/clean",
        "output_dir": output_dir(who),
        "settings": {
            "output_has_run_id": True,
            "runtime_config": {"control_dir": str(ctx.open_dir)},
        },
    }


def flow_run_body(ctx, who, subject):
    """run_flow_async: the flow file and the run settings at the top level."""
    return {
        "ibflow_path": subject,
        "input_dir": f"{INPUTS}/clean",
        "output_dir": f"{TEAM}/runs/cells",
        "output_has_run_id": True,
        "runtime_config": {"control_dir": str(ctx.open_dir)},
    }


def sync_body(ctx, who, subject, prefix: str = ""):
    return {
        "binary_path": prefix + subject,
        "files": [{"file_name": "c.txt", "file_content": b64(invoice("S", "100.00"))}],
        "options": {"runtime_config": {"control_dir": str(ctx.open_dir)}},
    }


def bulk(path: str):
    return get(lambda ctx, who, subject: query(path, tags=NO_TAG, user="mx_owner"))


def binary(ctx, who):
    return ctx.binary


def control(path: str, **extra) -> Row:
    return row(
        Permission.MANAGE_JOBS,
        Case(
            "",
            job_query(path, **extra),
            CONTROL_FINISHED,
            subject=job_c,
            unknown=no_job,
            says=SOME_STEPS,
        ),
    )


def view(path: str, check=None, subject=job_c, permission=Permission.VIEW_JOBS) -> Row:
    return row(
        permission,
        Case("", job_query(path), VIEW, subject=subject, unknown=no_job, check=check),
    )


def team_url(suffix: str = ""):
    return lambda ctx, who, subject: f"/api/v2/teams/{subject}{suffix}"


MATRIX: dict[tuple[str, str], Row] = {
    # -- public ---------------------------------------------------------------------------------
    ("GET", "/health"): row(PUBLIC, Case("", get(lambda c, w, s: "/health"), EVERYONE)),
    # Prometheus's text (api/resources/metrics.py); the metrics token is tested beside it.
    ("GET", "/metrics"): row(
        Permission.ADMIN,
        Case("", get(lambda c, w, s: "/metrics"), ADMINS_ONLY, says="only admins"),
    ),
    ("GET", "/openapi.json"): row(
        PUBLIC, Case("", get(lambda c, w, s: "/openapi.json"), EVERYONE, check=has_paths)
    ),
    ("GET", "/docs"): row(PUBLIC, Case("", get(lambda c, w, s: "/docs"), EVERYONE)),
    ("GET", "/docs/assets/<path:filename>"): row(
        PUBLIC, Case("", get(lambda c, w, s: "/docs/assets/swagger-ui-bundle.js"), EVERYONE)
    ),
    # -- the web UI (api/ui/): pages are shells that need a signed-in caller (the session
    # cookie or an Authorization header; without one a 401, the sign-in form for browsers),
    # their data comes from the API rows below; sign-in and assets are public.
    ("GET", "/"): row(PUBLIC, Case("", get(lambda c, w, s: "/"), EVERYONE, check=is_a_page)),
    ("POST", "/ui/session"): row(
        PUBLIC,
        Case(
            "",
            lambda ctx, who, subject: Call(
                "POST",
                "/ui/session",
                {"token": ctx.tokens[USERNAMES[who]]},
                {"Content-Type": "application/json"},
            ),
            EVERYONE,
            check=signed_in_then_out,
        ),
    ),
    ("DELETE", "/ui/session"): row(
        PUBLIC, Case("", lambda c, w, s: Call("DELETE", "/ui/session"), EVERYONE)
    ),
    ("GET", "/ui/assets/<path:filename>"): row(
        PUBLIC, Case("", get(lambda c, w, s: "/ui/assets/common.js"), EVERYONE)
    ),
    ("GET", "/jobs"): page("/jobs"),
    ("GET", "/jobs/<string(minlength=1, maxlength=50):job_id>"): page("/jobs/any-job"),
    ("GET", "/run"): page("/run"),
    ("GET", "/drive"): page("/drive"),
    ("GET", "/review"): page("/review"),
    ("GET", "/review/<string(minlength=1, maxlength=50):job_id>"): page("/review/any-job"),
    # -- the drive ------------------------------------------------------------------------------
    ("GET", "/api/v1/drive/<drive_path:path>"): row(
        Permission.MANAGE_FILES,
        Case("team-file", drive("GET"), TEAM_READ, const(DATA_FILE), unknown_space),
        Case("team-space", drive("GET"), TEAM_READ, const(TEAM), unknown_space),
        Case("runs-folder", drive("GET"), TEAM_READ, const(RUNS), unknown_space),
        Case(
            "step-folder",
            drive("GET"),
            STEP_OUTPUT,
            in_output(STEP_A_FOLDER),
            unknown_space,
            check=lists_step_output,
        ),
        Case(
            "step-file",
            drive("GET"),
            STEP_OUTPUT,
            in_output(f"{STEP_A_FOLDER}/c.txt.json"),
            unknown_space,
        ),
        Case("other-step", drive("GET"), OTHER_OUTPUT, in_output(FIELDS_FOLDER), unknown_space),
        # The folder of every step's folder: it would name the steps STEP was not given.
        Case("steps-folder", drive("GET"), OTHER_OUTPUT, in_output("steps"), unknown_space),
        Case("results", drive("GET"), OTHER_OUTPUT, in_output("results.json"), unknown_space),
        Case("output-folder", drive("GET"), OTHER_OUTPUT, in_output(), unknown_space),
    ),
    ("PUT", "/api/v1/drive/<drive_path:path>"): row(
        Permission.MANAGE_FILES,
        Case(
            "team-file",
            drive("PUT", b"written by a cell"),
            TEAM_WRITE,
            lambda ctx, who: f"{TEAM}/scratch/{who}.txt",
            unknown_space,
            says=VIEWER_SAYS,
        ),
        # Sharing a job's output lets a collaborator read it, never write it.
        Case(
            "shared-output",
            drive("PUT", b"written by a cell"),
            TEAM_WRITE,
            lambda ctx, who: f"{ctx.out_c}/{STEP_A_FOLDER}/mx-{who}.txt",
            unknown_space,
            says=VIEWER_SAYS,
        ),
    ),
    ("DELETE", "/api/v1/drive/<drive_path:path>"): row(
        Permission.MANAGE_FILES,
        Case(
            "team-file",
            drive("DELETE"),
            TEAM_WRITE,
            fresh_file(lambda ctx: f"{TEAM}/scratch"),
            unknown_space,
            says=VIEWER_SAYS,
        ),
        Case(
            "shared-output",
            drive("DELETE"),
            TEAM_WRITE,
            fresh_file(lambda ctx: f"{ctx.out_c}/{STEP_A_FOLDER}"),
            unknown_space,
            says=VIEWER_SAYS,
        ),
    ),
    # -- compile and run ------------------------------------------------------------------------
    ("POST", "/api/v1/flow_binary/compile"): row(
        Permission.MANAGE_JOBS,
        Case(
            "binary-in-team",
            post("/api/v1/flow_binary/compile", compile_body(lambda w: f"{TEAM}/compiled/{w}")),
            TEAM_WRITE,
            const(PROJECT),
            unknown_space,
            says=VIEWER_SAYS,
        ),
        Case(
            "binary-in-own-space",
            post(
                "/api/v1/flow_binary/compile",
                compile_body(lambda w: f"{USERNAMES[w]}/mx-compiled"),
            ),
            TEAM_READ,
            const(PROJECT),
            unknown_space,
        ),
    ),
    ("POST", "/api/v1/flow_binary/compile/<drive_path:path>"): row(
        Permission.MANAGE_JOBS,
        Case(
            "binary-in-team",
            compile_at_path(lambda w: f"{TEAM}/compiled/{w}"),
            TEAM_WRITE,
            const(PROJECT),
            unknown_space,
            says=VIEWER_SAYS,
        ),
        Case(
            "binary-in-own-space",
            compile_at_path(lambda w: f"{USERNAMES[w]}/mx-compiled"),
            TEAM_READ,
            const(PROJECT),
            unknown_space,
        ),
    ),
    # A run's batch.ibflowresults, by its drive path: what the drive lets the caller read.
    ("POST", "/api/v1/flow_binary/results"): row(
        Permission.VIEW_JOBS,
        Case(
            "output-folder",
            post("/api/v1/flow_binary/results", lambda c, w, s: {"ibresults_path": s}),
            OTHER_OUTPUT,
            in_output(),
            unknown_space,
            check=has_records,
        ),
    ),
    ("POST", "/api/v1/flow/run_binary_async"): row(
        Permission.MANAGE_JOBS,
        Case(
            "output-in-team",
            post("/api/v1/flow/run_binary_async", run_body(lambda w: f"{TEAM}/runs/cells")),
            TEAM_WRITE,
            binary,
            unknown_space,
            says=VIEWER_SAYS,
        ),
        Case(
            "output-in-own-space",
            post("/api/v1/flow/run_binary_async", run_body(lambda w: f"{USERNAMES[w]}/mx-runs")),
            TEAM_READ,
            binary,
            unknown_space,
        ),
    ),
    # Compiles the project (into its build/bin, in the team's space) unless its sources were
    # compiled before, then runs it: a viewer is refused by one write or the other.
    ("POST", "/api/v1/flow/run_flow_async"): row(
        Permission.MANAGE_JOBS,
        Case(
            "output-in-team",
            post("/api/v1/flow/run_flow_async", flow_run_body),
            TEAM_WRITE,
            const(f"{PROJECT}/flows/main.ibflow"),
            unknown_space,
            says=VIEWER_SAYS,
        ),
    ),
    ("POST", "/api/v1/flow/run_binary_sync"): row(
        Permission.MANAGE_JOBS,
        Case(
            "",
            post("/api/v1/flow/run_binary_sync", sync_body),
            TEAM_READ,
            binary,
            unknown_space,
            check=has_records,
        ),
        # Instabase's leading '/' (the drive's root) reaches the same guard as the bare path.
        Case(
            "leading-slash",
            post("/api/v1/flow/run_binary_sync", lambda c, w, s: sync_body(c, w, s, "/")),
            TEAM_READ,
            binary,
            unknown_space,
            check=has_records,
        ),
    ),
    # -- jobs -----------------------------------------------------------------------------------
    ("GET", "/api/v1/jobs/status"): view("/api/v1/jobs/status", shows_job),
    ("GET", "/api/v1/jobs/get_logs"): view("/api/v1/jobs/get_logs", shows_logs),
    ("GET", "/api/v1/jobs/files"): view("/api/v1/jobs/files", shows_file_steps),
    ("GET", "/api/v1/jobs/list"): row(
        Permission.VIEW_JOBS,
        Case(
            "",
            get(lambda ctx, w, s: query("/api/v1/jobs/list", job_ids=f"{ctx.job_c},{ctx.job_r}")),
            EVERYONE,
            check=lists_the_jobs,
        ),
    ),
    ("GET", "/api/v1/jobs/pause"): control("/api/v1/jobs/pause"),
    ("GET", "/api/v1/jobs/resume"): control("/api/v1/jobs/resume"),
    ("GET", "/api/v1/jobs/cancel"): control("/api/v1/jobs/cancel"),
    ("GET", "/api/v1/jobs/retry"): control("/api/v1/jobs/retry", type="all"),
    ("GET", "/api/v1/jobs/pause_all"): row(
        Permission.MANAGE_JOBS,
        Case("", bulk("/api/v1/jobs/pause_all"), EVERYONE, check=moves_nothing),
    ),
    ("GET", "/api/v1/jobs/resume_all"): row(
        Permission.MANAGE_JOBS,
        Case("", bulk("/api/v1/jobs/resume_all"), EVERYONE, check=moves_nothing),
    ),
    ("GET", "/api/v1/jobs/cancel_all"): row(
        Permission.MANAGE_JOBS,
        Case("", bulk("/api/v1/jobs/cancel_all"), EVERYONE, check=moves_nothing),
    ),
    ("POST", "/api/v1/jobs/tags"): row(
        Permission.MANAGE_JOBS,
        Case(
            "",
            post("/api/v1/jobs/tags", lambda c, w, s: {"job_id": s, "names": ["mx-clean"]}),
            CONTROL,
            subject=job_c,
            unknown=no_job,
            says=SOME_STEPS,
        ),
    ),
    ("GET", "/api/v1/jobs/collaboration"): view("/api/v1/jobs/collaboration", shows_collaboration),
    ("POST", "/api/v1/jobs/collaboration"): row(
        Permission.MANAGE_JOBS,
        Case(
            "",
            # The same collaboration again: an allowed cell changes nothing.
            post(
                "/api/v1/jobs/collaboration",
                lambda c, w, s: {"job_id": s, "collaboration": C_COLLABORATION},
            ),
            SHARE,
            subject=job_c,
            unknown=no_job,
            says="only the owner of job",
        ),
    ),
    # -- review (job R) -------------------------------------------------------------------------
    ("GET", "/api/v1/review/records"): view(
        "/api/v1/review/records", lists_records, job_r, Permission.REVIEW_JOBS
    ),
    ("POST", "/api/v1/review/correct"): row(
        Permission.REVIEW_JOBS,
        Case(
            # b.txt stopped at check_b, which STEP was not given.
            "other-checkpoint",
            post(
                "/api/v1/review/correct",
                lambda c, w, s: {"job_id": s, "file_index": 1, "record_index": 0, "fields": {}},
            ),
            CONTROL,
            subject=job_r,
            unknown=no_job,
            says="shared with you for other steps than checkpoint 'check_b'",
        ),
        Case(
            "own-checkpoint",
            post(
                "/api/v1/review/correct",
                lambda c, w, s: {"job_id": s, "file_index": 0, "record_index": 0, "fields": {}},
            ),
            REVIEW,
            subject=job_r,
            unknown=no_job,
        ),
    ),
    ("POST", "/api/v1/review/assign"): row(
        Permission.REVIEW_JOBS,
        Case(
            "",
            # The owner as reviewer: an allowed cell gives no one new access.
            post("/api/v1/review/assign", lambda c, w, s: {"job_id": s, "reviewer": "mx_owner"}),
            CONTROL,
            subject=job_r,
            unknown=no_job,
            says="or a collaborator on every step can assign its reviewer",
        ),
    ),
    ("POST", "/api/v1/review/complete"): row(
        Permission.REVIEW_JOBS,
        Case(
            "",
            post("/api/v1/review/complete", lambda c, w, s: {"job_id": s}),
            REVIEW,
            subject=job_r,
            unknown=no_job,
        ),
    ),
    # -- deliveries and webhooks ----------------------------------------------------------------
    ("GET", "/api/v1/deliveries"): view("/api/v1/deliveries", shows_delivery),
    ("POST", "/api/v1/deliveries/<int(max=9223372036854775807):delivery_id>/redeliver"): row(
        Permission.MANAGE_JOBS,
        Case(
            "",
            lambda c, w, s: Call("POST", f"/api/v1/deliveries/{s}/redeliver"),
            CONTROL,
            subject=lambda ctx, who: str(ctx.delivery_id),
            unknown=lambda subject: UNKNOWN_DELIVERY,
            says=SOME_STEPS,
        ),
    ),
    # Everyone's own secret.
    ("GET", "/api/v1/webhooks/secret"): row(
        Permission.MANAGE_JOBS, Case("", get(lambda c, w, s: "/api/v1/webhooks/secret"), EVERYONE)
    ),
    ("PUT", "/api/v1/webhooks/secret"): row(
        Permission.MANAGE_JOBS,
        Case("", lambda c, w, s: Call("PUT", "/api/v1/webhooks/secret", {}), EVERYONE),
    ),
    ("DELETE", "/api/v1/webhooks/secret"): row(
        Permission.MANAGE_JOBS,
        Case("", lambda c, w, s: Call("DELETE", "/api/v1/webhooks/secret"), EVERYONE),
    ),
    # -- v2: users ------------------------------------------------------------------------------
    ("GET", "/api/v2/users"): row(
        Permission.ADMIN,
        Case("", get(lambda c, w, s: "/api/v2/users"), ADMINS_ONLY, says="only admins"),
    ),
    ("POST", "/api/v2/users"): row(
        Permission.ADMIN,
        Case(
            "",
            post("/api/v2/users", lambda c, w, s: {"username": fresh("mx-new")}),
            ADMINS_ONLY,
            says="only admins",
        ),
    ),
    ("GET", "/api/v2/users/me"): row(
        SIGNED_IN, Case("", get(lambda c, w, s: "/api/v2/users/me"), EVERYONE, check=is_me)
    ),
    # -- v2: teams ------------------------------------------------------------------------------
    ("GET", "/api/v2/teams"): row(
        SIGNED_IN, Case("", get(lambda c, w, s: "/api/v2/teams"), EVERYONE, check=lists_the_team)
    ),
    ("POST", "/api/v2/teams"): row(
        Permission.ADMIN,
        Case(
            "",
            post("/api/v2/teams", lambda c, w, s: {"name": fresh(f"Matrix {w}")}),
            EVERYONE,
        ),
    ),
    ("GET", "/api/v2/teams/<string(length=36):team_id>"): row(
        SIGNED_IN,
        Case(
            "",
            get(team_url()),
            TEAM_READ,
            lambda ctx, who: ctx.team_id,
            no_id,
            check=shows_the_team,
        ),
    ),
    ("PUT", "/api/v2/teams/<string(length=36):team_id>"): row(
        Permission.ADMIN,
        Case(
            "",
            # Renamed to its own name: an allowed cell leaves the team as it was.
            lambda c, w, s: Call("PUT", f"/api/v2/teams/{s}", {"name": THROWAWAY}),
            TEAM_MANAGE,
            lambda ctx, who: ctx.throwaway_id,
            no_id,
            says="only an admin of team",
        ),
    ),
    ("DELETE", "/api/v2/teams/<string(length=36):team_id>"): row(
        Permission.ADMIN,
        Case(
            "",
            lambda c, w, s: Call("DELETE", f"/api/v2/teams/{s}"),
            TEAM_MANAGE,
            fresh_team(),
            no_id,
            says="only an admin of team",
        ),
    ),
    ("POST", "/api/v2/teams/<string(length=36):team_id>/members"): row(
        Permission.ADMIN,
        Case(
            "",
            lambda c, w, s: Call(
                "POST", f"/api/v2/teams/{s}/members", {"user": EXTRA, "role": "viewer"}
            ),
            TEAM_MANAGE,
            lambda ctx, who: ctx.throwaway_id,
            no_id,
            says="only an admin of team",
        ),
    ),
    (
        "DELETE",
        "/api/v2/teams/<string(length=36):team_id>/members/<string(maxlength=254):user>",
    ): row(
        Permission.ADMIN,
        Case(
            "another-member",
            lambda c, w, s: Call("DELETE", f"/api/v2/teams/{s}/members/{EXTRA}"),
            TEAM_MANAGE,
            throwaway_with_extra,
            no_id,
            says="only an admin of team",
        ),
        # Members may leave; the last admin may not (409).
        Case(
            "oneself",
            lambda c, w, s: Call("DELETE", f"/api/v2/teams/{s}/members/{USERNAMES[w]}"),
            rule(ok=(MEMBER, VIEWER, ADMIN), conflict=(OWNER,), hidden=(STEP, STAR, STRANGER)),
            fresh_team(with_admin_as_member=True),
            no_id,
        ),
    ),
    # -- v2: API keys (everyone's own) ----------------------------------------------------------
    ("GET", "/api/v2/api-keys"): row(
        Permission.ADMIN, Case("", get(lambda c, w, s: "/api/v2/api-keys"), EVERYONE)
    ),
    ("POST", "/api/v2/api-keys"): row(
        Permission.ADMIN,
        Case(
            "",
            post(
                "/api/v2/api-keys",
                lambda c, w, s: {"name": "mx cell", "permissions": ["ViewJobs"]},
            ),
            EVERYONE,
        ),
    ),
    ("DELETE", "/api/v2/api-keys/<string(length=36):key_id>"): row(
        Permission.ADMIN,
        Case(
            "own",
            lambda c, w, s: Call("DELETE", f"/api/v2/api-keys/{s}"),
            EVERYONE,
            fresh_key_of(lambda who: USERNAMES[who]),
            no_id,
        ),
        # Another user's key is as missing as one that does not exist, for admins too.
        Case(
            "owners-key",
            lambda c, w, s: Call("DELETE", f"/api/v2/api-keys/{s}"),
            rule(ok=(OWNER,), hidden=(MEMBER, VIEWER, STEP, STAR, STRANGER, ADMIN)),
            fresh_key_of(lambda who: "mx_owner"),
            no_id,
        ),
    ),
}

# -- v2: jobs (the resource API: the same rules as v1's, on the same jobs) ----------------------
V2_JOB = "/api/v2/jobs/<string(minlength=1, maxlength=50):job_id>"


def v2_job(suffix: str = ""):
    return lambda ctx, who, subject: f"/api/v2/jobs/{subject}{suffix}"


def v2_lists_the_jobs(ctx, who, body):
    listed = {job["id"] for job in body["values"]}
    wanted = {ctx.job_c, ctx.job_r} if who in SEES_JOBS else set()
    assert listed == wanted, f"{who} lists {listed}, not {wanted}"


def v2_shows_job(ctx, who, body):
    assert body["id"] == ctx.job_c, body


def v2_shows_logs(ctx, who, body):
    assert body["values"], body


def v2_run_body(output_dir):
    return lambda ctx, who, subject: {
        "type": "flow-run",
        "binary_path": subject,
        "input_dir": f"{INPUTS}/clean",
        "output_dir": output_dir(who),
        "output_has_run_id": True,
        "runtime_config": {"control_dir": str(ctx.open_dir)},
    }


def fresh_shared_job(ctx, who):
    """A finished job of OWNER's, shared as C is (STEP on check_a, STAR on every step), written
    straight to the store for a DELETE to remove."""
    job_id = fresh("mx-del")
    with session_scope(ctx.settings.sql_url) as session:
        session.add(
            Job(
                id=job_id,
                owner_id=ctx.user_ids["mx_owner"],
                kind=JobKind.FLOW,
                status=JobStatus.COMPLETE,
                trace_id="mx",
                binary_path=ctx.binary,
                finished_at=datetime.now(UTC),
            )
        )
        session.flush()
        for username, steps in (("mx_step", ["check_a"]), ("mx_star", ["*"])):
            user_id = ctx.user_ids[username]
            session.add(
                JobShare(job_id=job_id, user_id=user_id, steps=steps, controls=steps == ["*"])
            )
    return job_id


def v2_view(suffix: str = "", check=None) -> Row:
    return row(
        Permission.VIEW_JOBS,
        Case("", get(v2_job(suffix)), VIEW, subject=job_c, unknown=no_job, check=check),
    )


def v2_desired(method: str) -> Row:
    # C has completed: an allowed wish is a 409 and changes nothing.
    return row(
        Permission.MANAGE_JOBS,
        Case(
            "",
            lambda c, w, s: Call(
                method, f"/api/v2/jobs/{s}/status", {"desiredExecutionStatus": "suspended"}
            ),
            CONTROL_FINISHED,
            subject=job_c,
            unknown=no_job,
            says=SOME_STEPS,
        ),
    )


# -- v2: documents and job contents ---------------------------------------------------------------
V2_DOCUMENT = "/api/v2/documents/<string(minlength=1, maxlength=50):document_id>"
V2_CONTENT = f"{V2_JOB}/contents/<string(minlength=1, maxlength=300):content_id>"
UNKNOWN_CONTENT = "mx-no-such-content"
OWNERS_ONLY = rule(ok=(OWNER,), hidden=(MEMBER, VIEWER, STEP, STAR, STRANGER, ADMIN))
ALL_OF_C = rule(ok=(OWNER, STAR, ADMIN), hidden=(MEMBER, VIEWER, STEP, STRANGER))


def fresh_document_of(user):
    """A new document of ``user(who)``'s (written straight to the drive, as an upload lays it)."""

    def subject(ctx, who):
        document_id = str(uuid4())
        target = ctx.drive_root / user(who) / "documents" / document_id / "note.txt"
        target.parent.mkdir(parents=True)
        target.write_bytes(b"a document")
        return document_id

    return subject


def in_own_space(ctx, who, body):
    assert body["uri"] == f"{USERNAMES[who]}/documents/{body['id']}/mx.txt", body


def lists_contents(ctx, who, body):
    ids = [content["id"] for content in body["values"]]
    if who == STEP:  # check_a's outputs only
        assert ids == ["step:02:c.txt"], ids
    else:
        assert {"input:c.txt", "results", "step:00:c.txt", "step:04:c.txt"} <= set(ids), ids


def content_of_c(ctx, who, subject):
    return Call("GET", f"/api/v2/jobs/{ctx.job_c}/contents/{quote(subject)}")


def reviews_own_steps(ctx, who, body):
    stopped = sorted((r["file_name"], r["checkpoint_step"]) for r in body["values"])
    everything = [("a.txt", "check_a"), ("b.txt", "check_b")]
    assert stopped == ([("a.txt", "check_a")] if who == STEP else everything), (who, body)


MATRIX.update(
    {
        ("GET", "/api/v2/jobs"): row(
            Permission.VIEW_JOBS,
            Case(
                "",
                get(
                    lambda ctx, w, s: (
                        "/api/v2/jobs?" + urlencode({"id": [ctx.job_c, ctx.job_r]}, True)
                    )
                ),
                EVERYONE,
                check=v2_lists_the_jobs,
            ),
        ),
        ("POST", "/api/v2/jobs"): row(
            Permission.MANAGE_JOBS,
            Case(
                "output-in-team",
                post("/api/v2/jobs", v2_run_body(lambda w: f"{TEAM}/runs/cells")),
                TEAM_WRITE,
                binary,
                unknown_space,
                says=VIEWER_SAYS,
            ),
            Case(
                "output-in-own-space",
                post("/api/v2/jobs", v2_run_body(lambda w: f"{USERNAMES[w]}/mx-runs")),
                TEAM_READ,
                binary,
                unknown_space,
            ),
        ),
        ("GET", V2_JOB): v2_view(check=v2_shows_job),
        ("PUT", V2_JOB): row(
            Permission.MANAGE_JOBS,
            # C's own tags and collaboration again: an allowed cell changes nothing.
            Case(
                "tags",
                lambda c, w, s: Call("PUT", f"/api/v2/jobs/{s}", {"tags": ["mx-clean"]}),
                CONTROL,
                subject=job_c,
                unknown=no_job,
                says=SOME_STEPS,
            ),
            Case(
                "collaboration",
                lambda c, w, s: Call(
                    "PUT", f"/api/v2/jobs/{s}", {"collaboration": C_COLLABORATION}
                ),
                SHARE,
                subject=job_c,
                unknown=no_job,
                says="only the owner of job",
            ),
        ),
        ("DELETE", V2_JOB): row(
            Permission.MANAGE_JOBS,
            Case(
                "",
                lambda c, w, s: Call("DELETE", f"/api/v2/jobs/{s}"),
                CONTROL,
                subject=fresh_shared_job,
                unknown=no_job,
                says=SOME_STEPS,
            ),
        ),
        ("GET", f"{V2_JOB}/status"): v2_view("/status"),
        ("POST", f"{V2_JOB}/status"): v2_desired("POST"),
        ("PUT", f"{V2_JOB}/status"): v2_desired("PUT"),
        ("GET", f"{V2_JOB}/metrics"): v2_view("/metrics"),
        ("GET", f"{V2_JOB}/logs"): v2_view("/logs", check=v2_shows_logs),
        ("POST", "/api/v2/documents"): row(
            Permission.MANAGE_FILES,
            Case(
                "",
                lambda c, w, s: Call("POST", "/api/v2/documents?name=mx.txt", b"a document"),
                EVERYONE,
                check=in_own_space,
            ),
        ),
        # A document is its uploader's alone: for anyone else, admins too, it does not exist.
        ("GET", V2_DOCUMENT): row(
            Permission.MANAGE_FILES,
            Case(
                "owners",
                lambda c, w, s: Call("GET", f"/api/v2/documents/{s}"),
                OWNERS_ONLY,
                fresh_document_of(lambda who: "mx_owner"),
                no_id,
            ),
            Case(
                "own",
                lambda c, w, s: Call("GET", f"/api/v2/documents/{s}"),
                EVERYONE,
                fresh_document_of(lambda who: USERNAMES[who]),
                no_id,
            ),
        ),
        ("GET", f"{V2_JOB}/contents"): v2_view("/contents", check=lists_contents),
        ("GET", V2_CONTENT): row(
            Permission.VIEW_JOBS,
            # STEP reads the outputs of check_a, and the records stopped there ...
            Case(
                "step-output",
                get(v2_job("/contents/step:02:c.txt")),
                VIEW,
                subject=job_c,
                unknown=no_job,
            ),
            Case(
                "review",
                get(v2_job("/contents/review")),
                VIEW,
                subject=job_r,
                unknown=no_job,
                check=reviews_own_steps,
            ),
            # ... and nothing else: the rest is as missing as a content that does not exist.
            Case(
                "results",
                content_of_c,
                ALL_OF_C,
                const("results"),
                lambda subject: UNKNOWN_CONTENT,
            ),
            Case(
                "input",
                content_of_c,
                ALL_OF_C,
                const("input:c.txt"),
                lambda subject: UNKNOWN_CONTENT,
            ),
            Case(
                "other-step",
                content_of_c,
                ALL_OF_C,
                const("step:01:c.txt"),
                lambda subject: UNKNOWN_CONTENT,
            ),
        ),
        ("GET", "/api/v2/job-types"): row(
            Permission.VIEW_JOBS, Case("", get(lambda c, w, s: "/api/v2/job-types"), EVERYONE)
        ),
        ("GET", "/api/v2/job-types/<string(minlength=1, maxlength=50):type_id>"): row(
            Permission.VIEW_JOBS,
            Case("", get(lambda c, w, s: "/api/v2/job-types/flow-run"), EVERYONE),
        ),
    }
)


def files_url(path: str, **params) -> str:
    url = "/api/v2/files/" + quote(path)
    return f"{url}?{urlencode(params)}" if params else url


def drives_url(path: str) -> str:
    return "/api/v1/drives/" + quote(path)


def files(method: str, body=None, headers=None, **params):
    return lambda ctx, who, subject: Call(method, files_url(subject, **params), body, headers)


def drives(method: str, body=None, args: dict | None = None):
    headers = {"Instabase-API-Args": json.dumps(args)} if args else None
    return lambda ctx, who, subject: Call(method, drives_url(subject), body, headers)


def fresh_zip(folder):
    """A new zip in ``folder(ctx)`` (written straight to the disk), for an extract."""

    def subject(ctx, who):
        import io
        import zipfile

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as package:
            package.writestr("inside/a.txt", "unzipped")
        path = f"{folder(ctx)}/{fresh('zip-' + who)}.zip"
        target = ctx.drive_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.getvalue())
        return path

    return subject


def copy_or_extract(operation: str):
    """src the subject, dst a fresh place in the team's space."""
    return lambda ctx, who, subject: Call(
        "POST",
        f"/api/v2/files/{operation}",
        {"src_path": subject, "dst_path": f"{TEAM}/scratch/{operation}-{fresh(who)}"},
    )


V2_FILES = "/api/v2/files/<drive_path:path>"
V1_DRIVES = "/api/v1/drives/<drive_path:path>"
TEAM_SCRATCH_FILE = lambda ctx, who: f"{TEAM}/scratch/{fresh('file-' + who)}.txt"  # noqa: E731
MATRIX.update(
    {
        ("GET", V2_FILES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                files("GET", **{"expect-node-type": "file"}),
                TEAM_READ,
                const(DATA_FILE),
                unknown_space,
            ),
            Case(
                "team-folder",
                files("GET", **{"expect-node-type": "folder"}),
                TEAM_READ,
                const(f"{TEAM}/data"),
                unknown_space,
            ),
            Case(
                "step-folder",
                files("GET", **{"expect-node-type": "folder"}),
                STEP_OUTPUT,
                in_output(STEP_A_FOLDER),
                unknown_space,
            ),
            Case(
                "other-step",
                files("GET", **{"expect-node-type": "folder"}),
                OTHER_OUTPUT,
                in_output(FIELDS_FOLDER),
                unknown_space,
            ),
        ),
        ("PUT", V2_FILES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                files("PUT", b"written by a cell"),
                TEAM_WRITE,
                TEAM_SCRATCH_FILE,
                unknown_space,
                says=VIEWER_SAYS,
            ),
            Case(
                "shared-output",
                files("PUT", b"written by a cell"),
                TEAM_WRITE,
                lambda ctx, who: f"{ctx.out_c}/{STEP_A_FOLDER}/mx-v2-{who}.txt",
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("PATCH", V2_FILES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                files("PATCH", b"a chunk", {"IB-Cursor": "0"}),
                TEAM_WRITE,
                TEAM_SCRATCH_FILE,
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("POST", V2_FILES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-folder",
                lambda ctx, who, subject: Call(
                    "POST",
                    files_url(subject),
                    # The same name each time: a second call finds it made (200).
                    {"name": f"folder-{who}", "node_type": "folder"},
                ),
                TEAM_WRITE,
                const(f"{TEAM}/scratch"),
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("DELETE", V2_FILES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                files("DELETE"),
                TEAM_WRITE,
                fresh_file(lambda ctx: f"{TEAM}/scratch"),
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("POST", "/api/v2/files/copy"): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                copy_or_extract("copy"),
                TEAM_WRITE,
                const(DATA_FILE),
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("POST", "/api/v2/files/extract"): row(
            Permission.MANAGE_FILES,
            Case(
                "team-zip",
                copy_or_extract("extract"),
                TEAM_WRITE,
                fresh_zip(lambda ctx: f"{TEAM}/scratch"),
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("GET", V1_DRIVES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                drives("GET", args={"type": "file", "get_content": True}),
                TEAM_READ,
                const(DATA_FILE),
                unknown_space,
            ),
            Case(
                "step-folder",
                drives("GET", args={"type": "folder", "get_content": True}),
                STEP_OUTPUT,
                in_output(STEP_A_FOLDER),
                unknown_space,
            ),
            Case(
                "results",
                drives("GET", args={"get_metadata": True, "get_content": False}),
                OTHER_OUTPUT,
                in_output("results.json"),
                unknown_space,
            ),
        ),
        ("POST", V1_DRIVES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                drives("POST", b"written by a cell", {"type": "file", "if_exists": "overwrite"}),
                TEAM_WRITE,
                TEAM_SCRATCH_FILE,
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
        ("DELETE", V1_DRIVES): row(
            Permission.MANAGE_FILES,
            Case(
                "team-file",
                drives("DELETE"),
                TEAM_WRITE,
                fresh_file(lambda ctx: f"{TEAM}/scratch"),
                unknown_space,
                says=VIEWER_SAYS,
            ),
        ),
    }
)

CELLS = cells(MATRIX)


# -- the tests --------------------------------------------------------------------------------
def bare_app(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        redis_url="redis://127.0.0.1:1/0",
    )
    return create_app(settings)


def endpoints(app) -> dict[tuple[str, str], str]:
    return {
        (method, rule_.rule): rule_.endpoint
        for rule_ in app.url_map.iter_rules()
        if rule_.endpoint != "static"
        for method in sorted(rule_.methods - {"HEAD", "OPTIONS"})
    }


def test_every_endpoint_has_a_row(tmp_path):
    """An endpoint added without a row here fails; so does a row of an endpoint that is gone."""
    found = endpoints(bare_app(tmp_path))
    without_row = sorted(set(found) - set(MATRIX))
    without_endpoint = sorted(set(MATRIX) - set(found))
    assert not without_row and not without_endpoint, (
        f"endpoints without a row in MATRIX: {without_row}; "
        f"rows naming no endpoint: {without_endpoint}"
    )


def test_rows_name_the_permission_each_endpoint_declares(tmp_path):
    """KEY's cells are only as good as the row's permission: it must be the declared one."""
    app = bare_app(tmp_path)
    wrong = []
    for (method, rule_), endpoint in endpoints(app).items():
        declared = requirement_of(app, endpoint, method)
        if declared is None and endpoint in FRAMEWORK_ENDPOINTS:
            declared = PUBLIC
        if (method, rule_) in MATRIX and MATRIX[(method, rule_)].permission != declared:
            wrong.append(f"{method} {rule_}: row {MATRIX[(method, rule_)].permission}, {declared}")
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("key", "case_name", "who"),
    [cell[:3] for cell in CELLS],
    ids=[cell[3] for cell in CELLS],
)
def test_cell(matrix, key, case_name, who):
    row_ = MATRIX[key]
    judge(row_, case_of(row_, case_name), who, matrix.send(row_), matrix)


def records_as(ctx: Matrix, username: str) -> list[tuple[str, str]]:
    answer = call(ctx, "GET", query("/api/v1/review/records", job_id=ctx.job_r), username)
    assert answer.status_code == 200, answer.get_json()
    return [(r["file_name"], r["checkpoint_step"]) for r in answer.get_json()["records"]]


def test_each_collaborator_reviews_the_records_stopped_at_its_steps(matrix):
    assert records_as(matrix, "mx_owner") == [("a.txt", "check_a"), ("b.txt", "check_b")]
    assert records_as(matrix, "mx_star") == [("a.txt", "check_a"), ("b.txt", "check_b")]
    assert records_as(matrix, "mx_step") == [("a.txt", "check_a")]
    assert records_as(matrix, STEP_B) == [("b.txt", "check_b")]
    # A step that is no checkpoint: the job is seen, no record is the collaborator's to review.
    assert records_as(matrix, STEP_READ) == []
    seen = call(matrix, "GET", query("/api/v1/jobs/status", job_id=matrix.job_r), STEP_READ)
    assert seen.status_code == 200, seen.get_json()
    correct = {"job_id": matrix.job_r, "file_index": 1, "record_index": 0, "fields": {}}
    assert call(matrix, "POST", "/api/v1/review/correct", STEP_B, correct).status_code == 200
    refused = call(matrix, "POST", "/api/v1/review/correct", STEP_READ, correct)
    assert refused.status_code == 403, refused.get_json()
    assert "other steps than checkpoint 'check_b'" in refused.get_json()["msg"]


def job_status(ctx: Matrix, job_id: str) -> JobStatus:
    with session_scope(ctx.settings.sql_url, read_only=True) as session:
        return session.get(Job, job_id).status


def test_bulk_forms_reach_only_the_jobs_the_caller_controls(matrix, tmp_path):
    """A job Q held at its gate step: STEP (and the team, and strangers) bulk-pause, resume and
    cancel without touching it; STAR moves it each time."""
    tag = fresh("mx-bulk")
    gate = tmp_path / "gate"
    gate.mkdir()
    job_q = submit(matrix, f"{INPUTS}/gated", [tag], C_COLLABORATION, gate=gate)
    try:
        wait_for(lambda: (gate / "started").exists(), timeout=60, message="Q to reach its gate")
        assert job_status(matrix, job_q) == JobStatus.RUNNING

        def bulk_as(username: str, form: str) -> int:
            answer = call(matrix, "GET", query(f"/api/v1/jobs/{form}", tags=tag), username)
            assert answer.status_code == 200, answer.get_json()
            return answer.get_json()["affected_jobs"]

        bystanders = ["mx_step", "mx_member", "mx_viewer", "mx_stranger"]
        for form, moved_to in (
            ("pause_all", JobStatus.PAUSED),
            ("resume_all", {JobStatus.QUEUED, JobStatus.RUNNING}),
            ("cancel_all", JobStatus.CANCELLED),
        ):
            before = job_status(matrix, job_q)
            for username in bystanders:
                assert bulk_as(username, form) == 0, f"{username} {form} moved Q"
                assert job_status(matrix, job_q) == before, f"{username} {form} moved Q"
            assert bulk_as("mx_star", form) == 1, f"mx_star {form} did not reach Q"
            now = job_status(matrix, job_q)
            assert now in (moved_to if isinstance(moved_to, set) else {moved_to}), (form, now)
    finally:
        (gate / "open").touch()
        call(matrix, "GET", query("/api/v1/jobs/cancel", job_id=job_q), "mx_owner")


def test_an_admins_key_without_admin_acts_as_its_user_only(matrix):
    """Besides the ADMIN_KEY column: the same admin's token sees the job the key does not."""
    url = query("/api/v1/jobs/status", job_id=matrix.job_c)
    assert call(matrix, "GET", url, "mx_admin").status_code == 200
    with_key = matrix.client.get(url, headers=matrix.credential("ADMIN_KEY", SIGNED_IN))
    assert with_key.status_code == 404, with_key.get_json()
    assert with_key.get_json() == {"status": "ERROR", "msg": f"no job with id {matrix.job_c!r}"}


def test_the_matrix_states_every_outcome_kind():
    """A guard against a table that only says OK: each kind of outcome appears somewhere."""
    kinds = {
        kind for row_ in MATRIX.values() for case in row_.cases for kind in case.expect.values()
    }
    assert {OK, CONFLICT, FORBIDDEN, HIDDEN} <= kinds
    assert ALLOWED not in kinds  # every cell is exact: done, or refused by the job's state
