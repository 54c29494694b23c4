"""The resource API (``/api/v2/jobs``, seeds 002 and 003) on real workers: the same jobs as v1's,
created and steered through either API and seen through both; filters, keyset pages, desired
execution status converging at the next step boundary, metrics, changes and removal, job types;
and two clients written from the seeds' own examples.

Steps are held by the gate UDF of tests/integration/control_udfs.py, so a suspend lands while a
step runs, deterministically."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import jsonschema_rs  # schemathesis's JSON Schema validator
import pytest
from sqlalchemy import func, select

from api.resource_schemas import LogsPage
from shared.accounts.credentials import create_key
from shared.accounts.users import find_user
from shared.states import Permission
from shared.store.db import session_scope
from shared.store.models import Job, JobFile, JobLog
from tests.integration.control_udfs import CONTROL_UDFS, GATED_FLOW
from tests.integration.flows import (
    ENRICH_UDF,
    LINES_FLOW,
    compile_flow,
    invoice,
    put_project,
    run_async,
    status,
    wait_done,
)
from tests.support import wait_for

pytestmark = pytest.mark.integration

FILTERING_FLOW = """
name: filtering
steps:
  - id: read
    type: extract_text
  - id: fields
    type: refine
    params:
      fields:
        invoice_number: "regex(text, 'Invoice #\\\\s*(\\\\S+)')"
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: big_only
    type: filter
    params: {keep_if: "total > 50"}
  - id: enrich
    type: udf
    params: {function: "udfs/enrich.py:enrich"}
"""
BOOM = invoice("X-9", "500") + b"boom\n"  # kept by the filter, fails the enrich UDF


class Gate:
    """The folder the gate UDF notes into and waits on."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def lines(self, name: str) -> list[str]:
        file = self.path / name
        return file.read_text().splitlines() if file.exists() else []

    def open(self) -> None:
        (self.path / "open").touch()


@pytest.fixture
def gate(tmp_path):
    held = Gate(tmp_path / "gate")
    yield held
    held.open()  # never leave a worker slot held by a failed test


@pytest.fixture(scope="module")
def projects(stack) -> dict[str, str]:
    """alice's compiled flows (binary paths by name) and their input folders."""
    root = f"alice/v2-{stack.backend}"
    put_project(stack, f"{root}/filtering", flow=FILTERING_FLOW, udf=ENRICH_UDF)
    stack.upload(f"{root}/gated/flows/main.ibflow", GATED_FLOW.encode())
    stack.upload(f"{root}/gated/udfs/control.py", CONTROL_UDFS.encode())
    inputs = {
        "clean": {"a.txt": invoice("A-1", "100.00")},
        "mixed": {"a.txt": invoice("A-1", "100.00"), "b.txt": invoice("B-2", "10"), "c.txt": BOOM},
        "broken": {"c.txt": BOOM},
        "one": {"g.txt": invoice("G-1", "70")},
    }
    for folder, files in inputs.items():
        for name, data in files.items():
            stack.upload(f"{root}/inputs/{folder}/{name}", data)
    found = {}
    for name in ("filtering", "gated"):
        compiled = compile_flow(stack, f"{root}/{name}")
        assert compiled["cur_status"]["status"] == "COMPLETE", compiled
        found[name] = compiled["results"][0]["binary_path"]
    found.update({folder: f"{root}/inputs/{folder}" for folder in inputs})
    found["project"] = f"{root}/filtering"
    return found


def v2(stack, method: str, path: str, body=None, user: str = "alice", headers=None):
    data = json.dumps(body) if isinstance(body, dict | list) else body
    return stack.client.open(
        f"/api/v2{path}", method=method, data=data, headers=headers or stack.headers(user)
    )


def ok(response, code: int = 200):
    assert response.status_code == code, (response.status_code, response.get_json())
    return response.get_json()


def create_run(stack, projects, input_folder: str, user: str = "alice", **fields) -> dict:
    body = {
        "type": "flow-run",
        "binary_path": projects["filtering"],
        "input_dir": projects[input_folder],
        "output_has_run_id": True,
        **fields,
    }
    return ok(v2(stack, "POST", "/jobs", body, user), 201)


