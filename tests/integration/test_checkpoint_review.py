"""Checkpoint review through real workers: a record stops at a checkpoint, a reviewer corrects
it, and `retry?type=checkpoint_failure` re-validates it and runs the steps after the checkpoint.

A counting UDF after the checkpoint notes every record it sees, so the tests can tell which
records went past the checkpoint and how often.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.control_udfs import CONTROL_UDFS
from tests.integration.flows import compile_flow, invoice, run_async, wait_done

pytestmark = pytest.mark.integration

REVIEW_FLOW = """
name: reviewed_invoices
steps:
  - {id: read, type: extract_text}
  - id: fields
    type: refine
    params:
      fields:
        invoice_number: "regex(text, 'Invoice #\\\\s*(\\\\S+)')"
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: check
    type: checkpoint
    params:
      rules:
        - {formula: "total > 0", message: "total must be positive"}
  - {id: after, type: udf, params: {function: "udfs/control.py:count"}}
"""

# The checkpoint is the first step: nothing persisted before it could be corrected.
FIRST_STEP_CHECKPOINT_FLOW = """
name: checked_first
steps:
  - id: check
    type: checkpoint
    params:
      rules:
        - {formula: "len(file_name) > 100", message: "file name too short"}
  - {id: read, type: extract_text}
"""


def compile_project(stack, root: str, flow: str) -> str:
    stack.upload(f"{root}/flows/main.ibflow", flow.encode())
    stack.upload(f"{root}/udfs/control.py", CONTROL_UDFS.encode())
    done = compile_flow(stack, root)
    assert done["cur_status"]["status"] == "COMPLETE", done
    return done["results"][0]["binary_path"]


def run(stack, root: str, binary: str, control_dir: Path, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        stack.upload(f"{root}/input/{name}", data)
    response = run_async(
        stack,
        {
            "binary_path": binary,
            "input_dir": f"{root}/input",
            "settings": {"runtime_config": {"control_dir": str(control_dir)}},
        },
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["job_id"]


def get(stack, path: str, user: str = "alice"):
    return stack.client.get(path, headers=stack.headers(user))


def post(stack, path: str, body: dict, user: str = "alice"):
    return stack.client.post(path, data=json.dumps(body), headers=stack.headers(user))


def records(stack, job_id: str, user: str = "alice"):
    return get(stack, f"/api/v1/review/records?job_id={job_id}", user)


def counted(control_dir: Path) -> list[str]:
    file = control_dir / "count"
    return sorted(file.read_text().splitlines()) if file.exists() else []


def cur_status(stack, job_id: str) -> dict:
    answer = get(stack, f"/api/v1/jobs/status?job_id={job_id}&type=flow")
    assert answer.status_code == 200, answer.get_json()
    return json.loads(answer.get_json()["cur_status"])


def listed(stack, query: str, user: str = "alice") -> dict[str, dict]:
    answer = get(stack, f"/api/v1/jobs/list?{query}", user)
    assert answer.status_code == 200, answer.get_json()
    return {job["job_id"]: job for job in answer.get_json()["jobs"]}


def test_a_reviewer_corrects_a_stopped_record_and_retry_carries_it_through(stack, tmp_path):
    root = f"alice/review-{stack.backend}"
    control_dir = tmp_path / "control"
    control_dir.mkdir()
    binary = compile_project(stack, root, REVIEW_FLOW)
    job_id = run(
        stack,
        root,
        binary,
        control_dir,
        {
            "a.txt": invoice("A-1", "100.00"),
            "b.txt": invoice("B-2", "0"),
            "c.txt": invoice("C-3", "30.50"),
        },
    )

    stopped = wait_done(stack, job_id)["cur_status"]
    assert stopped["status"] == "STOPPED_AT_CHECKPOINT"
    assert stopped["run_summary"]["numCheckpointFailed"] == 1
    assert stopped["flow_review_metrics"] == {"reviewed": 0, "pending": 1}
    assert stopped["review_state"] == "NONE" and stopped["reviewer"] == ""
    assert counted(control_dir) == ["after a.txt", "after c.txt"]

    answer = records(stack, job_id)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["flow_review_metrics"] == {"reviewed": 0, "pending": 1}
    [record] = body["records"]
    assert {
        key: record[key]
        for key in (
            "file_name",
            "file_index",
            "record_index",
            "fields",
            "checkpoint_failed",
            "checkpoint_step",
            "reviewed",
        )
    } == {
        "file_name": "b.txt",
        "file_index": 1,
        "record_index": 0,
        "fields": {"invoice_number": "B-2", "total": 0},
        "checkpoint_failed": ["total must be positive"],
        "checkpoint_step": "check",
        "reviewed": False,
    }

    # Bob is not the owner: the job does not exist for him until he is its reviewer.
    correction = {"job_id": job_id, "file_index": 1, "record_index": 0, "fields": {"total": 42}}
    assert records(stack, job_id, "bob").status_code == 404
    assert post(stack, "/api/v1/review/correct", correction, "bob").status_code == 404
    assert post(stack, "/api/v1/review/complete", {"job_id": job_id}, "bob").status_code == 404
    bob_assigns = post(stack, "/api/v1/review/assign", {"job_id": job_id, "reviewer": "bob"}, "bob")
    assert bob_assigns.status_code == 404
    assert bob_assigns.get_json() == {"status": "ERROR", "msg": f"no job with id {job_id!r}"}

    nobody = post(stack, "/api/v1/review/assign", {"job_id": job_id, "reviewer": "nobody"})
    assert nobody.status_code == 400 and "no user 'nobody'" in nobody.get_json()["msg"]
    assigned = post(stack, "/api/v1/review/assign", {"job_id": job_id, "reviewer": "bob"})
    assert assigned.get_json() == {
        "status": "OK",
        "job_id": job_id,
        "reviewer": "bob",
        "review_state": "IN REVIEW",
    }
    assert cur_status(stack, job_id)["reviewer"] == "bob"

    assert records(stack, job_id, "bob").status_code == 200
    # The reviewer finds and reads the job, but does not control it.
    as_bob = stack.headers("bob")
    bob_status = stack.client.get(f"/api/v1/jobs/status?job_id={job_id}", headers=as_bob)
    assert bob_status.status_code == 200 and bob_status.get_json()["job_id"] == job_id
    bob_list = stack.client.get("/api/v1/jobs/list?reviewer=bob", headers=as_bob).get_json()
    assert [j["job_id"] for j in bob_list["jobs"]] == [job_id]
    bob_cancel = stack.client.get(f"/api/v1/jobs/cancel?job_id={job_id}", headers=as_bob)
    # He sees the job, so it is not hidden from him: a 403 that says who may.
    assert bob_cancel.status_code == 403 and "you are its reviewer" in bob_cancel.get_json()["msg"]
    reassign = post(stack, "/api/v1/review/assign", {"job_id": job_id, "reviewer": "bob"}, "bob")
    assert reassign.status_code == 403 and "owner" in reassign.get_json()["msg"]
    passed = post(stack, "/api/v1/review/correct", {**correction, "file_index": 0}, "bob")
    assert passed.status_code == 409 and "awaiting review" in passed.get_json()["msg"]
    missing = post(stack, "/api/v1/review/correct", {**correction, "record_index": 5}, "bob")
    assert missing.status_code == 404 and missing.get_json()["status"] == "ERROR"
    no_file = post(stack, "/api/v1/review/correct", {**correction, "file_index": 9}, "bob")
    assert no_file.status_code == 404 and "file_index 9" in no_file.get_json()["msg"]
    not_a_dict = post(stack, "/api/v1/review/correct", {**correction, "fields": [1]}, "bob")
    assert not_a_dict.status_code == 400 and "fields" in not_a_dict.get_json()["msg"]

    corrected = post(stack, "/api/v1/review/correct", correction, "bob")
    assert corrected.status_code == 200, corrected.get_json()
    shown = corrected.get_json()["record"]
    assert shown["reviewed"] is True and shown["reviewer"] == "bob"
    assert shown["corrected_fields"] == {"total": 42}
    assert cur_status(stack, job_id)["flow_review_metrics"] == {"reviewed": 1, "pending": 0}
    assert records(stack, job_id, "root").get_json()["records"][0]["reviewed"] is True

    in_review = listed(stack, f"review_state={quote('IN REVIEW')}")
    assert in_review[job_id]["flow_review_metrics"] == {"reviewed": 1, "pending": 0}
    assert job_id in listed(stack, "reviewer=bob")
    assert job_id not in listed(stack, "review_state=COMPLETED")

    closed = post(stack, "/api/v1/review/complete", {"job_id": job_id}, "bob")
    assert closed.get_json()["review_state"] == "COMPLETED"
    assert job_id in listed(stack, "review_state=COMPLETED")
    logs = get(stack, f"/api/v1/jobs/get_logs?job_id={job_id}").get_json()["logs"]
    review_lines = [line["log"] for line in logs if line["task-id"] == "review"]
    assert review_lines == [
        "Reviewer bob assigned by alice",
        "Record 0 of file b.txt stopped at checkpoint 'check' reviewed by bob: total",
        "Review marked COMPLETED by bob",
    ]

    assert (
        get(stack, f"/api/v1/jobs/retry?job_id={job_id}&type=checkpoint_failure").status_code == 200
    )
    done = wait_done(stack, job_id)
    assert done["cur_status"]["status"] == "COMPLETE"
    assert done["cur_status"]["run_summary"]["numCheckpointFailed"] == 0
    assert done["cur_status"]["flow_review_metrics"] == {"reviewed": 1, "pending": 0}
    # The UDF after the checkpoint ran once more: for the corrected record only.
    assert counted(control_dir) == ["after a.txt", "after b.txt", "after c.txt"]
    out = stack.settings.drive_root / done["results"][0]["output_folder"]
    results = {r["file_name"]: r for r in json.loads((out / "results.json").read_text())}
    assert results["b.txt"]["results"] == [
        {"key": "invoice_number", "value": "B-2"},
        {"key": "total", "value": 42},
    ]
    assert results["b.txt"]["checkpoint_failed"] == [] and results["b.txt"]["error"] is None

    assert records(stack, job_id).get_json()["records"] == []
    too_late = post(stack, "/api/v1/review/correct", correction)
    assert (
        too_late.status_code == 409 and "not stopped at a checkpoint" in too_late.get_json()["msg"]
    )


def test_a_record_that_fails_again_after_retry_is_pending_again(stack, tmp_path):
    root = f"alice/review-again-{stack.backend}"
    control_dir = tmp_path / "control"
    control_dir.mkdir()
    binary = compile_project(stack, root, REVIEW_FLOW)
    job_id = run(stack, root, binary, control_dir, {"z.txt": invoice("Z-9", "0")})
    assert wait_done(stack, job_id)["cur_status"]["status"] == "STOPPED_AT_CHECKPOINT"

    reviewed = post(
        stack,
        "/api/v1/review/correct",
        {"job_id": job_id, "file_index": 0, "record_index": 0, "fields": {}},
    )
    assert reviewed.status_code == 200 and reviewed.get_json()["record"]["corrected_fields"] == {}
    assert cur_status(stack, job_id)["flow_review_metrics"] == {"reviewed": 1, "pending": 0}

    assert (
        get(stack, f"/api/v1/jobs/retry?job_id={job_id}&type=checkpoint_failure").status_code == 200
    )
    again = wait_done(stack, job_id)["cur_status"]
    assert again["status"] == "STOPPED_AT_CHECKPOINT"
    assert again["flow_review_metrics"] == {"reviewed": 1, "pending": 1}
    [record] = records(stack, job_id).get_json()["records"]
    assert record["reviewed"] is False and record["fields"]["total"] == 0
    assert counted(control_dir) == []


def test_a_checkpoint_at_the_first_step_cannot_be_corrected(stack, tmp_path):
    root = f"alice/review-first-{stack.backend}"
    binary = compile_project(stack, root, FIRST_STEP_CHECKPOINT_FLOW)
    job_id = run(stack, root, binary, tmp_path, {"short.txt": invoice("S-1", "5")})
    assert wait_done(stack, job_id)["cur_status"]["status"] == "STOPPED_AT_CHECKPOINT"

    [record] = records(stack, job_id).get_json()["records"]
    assert record["checkpoint_step"] == "check"
    assert record["checkpoint_failed"] == ["file name too short"]
    refused = post(
        stack,
        "/api/v1/review/correct",
        {"job_id": job_id, "file_index": 0, "record_index": 0, "fields": {"x": 1}},
    )
    assert refused.status_code == 409 and "first step" in refused.get_json()["msg"]
    wrong_state = post(stack, "/api/v1/review/complete", {"job_id": job_id, "state": "DONE"})
    assert wrong_state.status_code == 400 and "state" in wrong_state.get_json()["msg"]
    not_completed = post(
        stack, "/api/v1/review/complete", {"job_id": job_id, "state": "NOT_COMPLETED"}
    )
    assert not_completed.get_json()["review_state"] == "NOT_COMPLETED"
