"""Teams, their spaces, shared jobs and API keys, end to end on real workers: a team member runs
a flow on the team's space, the job stays theirs until it is shared with the team, a key does
only what its permissions allow, and revoking or expiring a key works at once.

Who may call which endpoint, cell by cell, is tests/integration/test_authorization_matrix.py;
this module follows whole stories through."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.store.db import session_scope
from shared.store.models import ApiToken
from tests.integration.flows import compile_flow, invoice, put_project, run_async, wait_done

pytestmark = pytest.mark.integration

TEAM = "Ops Team"
ROOT = f"{TEAM}/invoices/fs/Instabase Drive"


@pytest.fixture(scope="module")
def team(stack):
    """The team "Ops Team": tk_lead (admin), tk_member, tk_viewer; tk_outsider is in no team."""
    with session_scope(stack.settings.sql_url) as session:
        for name in ("tk_lead", "tk_member", "tk_viewer", "tk_outsider"):
            create_user(session, name, email=f"{name}@example.com")
            stack.tokens[name] = create_token(session, name)
    created = call(
        stack,
        "post",
        "/api/v2/teams",
        "tk_lead",
        {
            "name": TEAM,
            "members": [
                {"user": "tk_member", "role": "member"},
                {"user": "tk_viewer@example.com", "role": "viewer"},
            ],
        },
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()


@pytest.fixture(scope="module")
def binary(stack, team) -> str:
    """The invoices flow, compiled by tk_member into the team's space."""
    put_project(stack, f"{TEAM}/invoices", user="tk_member")
    compiled = compile_flow(stack, f"{TEAM}/invoices", user="tk_member")
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return compiled["results"][0]["binary_path"]


def call(stack, method: str, path: str, user: str, body=None, headers=None):
    headers = headers if headers is not None else stack.headers(user)
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["data"] = body if isinstance(body, bytes) else json.dumps(body)
    return getattr(stack.client, method)(path, **kwargs)


def basic(secret: str, user: str | None = None) -> dict:
    if user is not None:
        secret = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {secret}"}


def new_key(stack, user: str, permissions: list[str], **extra) -> dict:
    made = call(
        stack,
        "post",
        "/api/v2/api-keys",
        user,
        {"name": f"{user}-{'-'.join(permissions)}", "permissions": permissions, **extra},
    )
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def test_the_creator_is_the_team_admin_and_members_have_their_roles(stack, team):
    roles = {member["user"]["username"]: member["role"] for member in team["members"]}
    assert roles == {"tk_lead": "admin", "tk_member": "member", "tk_viewer": "viewer"}
    listed = call(stack, "get", "/api/v2/teams", "tk_viewer").get_json()["values"]
    assert [found["name"] for found in listed] == [TEAM]
    assert call(stack, "get", "/api/v2/teams", "tk_outsider").get_json()["values"] == []
    hidden = call(stack, "get", f"/api/v2/teams/{team['id']}", "tk_outsider")
    assert hidden.status_code == 404 and hidden.get_json()["code"] == "not_found"


def test_a_team_name_is_a_space_and_cannot_be_a_username(stack, team):
    taken = call(stack, "post", "/api/v2/teams", "tk_lead", {"name": "tk_member"})
    assert taken.status_code == 409 and "username" in taken.get_json()["msg"]
    again = call(stack, "post", "/api/v2/teams", "tk_member", {"name": TEAM})
    assert again.status_code == 409
    for bad in ("a/b", "..", " padded", ".hidden"):
        refused = call(stack, "post", "/api/v2/teams", "tk_lead", {"name": bad})
        assert refused.status_code == 400, (bad, refused.get_json())