def create_gated(stack, projects, gate: Gate, **fields) -> dict:
    return create_run(
        stack,
        projects,
        "one",
        binary_path=projects["gated"],
        runtime_config={"control_dir": str(gate.path)},
        **fields,
    )


def job(stack, job_id: str, user: str = "alice") -> dict:
    return ok(v2(stack, "GET", f"/jobs/{job_id}", user=user))


def wait_job(stack, job_id: str, done, user: str = "alice", message: str = "") -> dict:
    return wait_for(
        lambda: (found := job(stack, job_id, user)) and done(found) and found,
        timeout=60,
        interval=0.1,
        message=message or f"job {job_id}",
    )


def wait_ended(stack, job_id: str, user: str = "alice") -> dict:
    """Seed 002's loop: GET /jobs/:id until its status is final."""
    return wait_job(
        stack,
        job_id,
        lambda found: found["status"] in ("completed", "cancelled", "failed", "blocked"),
        user,
        f"job {job_id} to end",
    )


def seed_state(stack, job_id: str) -> str:
    return json.loads(status(stack, job_id)["cur_status"])["status"]


def ids(page: dict) -> list[str]:
    return [found["id"] for found in page["values"]]


# -- v1 and v2 show the same jobs ---------------------------------------------------------------
def test_a_run_created_through_v2_is_followed_through_v1_and_in_seed_002s_shape(stack, projects):
    tag = f"t-{uuid4().hex[:8]}"
    created = create_run(
        stack,
        projects,
        "clean",
        tags=[tag],
        priority=3,
        customer="acme",  # unknown: kept in metadata, with the given metadata
        metadata={"batch": 7},
    )
    assert created["type"] == "flow-run"
    assert created["metadata"] == {"customer": "acme", "batch": 7}
    assert created["status"] in ("queued", "running", "completed")
    assert created["desiredExecutionStatus"] == "running"
    assert created["owner"]["username"] == "alice" and created["owner"]["id"]
    assert created["createdBy"] == created["lastModifiedBy"]
    assert created["createdBy"]["username"] == "alice"
    assert created["tags"] == [tag] and created["priority"] == 3
    assert created["input_content"] == {
        "type": "folder",
        "uri": projects["clean"],
        "binary_path": projects["filtering"],
    }
    assert created["output_content"] is None
    assert created["createdTimestamp"].endswith("Z")

    polled = wait_done(stack, created["id"])
    assert polled["cur_status"]["status"] == "COMPLETE"
    listed = ok(stack.client.get(f"/api/v1/jobs/list?tags={tag}", headers=stack.headers()))
    assert [item["job_id"] for item in listed["jobs"]] == [created["id"]]

    done = wait_ended(stack, created["id"])
    assert done["status"] == "completed" and done["executionStatus"] == "completed"
    assert done["health"] == {"status": "ok", "message": ""}
    assert done["progress"] == {"current": 4, "total": 4}  # one file, four steps
    results = done["output_content"]["uri"]
    assert results.endswith("/results.json")
    assert (stack.settings.drive_root / results).is_file()
    assert done["completedTimestamp"] >= done["startedTimestamp"] >= done["createdTimestamp"]


