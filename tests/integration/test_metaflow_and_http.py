"""Metaflow and Flows binaries, modify_output_schema and the http step, run by real worker
processes against the real store; the http step posts to a real HTTP server in this process."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.store.db import session_scope
from shared.store.models import Job
from tests.integration.flows import compile_flow, invoice, put_project, run_async, wait_done

pytestmark = pytest.mark.integration

CLASSIFIER = """
rules:
  - {label: invoice, regex: "invoice\\\\s*#"}
  - {label: receipt, formula: "contains(lower(text), 'receipt')"}
default: other
"""
METAFLOW = """
routes:
  invoice: invoices.ibflow
  receipt: receipts.ibflow
default: generic.ibflow
"""
INVOICES = """
name: invoices
steps:
  - {id: read, type: extract_text}
  - id: fields
    type: refine
    params: {fields: {number: "regex(text, 'Invoice # (\\\\S+)')"}}
  - {id: enrich, type: udf, params: {function: "udfs/tag.py:tag"}}
"""
RECEIPTS = """
name: receipts
steps:
  - {id: fields, type: refine, params: {fields: {kind: "echo('receipt')"}}}
"""
GENERIC = """
name: generic
steps:
  - {id: fields, type: refine, params: {fields: {size: "len(text)"}}}
"""
TAG_UDF = "def tag(record, context):\n    record['fields']['tagged'] = True\n    return record\n"
SEED_SCHEMA = {
    "add_fields": [{"name": "my_field_name", "formula": "echo(\u2018hello world\u2019)"}],
    "remove_fields": ["invoice_number"],
    "rename_fields": {"total": "amount"},
}


def project_root(request, prefix: str) -> str:
    return f"alice/{prefix}_{request.node.name.replace('[', '_').replace(']', '')}"


def results_of(stack, output_folder: str) -> dict:
    out = stack.settings.drive_root / output_folder
    combined = json.loads((out / "results.json").read_text())
    return {result["file_name"]: result for result in combined}


def fields(result) -> dict:
    return {pair["key"]: pair["value"] for pair in result["results"]}


def run_and_wait(stack, binary: str, input_dir: str, **settings) -> tuple[dict, dict]:
    response = run_async(
        stack, {"binary_path": binary, "input_dir": input_dir, "settings": settings}
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    return wait_done(stack, data["job_id"]), data


@pytest.fixture
def metaflow_project(stack, request):
    root = project_root(request, "meta")
    for path, text in (
        ("config/docs.ibclassifier", CLASSIFIER),
        ("config/route.ibmetaflow", METAFLOW),
        ("flows/invoices.ibflow", INVOICES),
        ("flows/receipts.ibflow", RECEIPTS),
        ("flows/generic.ibflow", GENERIC),
        ("udfs/tag.py", TAG_UDF),
    ):
        stack.upload(f"{root}/{path}", text.encode())
    stack.upload(f"{root}/data/input/a.txt", invoice("A-1", "10"))
    stack.upload(f"{root}/data/input/b.txt", b"Your receipt, thanks")
    stack.upload(f"{root}/data/input/c.txt", b"hello")
    compiled = compile_flow(
        stack,
        root,
        binary_type="Metaflow",
        settings={
            "flows_dir": "flows",
            "metaflow_file": "config/route.ibmetaflow",
            "classifier_file": "config/docs.ibclassifier",
        },
    )
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return root


def test_metaflow_routes_each_file_to_the_flow_of_its_label(stack, metaflow_project):
    root = metaflow_project
    binary = f"{root}/build/bin/route.ibflowbin"
    done, data = run_and_wait(stack, binary, f"{root}/data/input")
    assert done["cur_status"]["status"] == "COMPLETE", done
    by_file = results_of(stack, data["output_folder"])
    assert (by_file["a.txt"]["class_label"], fields(by_file["a.txt"])) == (
        "invoice",
        {"number": "A-1", "tagged": True},
    )
    assert (by_file["b.txt"]["class_label"], fields(by_file["b.txt"])) == (
        "receipt",
        {"kind": "receipt"},
    )
    assert (by_file["c.txt"]["class_label"], fields(by_file["c.txt"])) == ("other", {"size": 5})
    # One task per step per file, every step's output persisted.
    steps = sorted(
        p.name for p in (stack.settings.drive_root / data["output_folder"] / "steps").iterdir()
    )
    assert steps == [
        "00_read",
        "01_classify",
        "02_generic.fields",
        "03_invoices.fields",
        "04_invoices.enrich",
        "05_receipts.fields",
    ]
    with session_scope(stack.settings.sql_url) as session:
        job = session.get(Job, data["job_id"])
        assert (job.flow_type, job.num_steps) == ("metaflow", 6)

    # The same binary through a sync run gives the same results.
    files = [
        {
            "file_name": name,
            "file_content": base64.b64encode(
                (stack.settings.drive_root / root / "data/input" / name).read_bytes()
            ).decode(),
        }
        for name in ("a.txt", "b.txt", "c.txt")
    ]
    response = stack.client.post(
        "/api/v1/flow/run_binary_sync",
        headers=stack.headers(),
        data=json.dumps({"binary_path": binary, "files": files}),
    )
    assert response.status_code == 200, response.get_json()
    assert [record["results"] for record in response.get_json()["records"]] == [
        by_file[name]["results"] for name in ("a.txt", "b.txt", "c.txt")
    ]


def test_a_route_to_an_unknown_label_fails_the_compile(stack, request):
    root = project_root(request, "badmeta")
    stack.upload(f"{root}/c.ibclassifier", CLASSIFIER.encode())
    stack.upload(f"{root}/m.ibmetaflow", b"routes: {invoce: generic.ibflow}\n")
    stack.upload(f"{root}/flows/generic.ibflow", GENERIC.encode())
    done = compile_flow(
        stack,
        root,
        binary_type="Metaflow",
        settings={
            "flows_dir": "flows",
            "metaflow_file": "m.ibmetaflow",
            "classifier_file": "c.ibclassifier",
        },
    )
    assert done["cur_status"]["status"] == "FAILED"
    assert "m.ibmetaflow" in done["msg"] and "invoce" in done["msg"]


def test_flows_binary_feeds_each_flows_records_to_the_next(stack, request):
    root = project_root(request, "chain")
    stack.upload(
        f"{root}/chain/01_split.ibflow",
        b"name: split\nsteps:\n  - {id: read, type: extract_text}\n"
        b"  - {id: lines, type: split, params: {by: line}}\n",
    )
    stack.upload(
        f"{root}/chain/02_fields.ibflow",
        b"name: fields\nsteps:\n  - {id: read, type: extract_text}\n"
        b"  - {id: refine, type: refine, params: {fields: {line: 'upper(text)'}}}\n",
    )
    stack.upload(f"{root}/data/input/a.txt", b"one\ntwo\n")
    compiled = compile_flow(stack, root, binary_type="Flows", settings={"flows_dir": "chain"})
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    done, data = run_and_wait(stack, f"{root}/build/bin/chain.ibflowbin", f"{root}/data/input")
    assert done["cur_status"]["status"] == "COMPLETE", done
    out = stack.settings.drive_root / data["output_folder"]
    combined = json.loads((out / "results.json").read_text())
    assert [(r["record_index"], fields(r)) for r in combined] == [
        (0, {"line": "ONE"}),
        (1, {"line": "TWO"}),
    ]
    assert sorted(p.name for p in (out / "steps").iterdir()) == [
        "00_01_split.read",
        "01_01_split.lines",
        "02_02_fields.refine",
    ]


@pytest.fixture
def invoices(stack, request):
    root = project_root(request, "schema")
    put_project(stack, root)
    stack.upload(f"{root}/data/input/a.txt", invoice("A-1", "100.00"))
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return root


def test_modify_output_schema_changes_async_results(stack, invoices):
    done, data = run_and_wait(
        stack,
        f"{invoices}/build/bin/three_steps.ibflowbin",
        f"{invoices}/data/input",
        runtime_config={"modify_output_schema": json.dumps(SEED_SCHEMA, ensure_ascii=False)},
    )
    assert done["cur_status"]["status"] == "COMPLETE", done
    result = results_of(stack, data["output_folder"])["a.txt"]
    assert result["results"] == [
        {"key": "amount", "value": 100.0},
        {"key": "total_with_tax", "value": 110.0},
        {"key": "my_field_name", "value": "hello world"},
    ]
    per_file = json.loads(
        (stack.settings.drive_root / data["output_folder"] / "results/a.txt.json").read_text()
    )
    assert per_file[0]["results"] == result["results"]


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ("{not json", "modify_output_schema: not valid JSON"),
        ('{"add_fields": [{"name": "x", "formula": "open(1)"}]}', "unknown function 'open'"),
    ],
)
def test_a_bad_output_schema_is_refused_at_submit(stack, invoices, schema, fragment):
    response = run_async(
        stack,
        {
            "binary_path": f"{invoices}/build/bin/three_steps.ibflowbin",
            "input_dir": f"{invoices}/data/input",
            "settings": {"runtime_config": {"modify_output_schema": schema}},
        },
    )
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["status"] == "ERROR"
    assert body["msg"].startswith("settings.runtime_config.modify_output_schema: ")
    assert fragment in body["msg"]


class Service(BaseHTTPRequestHandler):
    """Answers with JSON about the record it got; a record whose text says "flaky" gets 503
    for the server's first ``flaky_left`` posts, one that says "slow" waits (until teardown)."""

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.seen.append((body["file_name"], self.headers.get("X-Token")))
            failing = "flaky" in body["text"] and server.flaky_left > 0
            if failing:
                server.flaky_left -= 1
        if failing:
            return self._reply(503, b"busy")
        if "slow" in body["text"]:
            server.release.wait(30)
        reply = {"length": len(body["text"]), "fields": sorted(body["fields"])}
        return self._reply(200, json.dumps(reply).encode(), "application/json")

    def _reply(self, status, payload, content_type="text/plain"):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the worker gave up waiting (the timeout case)

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    server.daemon_threads = True
    server.seen, server.lock, server.flaky_left = [], threading.Lock(), 2
    server.release = threading.Event()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