def test_a_member_runs_a_flow_in_the_team_space_and_the_job_stays_theirs(stack, team, binary):
    assert binary.startswith(f"{TEAM}/invoices/build/bin/")
    stack.upload(f"{ROOT}/in/a.txt", invoice("T-1", "10"), "tk_lead")

    started = run_async(
        stack,
        {"binary_path": binary, "input_dir": f"{ROOT}/in", "output_dir": f"{ROOT}/out"},
        "tk_member",
    )
    assert started.status_code == 200, started.get_json()
    job_id = started.get_json()["data"]["job_id"]
    done = wait_done(stack, job_id, "tk_member")
    assert done["cur_status"]["status"] == "COMPLETE", done

    # The output is in the team's space: the other members read it ...
    results = call(stack, "get", f"/api/v1/drive/{ROOT}/out/results.json", "tk_viewer")
    assert results.status_code == 200 and b"T-1" in results.data
    # ... but the job is the runner's: the team lead does not see it until it is shared.
    unknown = call(stack, "get", "/api/v1/jobs/status?job_id=no-such-job", "tk_lead")
    hidden = call(stack, "get", f"/api/v1/jobs/status?job_id={job_id}", "tk_lead")
    assert hidden.status_code == 404
    assert hidden.get_json()["msg"] == unknown.get_json()["msg"].replace("no-such-job", job_id)

    shared = call(
        stack,
        "post",
        "/api/v1/jobs/collaboration",
        "tk_member",
        {"job_id": job_id, "collaboration": {"teams": [{"name": TEAM, "steps": ["*"]}]}},
    )
    assert shared.status_code == 200, shared.get_json()
    assert shared.get_json()["collaboration"]["teams"] == [
        {"id": team["id"], "name": TEAM, "steps": ["*"]}
    ]
    for member in ("tk_lead", "tk_viewer"):
        assert call(stack, "get", f"/api/v1/jobs/status?job_id={job_id}", member).status_code == 200
        listed = call(stack, "get", f"/api/v1/jobs/list?job_ids={job_id}", member).get_json()
        assert [item["job_id"] for item in listed["jobs"]] == [job_id]
    # A team collaborator on every step controls the job (here: its tags).
    tagged = call(
        stack, "post", "/api/v1/jobs/tags", "tk_viewer", {"job_id": job_id, "names": ["x"]}
    )
    assert tagged.status_code == 200 and tagged.get_json()["updated_tags"] == ["x"]
    assert (
        call(stack, "get", f"/api/v1/jobs/status?job_id={job_id}", "tk_outsider").status_code == 404
    )


def test_a_viewer_reads_the_team_space_but_cannot_write_or_run_into_it(stack, team):
    stack.upload(f"{ROOT}/viewer/in/a.txt", invoice("V-1", "1"), "tk_lead")
    read = call(stack, "get", f"/api/v1/drive/{ROOT}/viewer/in", "tk_viewer")
    assert read.status_code == 200 and [e["name"] for e in read.get_json()["entries"]] == ["a.txt"]
    for method in ("put", "delete"):
        refused = call(stack, method, f"/api/v1/drive/{ROOT}/viewer/in/a.txt", "tk_viewer", b"x")
        assert refused.status_code == 403 and "viewer" in refused.get_json()["msg"], method
    run = run_async(
        stack,
        {"binary_path": f"{TEAM}/x.ibflowbin", "input_dir": f"{ROOT}/viewer/in"},
        "tk_viewer",
    )
    assert run.status_code in (403, 404), run.get_json()
    compiled = call(
        stack,
        "post",
        "/api/v1/flow_binary/compile",
        "tk_viewer",
        {"binary_type": "Single Flow", "flow_project_root": f"{TEAM}/invoices"},
    )
    assert compiled.status_code == 403, compiled.get_json()
    assert call(stack, "get", f"/api/v1/drive/{ROOT}/viewer/in/a.txt", "tk_viewer").data.startswith(
        b"ACME"
    )


def test_an_outsider_sees_the_team_space_as_missing_everywhere(stack, team):
    stack.upload(f"{ROOT}/secret.txt", b"secret", "tk_lead")
    missing = call(stack, "get", "/api/v1/drive/No Such Space/secret.txt", "tk_outsider")
    hidden = call(stack, "get", f"/api/v1/drive/{ROOT}/secret.txt", "tk_outsider")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json()["msg"] == missing.get_json()["msg"].replace(
        "No Such Space/secret.txt", f"{ROOT}/secret.txt"
    )
    run = run_async(
        stack,
        {"binary_path": f"{TEAM}/x.ibflowbin", "input_dir": "tk_outsider/in"},
        "tk_outsider",
    )
    assert run.status_code == 404, run.get_json()