def test_a_run_submitted_through_v1_is_seen_and_steered_through_v2(stack, projects, gate):
    body = {
        "binary_path": projects["gated"],
        "input_dir": projects["one"],
        "settings": {"output_has_run_id": True, "runtime_config": {"control_dir": str(gate.path)}},
    }
    job_id = ok(run_async(stack, body))["data"]["job_id"]
    wait_for(lambda: gate.lines("started"), message="the file held at the gate")

    # Suspended: recorded at once; the held step finishes, and no further step starts.
    answer = ok(v2(stack, "PUT", f"/jobs/{job_id}/status", {"desiredExecutionStatus": "suspended"}))
    assert answer["id"] == job_id and answer["desiredExecutionStatus"] == "suspended"
    assert answer["executionStatus"] == "running"  # its step is still running
    assert ok(v2(stack, "GET", f"/jobs/{job_id}/status")) == {
        "executionStatus": "running",
        "desiredExecutionStatus": "suspended",
        "status": "running",
    }
    assert status(stack, job_id)["state"] == "PENDING"
    gate.open()
    paused = wait_job(stack, job_id, lambda found: found["executionStatus"] == "suspended")
    assert paused["status"] == "paused" and paused["desiredExecutionStatus"] == "suspended"
    assert seed_state(stack, job_id) == "PAUSED"
    assert gate.lines("passed") == ["g.txt"] and gate.lines("count") == []

    resumed = ok(v2(stack, "POST", f"/jobs/{job_id}/status", {"desiredExecutionStatus": "running"}))
    assert resumed["desiredExecutionStatus"] == "running"
    assert wait_done(stack, job_id)["cur_status"]["status"] == "COMPLETE"
    assert gate.lines("count") == ["after g.txt"]
    assert job(stack, job_id)["lastModifiedBy"]["username"] == "alice"

    # A completed job has ended: no wish can be reached, each is a 409 with the reason, and
    # nothing is recorded.
    for wish, reason in (("suspended", "nothing to suspend"), ("canceled", "nothing left")):
        refused = v2(stack, "POST", f"/jobs/{job_id}/status", {"desiredExecutionStatus": wish})
        assert refused.status_code == 409 and reason in refused.get_json()["msg"]
        assert refused.get_json()["code"] == "conflict"
    refused = v2(stack, "PUT", f"/jobs/{job_id}/status", {"desiredExecutionStatus": "running"})
    assert refused.status_code == 409 and "retry" in refused.get_json()["msg"]
    assert job(stack, job_id)["desiredExecutionStatus"] == "running"


def test_a_run_created_through_v2_is_controlled_through_v1(stack, projects, gate):
    job_id = create_gated(stack, projects, gate)["id"]
    wait_for(lambda: gate.lines("started"), message="the file held at the gate")
    assert ok(stack.client.get(f"/api/v1/jobs/pause?job_id={job_id}", headers=stack.headers()))
    assert job(stack, job_id)["desiredExecutionStatus"] == "suspended"
    gate.open()
    wait_job(stack, job_id, lambda found: found["status"] == "paused")
    ok(stack.client.get(f"/api/v1/jobs/resume?job_id={job_id}", headers=stack.headers()))
    assert job(stack, job_id)["desiredExecutionStatus"] == "running"
    assert wait_ended(stack, job_id)["status"] == "completed"


def test_canceled_stops_the_job_for_good(stack, projects, gate):
    job_id = create_gated(stack, projects, gate)["id"]
    wait_for(lambda: gate.lines("started"), message="the file held at the gate")
    cancelled = ok(
        v2(stack, "POST", f"/jobs/{job_id}/status", {"desiredExecutionStatus": "canceled"})
    )
    assert cancelled["status"] == "cancelled" and cancelled["executionStatus"] == "canceled"
    assert cancelled["desiredExecutionStatus"] == "canceled"
    assert seed_state(stack, job_id) == "CANCELLED"
    again = v2(stack, "PUT", f"/jobs/{job_id}/status", {"desiredExecutionStatus": "canceled"})
    assert again.status_code == 200
    for wish in ("running", "suspended"):
        refused = v2(stack, "PUT", f"/jobs/{job_id}/status", {"desiredExecutionStatus": wish})
        assert refused.status_code == 409 and "never runs again" in refused.get_json()["msg"]
    bad = v2(stack, "PUT", f"/jobs/{job_id}/status", {"desiredExecutionStatus": "paused"})
    assert bad.status_code == 400 and bad.get_json()["msg"].startswith("desiredExecutionStatus: ")