HTTP_FLOW = """
name: remote
steps:
  - {{id: read, type: extract_text}}
  - id: fields
    type: refine
    params: {{fields: {{first: "regex(text, '(\\\\w+)')"}}}}
  - id: call
    type: http
    params:
      url: "http://127.0.0.1:{port}/analyze"
      timeout: 0.5
      retries: 2
      headers: {{X-Token: secret}}
      result_field: analysis
"""


def test_http_step_posts_from_the_worker_retries_5xx_and_times_out(stack, request, service):
    root = project_root(request, "remote")
    put_project(stack, root, flow=HTTP_FLOW.format(port=service.server_address[1]))
    stack.upload(f"{root}/data/input/a.txt", b"plain words")
    stack.upload(f"{root}/data/input/b.txt", b"flaky service")
    stack.upload(f"{root}/data/input/c.txt", b"slow service")
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    done, data = run_and_wait(stack, f"{root}/build/bin/remote.ibflowbin", f"{root}/data/input")
    assert done["cur_status"]["status"] == "COMPLETE", done
    by_file = results_of(stack, data["output_folder"])
    assert fields(by_file["a.txt"]) == {
        "first": "plain",
        "analysis": {"length": 11, "fields": ["first"]},
    }
    # Two 503s, then the third attempt got through.
    assert fields(by_file["b.txt"])["analysis"] == {"length": 13, "fields": ["first"]}
    assert [name for name, _ in service.seen].count("b.txt") == 3
    # Every attempt timed out: the record fails, the others go on.
    assert by_file["c.txt"]["error"].startswith("Error <ReadTimeout from http://127.0.0.1:")
    assert "after 3 attempts" in by_file["c.txt"]["error"]
    assert by_file["c.txt"]["error"].endswith("in step call")
    assert {token for _, token in service.seen} == {"secret"}
    assert done["cur_status"]["run_summary"]["numRuntimeErrors"] == 1