def test_members_are_managed_by_team_admins_and_a_team_keeps_an_admin(stack, team):
    path = f"/api/v2/teams/{team['id']}/members"
    by_member = call(stack, "post", path, "tk_member", {"user": "tk_outsider"})
    assert by_member.status_code == 403
    last_admin = call(stack, "delete", f"{path}/tk_lead", "tk_lead")
    assert last_admin.status_code == 409 and "last admin" in last_admin.get_json()["msg"]
    added = call(stack, "post", path, "tk_lead", {"user": "tk_outsider", "role": "viewer"})
    assert added.status_code == 201 and added.get_json()["role"] == "viewer"
    changed = call(stack, "post", path, "tk_lead", {"user": "tk_outsider", "role": "member"})
    assert changed.status_code == 200 and changed.get_json()["role"] == "member"
    assert call(stack, "get", f"/api/v1/drive/{ROOT}", "tk_outsider").status_code == 200
    # Members may leave on their own.
    assert call(stack, "delete", f"{path}/tk_outsider", "tk_outsider").status_code == 204
    assert call(stack, "get", f"/api/v1/drive/{ROOT}", "tk_outsider").status_code == 404
    bad_role = call(stack, "post", path, "tk_lead", {"user": "tk_outsider", "role": "owner"})
    assert bad_role.status_code == 400