# -- listing ------------------------------------------------------------------------------------
def test_filters_or_within_a_parameter_and_across_parameters(stack, projects):
    tag = f"f-{uuid4().hex[:8]}"
    clean = create_run(stack, projects, "clean", tags=[tag])["id"]
    mixed = create_run(stack, projects, "mixed", tags=[tag], priority=2)["id"]
    limited = create_run(stack, projects, "mixed", tags=[tag], maxParseExceptions=0)["id"]
    broken = create_run(stack, projects, "broken", tags=[tag])["id"]
    compiled = ok(
        v2(
            stack,
            "POST",
            "/jobs",
            {
                "type": "flow-compile",
                "flow_project_root": projects["project"],
                "binary_type": "Single Flow",
                "settings": {"flow_file": "flows/main.ibflow"},
                "predefined_binary_path": f"{projects['project']}/v2-bin",
                "tags": [tag],
            },
        ),
        201,
    )
    assert compiled["type"] == "flow-compile" and compiled["progress"]["total"] == 1
    everything = [compiled["id"], broken, limited, mixed, clean]  # newest first
    for job_id in everything:
        wait_ended(stack, job_id)

    def listed(query: str, user: str = "alice") -> list[str]:
        return ids(ok(v2(stack, "GET", f"/jobs?tag={tag}&{query}", user=user)))

    assert listed("") == everything
    assert listed("type=flow-run") == everything[1:]
    assert listed("type=flow-run&type=flow-compile") == everything
    # ``limited``'s one failed record is more than its maxParseExceptions 0: it failed.
    assert listed("status=completed") == [compiled["id"], mixed, clean]
    assert listed("status=failed&status=cancelled") == [broken, limited]
    assert listed("executionStatus=completed&type=flow-compile") == [compiled["id"]]
    # Health: a failed job (one with more failed records than its limit fails) is error; some
    # failed records warn.
    assert listed("healthStatus=error") == [broken, limited]
    assert listed("healthStatus=warn") == [mixed]
    assert listed("healthStatus=ok&type=flow-run") == [clean]
    assert listed("healthStatus=ok&healthStatus=error&type=flow-run") == [broken, limited, clean]
    assert listed("priority=2&priority=7") == [mixed]
    alice = job(stack, clean)["owner"]["id"]
    assert listed("owner=alice") == everything == listed(f"owner={alice}")
    assert listed("owner=bob") == [] and listed("", user="bob") == []
    assert listed(f"id={clean}&id={broken}") == [broken, clean]
    created = {job_id: job(stack, job_id)["createdTimestamp"] for job_id in everything}
    assert listed(f"createdAfter={created[limited]}") == everything[:3]
    assert listed(f"createdBefore={created[limited]}") == everything[3:]
    assert listed(f"createdAfter={created[mixed]}&createdBefore={created[broken]}") == [
        limited,
        mixed,
    ]

    shown = {found["id"]: found for found in ok(v2(stack, "GET", f"/jobs?tag={tag}"))["values"]}
    assert shown[mixed]["health"]["status"] == "warn"
    assert shown[limited]["health"]["message"] == (
        "Failed: 1 records failed, more than maxParseExceptions 0"
    )
    assert shown[broken]["health"]["status"] == "error"

    unknown = v2(stack, "GET", f"/jobs?tag={tag}&colour=red")
    assert unknown.status_code == 400
    msg = unknown.get_json()["msg"]
    assert "'colour'" in msg and "healthStatus" in msg and "executionStatus" in msg
    for query in ("createdAfter=yesterday", "healthStatus=fine", "limit=0", "cursor=!!"):
        assert v2(stack, "GET", f"/jobs?{query}").status_code == 400, query


def test_pages_do_not_shift_while_jobs_arrive(stack, projects):
    tag = f"p-{uuid4().hex[:8]}"

    def compile_job() -> str:
        body = {
            "type": "flow-compile",
            "flow_project_root": projects["project"],
            "binary_type": "Single Flow",
            "settings": {"flow_file": "flows/main.ibflow"},
            "predefined_binary_path": f"{projects['project']}/pages-bin",
            "tags": [tag],
        }
        return ok(v2(stack, "POST", "/jobs", body), 201)["id"]

    first, second, third = (compile_job() for _ in range(3))
    page = ok(v2(stack, "GET", f"/jobs?tag={tag}&limit=2"))
    assert ids(page) == [third, second] and page["next"]
    fourth = compile_job()  # arrives between the pages
    rest = ok(stack.client.get(page["next"], headers=stack.headers()))
    assert ids(rest) == [first] and rest["next"] is None
    assert ids(ok(v2(stack, "GET", f"/jobs?tag={tag}&limit=2")))[0] == fourth
    # The cursor is opaque, but one that was not made by the API is refused.
    forged = page["next"].rsplit("cursor=", 1)[0] + "cursor=bm90LWEtY3Vyc29y"
    refused = stack.client.get(forged, headers=stack.headers())
    assert refused.status_code == 400 and "cursor" in refused.get_json()["msg"]
    for job_id in (first, second, third, fourth):
        wait_ended(stack, job_id)