class Redirector(BaseHTTPRequestHandler):
    """Keeps what it gets; a record whose text says "elsewhere" gets a 307 to the server's
    ``elsewhere`` URL, any other a JSON reply."""

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body["file_name"])
        redirect = "elsewhere" in body["text"]
        payload = json.dumps({"length": len(body["text"])}).encode()
        self.send_response(307 if redirect else 200)
        if redirect:
            self.send_header("Location", self.server.elsewhere)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    started = []

    def start(host: str) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, 0), Redirector)
        server.daemon_threads = True
        server.seen, server.elsewhere = [], ""
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


GUARDED_FLOW = """
name: guarded
steps:
  - {{id: read, type: extract_text}}
  - id: call
    type: http
    params: {{url: "http://127.0.0.1:{port}/analyze", retries: 0}}
"""


def test_http_step_reaches_only_the_networks_the_operator_allows(stack, request, serve):
    # The stack allows 127.0.0.1/32; 127.0.0.2 is loopback too, and refused.
    allowed, refused = serve("127.0.0.1"), serve("127.0.0.2")
    allowed.elsewhere = f"http://127.0.0.2:{refused.server_address[1]}/stolen"
    root = project_root(request, "guarded")
    put_project(stack, root, flow=GUARDED_FLOW.format(port=allowed.server_address[1]))
    inputs = {"a.txt": b"plain words", "b.txt": b"go elsewhere"}
    for name, content in inputs.items():
        stack.upload(f"{root}/data/input/{name}", content)
    compiled = compile_flow(stack, root)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    binary = f"{root}/build/bin/guarded.ibflowbin"
    refusal = (
        f"Error <refused to call http://127.0.0.1:{allowed.server_address[1]}/analyze: "
        "'127.0.0.2' is a loopback address (127.0.0.2)"
    )

    done, data = run_and_wait(stack, binary, f"{root}/data/input")
    assert done["cur_status"]["status"] == "COMPLETE", done
    by_file = results_of(stack, data["output_folder"])
    assert fields(by_file["a.txt"]) == {"http_response": {"length": 11}}
    assert by_file["b.txt"]["error"].startswith(refusal)
    assert by_file["b.txt"]["error"].endswith("in step call")

    # A sync run's runner processes get the same networks.
    files = [
        {"file_name": name, "file_content": base64.b64encode(content).decode()}
        for name, content in inputs.items()
    ]
    response = stack.client.post(
        "/api/v1/flow/run_binary_sync",
        headers=stack.headers(),
        data=json.dumps({"binary_path": binary, "files": files}),
    )
    assert response.status_code == 200, response.get_json()
    first, second = response.get_json()["records"]
    assert first["error"] is None and first["results"] == by_file["a.txt"]["results"]
    assert second["error"].startswith(refusal)
    assert sorted(allowed.seen) == ["a.txt", "a.txt", "b.txt", "b.txt"]
    assert refused.seen == []
