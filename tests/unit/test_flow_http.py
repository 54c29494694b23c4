import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from shared.flow import runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project
from shared.flow.step_types import http as http_step
from shared.url_guard import UrlGuard, parse_networks

REAL_RETRY_DELAY = http_step.retry_delay
# The services below listen on loopback, which the URL guard refuses unless it is allowed.
LOOPBACK_ALLOWED = UrlGuard(parse_networks("127.0.0.1/32"))


class Service(BaseHTTPRequestHandler):
    """/ok echoes what it got; /flaky fails with 503 until its budget is spent; /missing is a
    404; /text answers with something that is not JSON; /down always fails with 500."""

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, dict(self.headers), body))
        if self.path == "/flaky" and self.server.flaky_failures > 0:
            self.server.flaky_failures -= 1
            return self._reply(503, b"busy")
        if self.path == "/down":
            return self._reply(500, b"down")
        if self.path == "/missing":
            return self._reply(404, b"no such thing")
        if self.path == "/text":
            return self._reply(200, b"plain text")
        reply = {"entities": [body["text"].upper()], "fields_seen": sorted(body["fields"])}
        return self._reply(200, json.dumps(reply).encode(), "application/json")

    def _reply(self, status, payload, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    server.seen = []
    server.flaky_failures = 0
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(http_step, "retry_delay", lambda attempt: 0)


def binary_posting_to(tmp_path, url, **params):
    flow = {
        "name": "h",
        "steps": [{"id": "call", "type": "http", "params": {"url": url, **params}}],
    }
    (tmp_path / "h.ibflow").write_text(yaml.safe_dump(flow))
    artifact = compile_project(tmp_path, "Single Flow", {"flow_file": "h.ibflow"}, "t")
    return load_binary(artifact.data)


def post(binary, text="acme"):
    record = {
        **runtime.new_record("a.txt", 0, "/secret/a.txt"),
        "text": text,
        "fields": {"vendor": "Acme"},
    }
    context = runtime.StepContext("job", url_guard=LOOPBACK_ALLOWED)
    [out] = runtime.run_step(binary, 0, [record], context).records
    return out


def url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_http_posts_the_record_and_stores_the_json_reply(tmp_path, service):
    binary = binary_posting_to(
        tmp_path, url(service, "/ok"), headers={"X-Key": "k1"}, result_field="nlp"
    )
    out = post(binary)
    assert out["error"] is None
    assert out["fields"] == {
        "vendor": "Acme",
        "nlp": {"entities": ["ACME"], "fields_seen": ["vendor"]},
    }
    [(path, headers, body)] = service.seen
    assert path == "/ok" and headers["X-Key"] == "k1"
    assert body["text"] == "acme" and body["file_name"] == "a.txt"
    assert "source_path" not in body


def test_http_retries_server_errors(tmp_path, service):
    service.flaky_failures = 2
    out = post(binary_posting_to(tmp_path, url(service, "/flaky"), retries=2))
    assert out["error"] is None
    assert len(service.seen) == 3
    assert out["fields"]["http_response"]["entities"] == ["ACME"]


def test_http_gives_up_after_retries_with_a_record_error(tmp_path, service):
    out = post(binary_posting_to(tmp_path, url(service, "/down"), retries=1))
    assert out["error"] == (
        f"Error <HTTP 500 from {url(service, '/down')} after 2 attempts> in step call"
    )
    assert len(service.seen) == 2


def test_http_client_errors_and_non_json_replies_are_not_retried(tmp_path, service):
    missing = post(binary_posting_to(tmp_path, url(service, "/missing"), retries=3))
    assert "HTTP 404" in missing["error"] and "no such thing" in missing["error"]
    text = post(binary_posting_to(tmp_path, url(service, "/text"), retries=3))
    assert "is not JSON" in text["error"]
    assert len(service.seen) == 2


def test_http_connection_failures_are_retried_then_fail_the_record(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = post(binary_posting_to(tmp_path, f"http://127.0.0.1:{port}/x", retries=1, timeout=2))
    assert "ConnectionError" in out["error"] and "after 2 attempts" in out["error"]


def test_retry_delay_grows_and_is_capped():
    assert [REAL_RETRY_DELAY(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 5, 5]