# -- metrics, logs, changes, removal ------------------------------------------------------------


def test_metrics_count_the_records_that_came_through_with_warnings(stack, projects):
    root = f"{projects['project']}-warned"
    stack.upload(f"{root}/flows/main.ibflow", LINES_FLOW.encode())
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    binary = compiled["results"][0]["binary_path"]
    # Blank files: the split finds no line to split them by, and keeps each record whole with
    # a warning; the file with a line is split into records without one.
    stack.upload(f"{root}/in/blank1.txt", b"\n")
    stack.upload(f"{root}/in/blank2.txt", b"  \n")
    stack.upload(f"{root}/in/lines.txt", b"one\ntwo\n")
    job_id = create_run(stack, projects, "mixed", binary_path=binary, input_dir=f"{root}/in")["id"]
    assert wait_ended(stack, job_id)["status"] == "completed"
    totals = ok(v2(stack, "GET", f"/jobs/{job_id}/metrics"))["totals"]
    assert totals == {
        "numRowsProcessed": 4,
        "numRowsProcessedWithWarning": 2,
        "numRowsSkippedByFilter": 0,
        "numRowsSkippedByError": 0,
    }


def test_metrics_count_processed_filtered_and_failed_records(stack, projects):
    job_id = create_run(stack, projects, "mixed")["id"]
    assert wait_ended(stack, job_id)["status"] == "completed"
    assert ok(v2(stack, "GET", f"/jobs/{job_id}/metrics")) == {
        "totals": {
            "numRowsProcessed": 1,  # a.txt
            "numRowsProcessedWithWarning": 0,
            "numRowsSkippedByFilter": 1,  # b.txt, total 10
            "numRowsSkippedByError": 1,  # c.txt, boom
        }
    }
    logs = ok(v2(stack, "GET", f"/jobs/{job_id}/logs?limit=2"))
    assert len(logs["values"]) == 2 and logs["next"]
    assert logs["values"][0]["timestamp"].endswith("Z") and logs["values"][0]["message"]
    everything = ok(v2(stack, "GET", f"/jobs/{job_id}/logs"))
    assert everything["next"] is None
    following = ok(stack.client.get(logs["next"], headers=stack.headers()))
    assert following["values"] == everything["values"][2:4]
    # Sent as the view shaped it: what a dump through LogsPage would give, no field more.
    for page in (logs, everything, following):
        assert LogsPage().dump(page) == page


def test_put_replaces_metadata_tags_and_collaboration(stack, projects):
    job_id = create_run(stack, projects, "clean", tags=["before"], metadata={"a": 1})["id"]
    wait_ended(stack, job_id)
    changed = ok(v2(stack, "PUT", f"/jobs/{job_id}", {"metadata": {"b": [2]}, "tags": ["x", "y"]}))
    assert changed["metadata"] == {"b": [2]} and changed["tags"] == ["x", "y"]
    listed = ok(stack.client.get(f"/api/v1/jobs/list?job_ids={job_id}", headers=stack.headers()))
    assert listed["jobs"][0]["tags"] == ["x", "y"]

    assert v2(stack, "GET", f"/jobs/{job_id}", user="bob").status_code == 404
    share = {"users": [{"username": "bob", "steps": ["*"]}]}
    shared = ok(v2(stack, "PUT", f"/jobs/{job_id}", {"collaboration": share}))
    assert [user["username"] for user in shared["collaboration"]["users"]] == ["bob"]
    assert job(stack, job_id, "bob")["id"] == job_id
    assert status(stack, job_id, "bob")["job_id"] == job_id
    # bob controls it ("*") but only its owner or an admin changes who shares it.
    by_bob = ok(v2(stack, "PUT", f"/jobs/{job_id}", {"tags": ["bob"]}, user="bob"))
    assert by_bob["lastModifiedBy"]["username"] == "bob" and by_bob["tags"] == ["bob"]
    assert by_bob["lastUpdatedTimestamp"] >= changed["lastUpdatedTimestamp"]
    refused = v2(stack, "PUT", f"/jobs/{job_id}", {"collaboration": {"users": []}}, user="bob")
    assert refused.status_code == 403 and "only the owner" in refused.get_json()["msg"]

    # All or nothing: a wish the job cannot reach leaves the metadata as it was.
    both = {"metadata": {"c": 3}, "desiredExecutionStatus": "suspended"}
    assert v2(stack, "PUT", f"/jobs/{job_id}", both).status_code == 409
    assert job(stack, job_id)["metadata"] == {"b": [2]}
    strict = v2(stack, "PUT", f"/jobs/{job_id}", {"metadata": {}, "colour": "red"})
    assert strict.status_code == 400 and "colour" in strict.get_json()["msg"]


