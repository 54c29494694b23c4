"""Compile and run flows end to end: API, real worker processes, real Redis, real SQL store."""

from __future__ import annotations

import json
import zipfile

import pytest

from api.schemas import LogsResponse
from tests.integration.flows import (
    compile_flow,
    invoice,
    put_project,
    run_async,
    status,
    wait_done,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def project(stack, request):
    """A compiled three-step project with two good invoices and one that fails its UDF."""
    root = f"alice/{request.node.name.replace('[', '_').replace(']', '')}"
    put_project(stack, root)
    stack.upload(f"{root}/data/input/a.txt", invoice("A-1", "100.00"))
    stack.upload(f"{root}/data/input/b.txt", invoice("B-2", "250.50"))
    stack.upload(f"{root}/data/input/c.txt", invoice("C-3", "10") + b"boom\n")
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return root


def test_compile_writes_the_binary_to_build_bin(stack, project):
    drive = stack.settings.drive_root
    binary = drive / project / "build/bin"
    [path] = list(binary.iterdir())
    assert path.suffix == ".ibflowbin"
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert "udfs/udfs/enrich.py" in archive.namelist()  # UDF sources under udfs/<path>
    assert manifest["binary_type"] == "Single Flow"
    assert [s["id"] for s in manifest["flows"][0]["steps"]] == ["read", "fields", "enrich"]


def test_run_async_runs_every_step_and_writes_results(stack, project):
    binary = f"{project}/build/bin/three_steps.ibflowbin"
    response = run_async(
        stack,
        {
            "binary_path": binary,
            "input_dir": f"{project}/data/input",
            "job_id": f"run-{stack.backend}",
            "settings": {
                "tags": ["nightly"],
                "priority": 7,
                "runtime_config": {"log_prefix": "org=Piston "},
            },
        },
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body == {
        "status": "OK",
        "data": {"job_id": f"run-{stack.backend}", "output_folder": f"{project}/data/out"},
    }

    done = wait_done(stack, body["data"]["job_id"])
    cur = done["cur_status"]
    assert done["state"] == "DONE" and cur["status"] == "COMPLETE", done
    assert done["results"] == [{"status": "OK", "output_folder": f"{project}/data/out"}]
    assert cur["curProgress"] == 1.0
    assert isinstance(done["finish_timestamp"], int) and len(str(done["finish_timestamp"])) == 10
    summary = cur["run_summary"]
    assert summary["numFiles"] == 3
    assert summary["numRecords"] == 3
    assert summary["numRuntimeErrors"] == 1
    assert summary["numCheckpointFailed"] == 0
    [(message, count)] = summary["recordsWithMsg"].items()
    assert "cannot enrich a boom" in message and "enrich" in message and count == 1

    out = stack.settings.drive_root / project / "data/out"
    for step in ("00_read", "01_fields", "02_enrich"):
        assert sorted(p.name for p in (out / "steps" / step).iterdir()) == [
            "a.txt.json",
            "b.txt.json",
            "c.txt.json",
        ]
    combined = json.loads((out / "results.json").read_text())
    by_file = {r["file_name"]: {kv["key"]: kv["value"] for kv in r["results"]} for r in combined}
    assert by_file["a.txt"] == {"invoice_number": "A-1", "total": 100.0, "total_with_tax": 110.0}
    assert by_file["b.txt"]["total_with_tax"] == pytest.approx(275.55)
    assert json.loads((out / "results/a.txt.json").read_text())[0]["file_name"] == "a.txt"
    assert (out / "three_steps.ibflowbin").is_file()  # save_binary_to_output defaults to true


def test_logs_carry_trace_fields_and_the_prefix(stack, project):
    response = run_async(
        stack,
        {
            "binary_path": f"{project}/build/bin/three_steps.ibflowbin",
            "input_dir": f"{project}/data/input",
            "settings": {"runtime_config": {"log_prefix": "org=Piston "}},
        },
    )
    job_id = response.get_json()["data"]["job_id"]
    wait_done(stack, job_id)
    logs = stack.client.get(
        f"/api/v1/jobs/get_logs?job_id={job_id}", headers=stack.headers()
    ).get_json()
    assert logs["next_offset"] == len(logs["logs"]) > 0
    line = logs["logs"][0]
    assert set(line) == {"job-id", "task-id", "level", "ts", "trace_id", "span_id", "log"}
    assert all(entry["job-id"] == job_id for entry in logs["logs"])
    assert all(entry["log"].startswith("org=Piston ") for entry in logs["logs"])
    assert len({entry["trace_id"] for entry in logs["logs"]}) == 1
    assert any("cannot enrich a boom" in e["log"] for e in logs["logs"] if e["level"] == "ERROR")
    page = stack.client.get(
        f"/api/v1/jobs/get_logs?job_id={job_id}&offset=2", headers=stack.headers()
    ).get_json()
    assert page["logs"] == logs["logs"][2:]
    # The body goes out as the view shaped it, without a dump through the schema the spec
    # documents: the schema reads it back and dumps it unchanged, no field more or less.
    for body in (logs, page):
        assert LogsResponse().dump(LogsResponse().load(body)) == body
    # Read on from a page's last line: the keyset position, with offset counted from it.
    first = get_logs(stack, job_id, "limit=2")
    assert first["logs"] == logs["logs"][:2] and first["next_offset"] == 2
    after = first["next_after_id"]
    assert get_logs(stack, job_id, f"after_id={after}&limit=2")["logs"] == logs["logs"][2:4]
    assert get_logs(stack, job_id, f"after_id={after}&offset=1")["logs"] == logs["logs"][3:]
    last = get_logs(stack, job_id, f"after_id={logs['next_after_id']}")
    assert last["logs"] == [] and last["next_after_id"] == logs["next_after_id"]


def get_logs(stack, job_id: str, query: str) -> dict:
    response = stack.client.get(
        f"/api/v1/jobs/get_logs?job_id={job_id}&{query}", headers=stack.headers()
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_output_has_run_id_and_explicit_output_dir(stack, project):
    response = run_async(
        stack,
        {
            "binary_path": f"{project}/build/bin/three_steps.ibflowbin",
            "input_dir": f"{project}/data/input",
            "output_dir": f"{project}/elsewhere",
            "settings": {"output_has_run_id": True, "save_binary_to_output": False},
        },
    )
    data = response.get_json()["data"]
    assert data["output_folder"].startswith(f"{project}/elsewhere/")
    assert data["output_folder"].endswith(data["job_id"])
    wait_done(stack, data["job_id"])
    out = stack.settings.drive_root / data["output_folder"]
    assert (out / "results.json").is_file()
    assert not (out / "three_steps.ibflowbin").exists()


def test_compile_error_names_file_step_and_reason(stack):
    root = "alice/broken"
    put_project(stack, root, flow="name: broken\nsteps:\n  - id: s1\n    type: teleport\n")
    done = compile_flow(stack, root)
    assert done["cur_status"]["status"] == "FAILED"
    assert done["results"][0]["status"] == "ERROR"
    assert "flows/main.ibflow" in done["msg"] and "s1" in done["msg"] and "teleport" in done["msg"]


def test_duplicate_job_id_is_a_conflict(stack, project):
    body = {
        "binary_path": f"{project}/build/bin/three_steps.ibflowbin",
        "input_dir": f"{project}/data/input",
        "job_id": f"dup-{stack.backend}",
    }
    assert run_async(stack, body).status_code == 200
    second = run_async(stack, body)
    assert second.status_code == 409
    assert second.get_json()["status"] == "ERROR" and "already exists" in second.get_json()["msg"]


def test_another_users_job_is_not_found(stack, project):
    response = run_async(
        stack,
        {
            "binary_path": f"{project}/build/bin/three_steps.ibflowbin",
            "input_dir": f"{project}/data/input",
        },
    )
    job_id = response.get_json()["data"]["job_id"]
    other = stack.client.get(f"/api/v1/jobs/status?job_id={job_id}", headers=stack.headers("bob"))
    assert other.status_code == 404 and other.get_json()["status"] == "ERROR"
    assert status(stack, job_id, user="root")["job_id"] == job_id  # admins see all


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"input_dir": "alice/x"}, 400, "binary_path"),
        ({"binary_path": "alice/nope.ibflowbin", "input_dir": "alice/x"}, 404, "no flow binary"),
        ({"binary_path": "../etc/passwd", "input_dir": "alice/x"}, 400, ".."),
        ({"binary_path": "bob/b.ibflowbin", "input_dir": "alice/x"}, 404, "alice/"),
        ({"binary_path": "a", "input_dir": "b", "settings": {"priority": 12}}, 400, "priority"),
        ({"binary_path": "a", "input_dir": "b", "job_id": "bad id!"}, 400, "job_id"),
    ],
)
def test_bad_run_requests_get_clear_errors(stack, body, code, fragment):
    response = run_async(stack, body)
    assert response.status_code == code, response.get_json()
    assert response.get_json()["status"] == "ERROR"
    assert fragment in response.get_json()["msg"]


def test_missing_or_bad_token_is_401_with_the_seed_error_body(stack):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Token x"}):
        response = stack.client.get("/api/v1/jobs/status?job_id=x", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["status"] == "ERROR" and response.get_json()["msg"]
    assert stack.client.get("/health").status_code == 200
    assert stack.client.get("/openapi.json").status_code == 200