def test_renaming_a_team_moves_its_space_and_a_team_with_files_is_not_deleted(stack, team):
    made = call(stack, "post", "/api/v2/teams", "tk_lead", {"name": "Old Name"}).get_json()
    stack.upload("Old Name/notes.txt", b"kept", "tk_lead")
    renamed = call(stack, "put", f"/api/v2/teams/{made['id']}", "tk_lead", {"name": "New Name"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "New Name"
    assert call(stack, "get", "/api/v1/drive/New Name/notes.txt", "tk_lead").data == b"kept"
    assert call(stack, "get", "/api/v1/drive/Old Name/notes.txt", "tk_lead").status_code == 404
    kept = call(stack, "delete", f"/api/v2/teams/{made['id']}", "tk_lead")
    assert kept.status_code == 409
    call(stack, "delete", "/api/v1/drive/New Name/notes.txt", "tk_lead")
    assert call(stack, "delete", f"/api/v2/teams/{made['id']}", "tk_lead").status_code == 204
    assert call(stack, "get", f"/api/v2/teams/{made['id']}", "tk_lead").status_code == 404


def test_a_read_only_key_reads_jobs_and_nothing_else(stack, team):
    key = new_key(stack, "tk_lead", ["ViewJobs"])
    assert set(key) == {
        "id",
        "name",
        "permissions",
        "expires_at",
        "created_at",
        "last_used_at",
        "key",
    }
    listed = call(stack, "get", "/api/v1/jobs/list", "", headers=basic(key["key"]))
    assert listed.status_code == 200
    for method, path, needed in (
        ("get", "/api/v1/jobs/cancel_all", "ManageJobs"),
        ("get", f"/api/v1/drive/{ROOT}", "ManageFiles"),
        ("get", "/api/v1/review/records?job_id=x", "ReviewJobs"),
        ("get", "/api/v2/api-keys", "Admin"),
    ):
        refused = call(stack, method, path, "", headers=basic(key["key"]))
        assert refused.status_code == 403, (path, refused.get_json())
        assert needed in refused.get_json()["msg"]
    # The key is never shown again, and it is stored only as a hash.
    shown = call(stack, "get", "/api/v2/api-keys", "tk_lead").get_json()["values"]
    assert [k["id"] for k in shown] == [key["id"]] and "key" not in shown[0]
    assert shown[0]["last_used_at"] is not None
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        row = session.query(ApiToken).filter(ApiToken.key_id == key["id"]).one()
        assert key["key"] not in (row.token_hash, row.name) and len(row.token_hash) == 64


def test_basic_auth_with_user_and_key_and_a_revoked_or_expired_key(stack, team):
    key = new_key(stack, "tk_member", ["ViewJobs", "ManageFiles"])
    as_user = call(
        stack, "get", f"/api/v1/drive/{ROOT}", "", headers=basic(key["key"], "tk_member")
    )
    assert as_user.status_code == 200
    wrong_user = call(
        stack, "get", f"/api/v1/drive/{ROOT}", "", headers=basic(key["key"], "tk_lead")
    )
    assert wrong_user.status_code == 401

    assert call(stack, "delete", f"/api/v2/api-keys/{key['id']}", "tk_lead").status_code == 404
    assert call(stack, "delete", f"/api/v2/api-keys/{key['id']}", "tk_member").status_code == 204
    revoked = call(stack, "get", "/api/v1/jobs/list", "", headers=basic(key["key"]))
    assert revoked.status_code == 401

    later = new_key(stack, "tk_member", ["ViewJobs"], expires_at="2099-01-01T00:00:00Z")
    assert later["expires_at"].startswith("2099-01-01T00:00:00")
    assert (
        call(stack, "get", "/api/v1/jobs/list", "", headers=basic(later["key"])).status_code == 200
    )
    with session_scope(stack.settings.sql_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.key_id == later["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    expired = call(stack, "get", "/api/v1/jobs/list", "", headers=basic(later["key"]))
    assert expired.status_code == 401 and "expired" in expired.get_json()["msg"]
    past = call(
        stack,
        "post",
        "/api/v2/api-keys",
        "tk_member",
        {"name": "old", "permissions": ["ViewJobs"], "expires_at": "2001-01-01T00:00:00Z"},
    )
    assert past.status_code == 400


def test_a_key_grants_no_more_than_it_holds(stack, team):
    admin_key = new_key(stack, "tk_lead", ["Admin"])
    made = call(
        stack,
        "post",
        "/api/v2/api-keys",
        "",
        {"name": "child", "permissions": ["ViewJobs"]},
        headers=basic(admin_key["key"]),
    )
    assert made.status_code == 201
    unknown = call(
        stack, "post", "/api/v2/api-keys", "tk_lead", {"name": "x", "permissions": ["Root"]}
    )
    assert unknown.status_code == 400 and "ViewJobs" in unknown.get_json()["msg"]


def test_an_admins_key_without_admin_acts_as_a_plain_user(stack, team):
    plain = new_key(stack, "root", ["ViewJobs"])
    full = new_key(stack, "root", ["Admin"])
    users = call(stack, "get", "/api/v2/users", "", headers=basic(plain["key"]))
    assert users.status_code == 403 and "Admin" in users.get_json()["msg"]
    everyone = call(stack, "get", "/api/v2/users", "", headers=basic(full["key"]))
    assert everyone.status_code == 200
    names = {user["username"] for user in everyone.get_json()["values"]}
    assert {"tk_lead", "tk_member", "root"} <= names
    # Without Admin, the admin's key sees another user's space as missing.
    hidden = call(stack, "get", "/api/v1/jobs/status?job_id=x", "", headers=basic(plain["key"]))
    assert hidden.status_code == 404


def test_admins_create_users_with_emails_and_everyone_reads_themselves(stack, team):
    made = call(
        stack,
        "post",
        "/api/v2/users",
        "root",
        {"username": "tk_new", "email": "tk_new@example.com"},
    )
    assert made.status_code == 201, made.get_json()
    created = made.get_json()
    me = call(
        stack,
        "get",
        "/api/v2/users/me",
        "",
        headers={"Authorization": f"Bearer {created['token']}"},
    )
    assert me.get_json() == {key: created[key] for key in me.get_json()}
    assert me.get_json()["email"] == "tk_new@example.com"
    duplicate = call(
        stack,
        "post",
        "/api/v2/users",
        "root",
        {"username": "tk_other", "email": "tk_new@example.com"},
    )
    assert duplicate.status_code == 409
    by_user = call(stack, "post", "/api/v2/users", "tk_lead", {"username": "tk_nope"})
    assert by_user.status_code == 403


def test_collaboration_names_unknown_steps_teams_and_users(stack, team, binary):
    stack.upload(f"{ROOT}/in/a.txt", invoice("T-1", "10"), "tk_lead")
    body = {"binary_path": binary, "input_dir": f"{ROOT}/in", "output_dir": f"{ROOT}/out2"}
    for collaboration, named in (
        ({"users": [{"username": "tk_lead", "steps": ["read", "nope"]}]}, "'nope'"),
        ({"teams": [{"name": "No Team", "steps": ["*"]}]}, "No Team"),
        ({"users": [{"email": "nobody@example.com", "steps": ["*"]}]}, "nobody@example.com"),
        ({"users": [{"username": "tk_lead", "steps": []}]}, "steps"),
    ):
        refused = run_async(
            stack, {**body, "settings": {"collaboration": collaboration}}, "tk_member"
        )
        assert refused.status_code == 400, refused.get_json()
        assert named in refused.get_json()["msg"]