def rows_of(stack, job_id: str) -> tuple[int, int, int]:
    with session_scope(stack.settings.sql_url, read_only=True) as session:
        return (
            session.scalar(select(func.count()).where(Job.id == job_id)),
            session.scalar(select(func.count()).where(JobFile.job_id == job_id)),
            session.scalar(select(func.count()).where(JobLog.job_id == job_id)),
        )


def test_delete_cancels_a_running_job_and_removes_its_record(stack, projects, gate):
    running = create_gated(stack, projects, gate)["id"]
    wait_for(lambda: gate.lines("started"), message="the file held at the gate")
    assert v2(stack, "DELETE", f"/jobs/{running}", user="bob").status_code == 404
    assert v2(stack, "DELETE", f"/jobs/{running}").status_code == 204
    assert v2(stack, "GET", f"/jobs/{running}").status_code == 404
    assert (
        stack.client.get(
            f"/api/v1/jobs/status?job_id={running}", headers=stack.headers()
        ).status_code
        == 404
    )
    assert rows_of(stack, running) == (0, 0, 0)
    gate.open()

    finished = create_run(stack, projects, "clean")["id"]
    output = wait_ended(stack, finished)["output_content"]["uri"]
    assert rows_of(stack, finished)[1:] != (0, 0)
    assert v2(stack, "DELETE", f"/jobs/{finished}").status_code == 204
    assert rows_of(stack, finished) == (0, 0, 0)
    assert (stack.settings.drive_root / output).is_file()  # the user's files stay
    assert v2(stack, "DELETE", f"/jobs/{finished}").status_code == 404


# -- job types ----------------------------------------------------------------------------------
def test_job_types_describe_the_fields_that_create_them(stack, projects):
    types = {found["id"]: found for found in ok(v2(stack, "GET", "/job-types"))["values"]}
    assert set(types) == {"flow-run", "flow-compile", "flow-sync"}
    run = types["flow-run"]
    assert run["creatable"] and {"type", "binary_path"} <= set(run["fields"]["required"])
    # One input: a folder, or documents (POST /api/v2/documents).
    assert run["fields"]["oneOf"] == [{"required": ["input_dir"]}, {"required": ["documents"]}]
    assert "maxParseExceptions" in run["fields"]["properties"]
    # The nested schemas are inlined: the fields are a schema of their own.
    assert "$ref" not in json.dumps(run["fields"])
    one = ok(v2(stack, "GET", "/job-types/flow-compile"))
    assert {"flow_project_root", "binary_type"} <= set(one["fields"]["required"])
    assert types["flow-sync"]["creatable"] is False
    assert "files" in types["flow-sync"]["fields"]["required"]
    missing = v2(stack, "GET", "/job-types/ocr")
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"

    body = {"type": "flow-run", "binary_path": projects["filtering"], "input_dir": "x/y"}
    assert jsonschema_rs.is_valid(run["fields"], body)
    for wrong in ({"type": "flow-run", "binary_path": "a/b"}, {"type": "flow-run", "input_dir": 1}):
        assert not jsonschema_rs.is_valid(run["fields"], wrong)
        assert v2(stack, "POST", "/jobs", wrong).status_code == 400

    sync = v2(stack, "POST", "/jobs", {"type": "flow-sync", "binary_path": "a/b"})
    assert sync.status_code == 400 and "run_binary_sync" in sync.get_json()["msg"]
    nothing = v2(stack, "POST", "/jobs", {"binary_path": "a/b"})
    assert nothing.status_code == 400 and nothing.get_json()["msg"].startswith("type: ")
    listed = v2(stack, "POST", "/jobs", [1, 2])
    assert listed.status_code == 400 and "JSON object" in listed.get_json()["msg"]


