"""flow/run_binary_sync through the API in this process: runner processes, the real SQL store.
The binaries are compiled by the stack's real worker."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

import shared.runs.sync
from tests.integration.flows import compile_flow, invoice, put_project, status

pytestmark = pytest.mark.integration

SYNC = "/api/v1/flow/run_binary_sync"
# Seed 001's example, typographic quotes included.
SEED_SCHEMA = {
    "add_fields": [{"name": "my_field_name", "formula": "echo(\u2018hello world\u2019)"}],
    "remove_fields": ["total"],
    "rename_fields": {"invoice_number": "number"},
}
LOOP_FLOW = """
name: spin
steps:
  - id: read
    type: extract_text
  - id: act
    type: udf
    params: {function: "udfs/enrich.py:act"}
"""
LOOP_UDF = """
import os

def act(record, context):
    if "loop" in record["text"]:
        while True:
            pass
    if "exit" in record["text"]:
        os._exit(3)
    return record
"""


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sync(client, stack, body, user="alice"):
    return client.post(SYNC, data=json.dumps(body), headers=stack.headers(user))


@pytest.fixture
def binary(stack, request):
    root = f"alice/sync_{request.node.name.replace('[', '_').replace(']', '')}"
    put_project(stack, root)
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return f"{root}/build/bin/three_steps.ibflowbin"


@pytest.fixture
def loop_binary(stack, request):
    root = f"alice/spin_{request.node.name.replace('[', '_').replace(']', '')}"
    put_project(stack, root, flow=LOOP_FLOW, udf=LOOP_UDF)
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return f"{root}/build/bin/spin.ibflowbin"


def files_named(stack, name):
    return list(stack.settings.data_dir.rglob(name))


def test_sync_run_answers_with_the_results_and_writes_nothing(stack, binary):
    response = sync(
        stack.client,
        stack,
        {
            "binary_path": binary,
            "files": [
                {"file_name": "sync-only-a.txt", "file_content": encoded(invoice("A-1", "100.00"))},
                {
                    "file_name": "sync-only-c.txt",
                    "file_content": encoded(invoice("C-3", "10") + b"boom\n"),
                },
            ],
        },
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert list(body) == ["records", "binary_path", "job_id"]
    assert body["binary_path"] == binary
    good, bad = body["records"]
    assert list(good)[:4] == ["results", "file_name", "file_index", "record_index"]
    assert good["results"] == [
        {"key": "invoice_number", "value": "A-1"},
        {"key": "total", "value": 100.0},
        {"key": "total_with_tax", "value": 110.0},
    ]
    assert (good["file_name"], good["file_index"], good["record_index"]) == (
        "sync-only-a.txt",
        0,
        0,
    )
    assert good["error"] is None
    assert (bad["file_name"], bad["file_index"]) == ("sync-only-c.txt", 1)
    assert "cannot enrich a boom" in bad["error"]
    # Entirely in memory: the inputs are nowhere under the data folder (drive included).
    assert files_named(stack, "sync-only-*") == []

    done = status(stack, body["job_id"])
    cur = json.loads(done["cur_status"])
    assert done["state"] == "DONE" and cur["status"] == "COMPLETE"
    assert isinstance(done["finish_timestamp"], int)
    assert cur["run_summary"]["numFiles"] == 2
    assert cur["run_summary"]["numRecords"] == 2
    assert cur["run_summary"]["numRuntimeErrors"] == 1
    logs = stack.client.get(
        f"/api/v1/jobs/get_logs?job_id={body['job_id']}", headers=stack.headers()
    ).get_json()["logs"]
    assert any("cannot enrich a boom" in line["log"] for line in logs if line["level"] == "ERROR")
    listed = stack.client.get(
        f"/api/v1/jobs/list?job_id={body['job_id']}", headers=stack.headers()
    ).get_json()["jobs"]
    assert [(job["job_id"], job["state"], job["flow_type"]) for job in listed] == [
        (body["job_id"], "COMPLETE", "single_flow")
    ]
    assert status(stack, body["job_id"], user="root")["job_id"] == body["job_id"]
    assert (
        stack.client.get(
            f"/api/v1/jobs/status?job_id={body['job_id']}", headers=stack.headers("bob")
        ).status_code
        == 404
    )


def test_csv_results_and_the_output_schema(stack, binary):
    response = sync(
        stack.client,
        stack,
        {
            "binary_path": binary,
            "options": {
                "result_format": "csv",
                "runtime_config": {"modify_output_schema": json.dumps(SEED_SCHEMA)},
            },
            "files": [
                {"file_name": "a.txt", "file_content": encoded(invoice("A-1", "100.00"))},
                {"file_name": "b.txt", "file_content": encoded(invoice("B,2", "5"))},
            ],
        },
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["records"][0]["results"] == [
        {"key": "number", "value": "A-1"},
        {"key": "total_with_tax", "value": 110.0},
        {"key": "my_field_name", "value": "hello world"},
    ]
    assert body["csv"].splitlines() == [
        "file_name,file_index,record_index,number,total_with_tax,my_field_name,error",
        "a.txt,0,0,A-1,110.0,hello world,",
        'b.txt,1,0,"B,2",5.5,hello world,',
    ]


def test_a_failed_run_is_a_failed_job(stack, binary):
    response = sync(
        stack.client,
        stack,
        {"binary_path": binary, "files": [{"file_name": "c.docx", "file_content": encoded(b"PK")}]},
    )
    assert response.status_code == 200
    [record] = response.get_json()["records"]
    assert "unsupported file type" in record["error"]
    done = status(stack, response.get_json()["job_id"])
    assert json.loads(done["cur_status"])["status"] == "FAILED"
    assert done["results"][0]["status"] == "ERROR"


def five(content=b"x"):
    return [{"file_name": f"f{i}.txt", "file_content": encoded(content)} for i in range(5)]


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"files": five()}, 400, "binary_path"),
        ({"binary_path": "B"}, 400, "files"),
        ({"binary_path": "B", "files": []}, 400, "send 1 to 5 files"),
        ({"binary_path": "B", "files": [*five(), *five()[:1]]}, 400, "send 1 to 5 files"),
        (
            {"binary_path": "B", "files": [{"file_name": "a.txt", "file_content": "%%%"}]},
            400,
            "files.0.file_content: is not valid base64",
        ),
        ({"binary_path": "B", "files": [{"file_name": "a.txt"}]}, 400, "files.0.file_content"),
        (
            {"binary_path": "B", "files": [{"file_name": "../a.txt", "file_content": ""}]},
            400,
            "files.0.file_name",
        ),
        (
            {"binary_path": "B", "files": five(), "options": {"result_format": "xml"}},
            400,
            "options.result_format",
        ),
        (
            {
                "binary_path": "B",
                "files": five(),
                "options": {"runtime_config": {"modify_output_schema": "{broken"}},
            },
            400,
            "options.runtime_config.modify_output_schema: not valid JSON",
        ),
        ({"binary_path": "alice/none.ibflowbin", "files": five()}, 404, "no flow binary"),
        ({"binary_path": "bob/x.ibflowbin", "files": five()}, 404, "alice/"),
    ],
)
def test_bad_sync_requests_get_clear_errors(stack, binary, body, code, fragment):
    if body.get("binary_path") == "B":
        body = {**body, "binary_path": binary}
    response = sync(stack.client, stack, body)
    assert response.status_code == code, response.get_json()
    assert response.get_json()["status"] == "ERROR"
    assert fragment in response.get_json()["msg"]


def test_an_unknown_key_is_ignored_and_named(stack, binary):
    response = sync(stack.client, stack, {"binary_path": binary, "files": five(), "extra": 1})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["warnings"] == ["extra is not supported and was ignored"]


def test_too_much_content_is_413(stack, binary, monkeypatch):
    monkeypatch.setattr(shared.runs.sync, "MAX_TOTAL_BYTES", 1000)
    response = sync(stack.client, stack, {"binary_path": binary, "files": five(b"x" * 300)})
    assert response.status_code == 413
    assert "1500 bytes in all" in response.get_json()["msg"]


@pytest.fixture
def short_limit_client(stack):
    """An API whose sync runs may take one second (its own runner processes)."""
    from api.app import create_app

    app = create_app(replace(stack.settings, sync_timeout=1, sync_runners=1))
    yield app.test_client()
    pool = app.extensions.get("flowbin.sync_runners")
    if pool is not None:
        pool.close()


def test_a_run_past_the_limit_is_stopped_with_504(stack, loop_binary, short_limit_client):
    response = sync(
        short_limit_client,
        stack,
        {
            "binary_path": loop_binary,
            "files": [{"file_name": "a.txt", "file_content": encoded(b"loop")}],
        },
    )
    assert response.status_code == 504, response.get_json()
    body = response.get_json()
    assert body["status"] == "ERROR" and "limit of 1 s" in body["msg"]
    job_id = body["msg"].rsplit("(job ", 1)[1].rstrip(")")
    done = status(stack, job_id)
    assert json.loads(done["cur_status"])["status"] == "FAILED"
    assert "limit of 1 s" in done["msg"]
    # The runner was replaced: the next run is served.
    again = sync(
        short_limit_client,
        stack,
        {
            "binary_path": loop_binary,
            "files": [{"file_name": "a.txt", "file_content": encoded(b"fine")}],
        },
    )
    assert again.status_code == 200, again.get_json()


def test_a_udf_that_kills_its_process_is_422(stack, loop_binary):
    response = sync(
        stack.client,
        stack,
        {
            "binary_path": loop_binary,
            "files": [{"file_name": "a.txt", "file_content": encoded(b"exit")}],
        },
    )
    assert response.status_code == 422, response.get_json()
    assert "exit code 3" in response.get_json()["msg"]
    again = sync(
        stack.client,
        stack,
        {
            "binary_path": loop_binary,
            "files": [{"file_name": "a.txt", "file_content": encoded(b"fine")}],
        },
    )
    assert again.status_code == 200