# -- clients written from the seeds' examples ---------------------------------------------------
def api_key(stack, username: str, permissions: set[Permission]) -> str:
    with session_scope(stack.settings.sql_url) as session:
        user = find_user(session, username)
        return create_key(session, user.id, f"v2 {uuid4().hex[:6]}", frozenset(permissions))[1]


def test_a_client_written_from_seed_003(stack, projects, gate):
    """Polaris's curl examples: Basic <api key>, repeated filters, PUT .../status with
    --data-raw, GET .../metrics."""
    key = api_key(stack, "alice", {Permission.VIEW_JOBS, Permission.MANAGE_JOBS})
    headers = {"Accept": "application/json", "Authorization": f"Basic {key}"}
    clean = create_run(stack, projects, "clean")["id"]
    wait_ended(stack, clean)
    running = create_gated(stack, projects, gate)["id"]

    found = stack.client.get(
        "/api/v2/jobs?type=flow-run&healthStatus=ok&healthStatus=error&limit=1000",
        headers=headers,
    )
    values = ok(found)["values"]
    assert clean in ids({"values": values}) and running in ids({"values": values})
    assert all(v["type"] == "flow-run" and v["health"]["status"] in ("ok", "error") for v in values)
    for field in ("createdBy", "lastModifiedBy", "createdTimestamp", "lastUpdatedTimestamp"):
        assert field in values[0]

    stopped = stack.client.put(
        f"/api/v2/jobs/{running}/status",
        headers={**headers, "Content-Type": "application/json"},
        data='{\n"desiredExecutionStatus": "canceled"\n}',
    )
    assert ok(stopped)["id"] == running
    assert stopped.get_json()["executionStatus"] == "canceled"
    # The seed's GET .../status sends --data-raw '' too.
    current = ok(stack.client.get(f"/api/v2/jobs/{running}/status", headers=headers, data=""))
    assert current == {
        "executionStatus": "canceled",
        "desiredExecutionStatus": "canceled",
        "status": "cancelled",
    }
    totals = ok(stack.client.get(f"/api/v2/jobs/{clean}/metrics", headers=headers))["totals"]
    assert totals == {
        "numRowsProcessed": 1,
        "numRowsProcessedWithWarning": 0,
        "numRowsSkippedByFilter": 0,
        "numRowsSkippedByError": 0,
    }

    viewer = {"Authorization": f"Basic {api_key(stack, 'alice', {Permission.VIEW_JOBS})}"}
    assert stack.client.get(f"/api/v2/jobs/{clean}", headers=viewer).status_code == 200
    refused = stack.client.post(
        f"/api/v2/jobs/{clean}/status",
        headers=viewer,
        data=json.dumps({"desiredExecutionStatus": "canceled"}),
    )
    assert refused.status_code == 403 and "ManageJobs" in refused.get_json()["msg"]


def test_a_client_written_from_seed_002(stack, projects):
    """POST /jobs with fields of the client's own, then GET /jobs/:jobId until it is final,
    reading progress.current and progress.total on the way."""
    created = create_run(stack, projects, "mixed", purchase_order="PO-17", source={"app": "crm"})
    assert created["metadata"] == {"purchase_order": "PO-17", "source": {"app": "crm"}}
    seen = []

    def final():
        found = job(stack, created["id"])
        seen.append((found["progress"]["current"], found["progress"]["total"]))
        return found if found["status"] in ("completed", "cancelled", "failed") else None

    done = wait_for(final, timeout=60, interval=0.05, message="the job to end")
    assert done["status"] == "completed" and done["health"]["status"] == "warn"
    assert all(total == 12 for _, total in seen)  # three files, four steps
    assert [current for current, _ in seen] == sorted(current for current, _ in seen)
    assert seen[-1] == (12, 12)
    assert done["output_content"]["type"] == "flow-results"
