"""The URL guard (shared/url_guard.py) against real local servers, through both of its users
(webhook attempts and the flow's http step): loopback names refused unless allowed, redirect hops
judged before anything is sent to them, a name that answers elsewhere on its second lookup (DNS
rebinding) connected where it was checked, and https keeping the name for SNI and the
certificate check. Linux routes all of 127.0.0.0/8 to loopback, so 127.0.0.2 is a second host."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from shared.config import Settings
from shared.delivery import webhooks
from shared.flow import runtime
from shared.flow.binary import load_binary
from shared.flow.compiler import compile_project
from shared.url_guard import UrlGuard, parse_networks
from tests.support import claim_for


class Handler(BaseHTTPRequestHandler):
    """Keeps every request; answers a path in the server's ``redirects`` with a 307 to its
    target, anything else with JSON naming the Host header it got."""

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.path, dict(self.headers), body))
        target = self.server.redirects.get(self.path)
        payload = json.dumps({"host": self.headers["Host"]}).encode()
        self.send_response(307 if target else 200)
        if target:
            self.send_header("Location", target)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(host, port=0, tls=None)`` starts a server in a thread; all stop at teardown."""
    started = []

    def start(host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        server.seen, server.redirects = [], {}
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
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


def port_of(server) -> int:
    return server.server_address[1]


def twin_servers(serve):
    """Servers on 127.0.0.2 and 127.0.0.1 at one port, so that one URL reaches either one
    depending only on what its name resolves to."""
    for _ in range(20):
        first = serve("127.0.0.2")
        try:
            return first, serve("127.0.0.1", port_of(first))
        except OSError:  # that port is taken on 127.0.0.1: try another
            continue
    pytest.fail("no port free on both 127.0.0.2 and 127.0.0.1")


def rebinding(first: str, then: str):
    """A resolver answering ``first`` once, then ``then``: a name an attacker moves between a
    check and a connection. ``calls`` counts the lookups."""
    calls = []

    def resolver(host, port):
        calls.append(host)
        return [first if len(calls) == 1 else then]

    resolver.calls = calls
    return resolver


def http_step(tmp_path, url: str):
    flow = {"name": "h", "steps": [{"id": "call", "type": "http", "params": {"url": url}}]}
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "h.ibflow").write_text(yaml.safe_dump(flow))
    artifact = compile_project(tmp_path, "Single Flow", {"flow_file": "h.ibflow"}, "t")
    return load_binary(artifact.data)


def post(binary, guard: UrlGuard | None = None) -> dict:
    record = {**runtime.new_record("a.txt", 0, None), "text": "acme"}
    context = runtime.StepContext("job", url_guard=guard or UrlGuard())
    [out] = runtime.run_step(binary, 0, [record], context).records
    return out


LOOPBACK = "127.0.0.0/8,::1/128"


def test_a_webhook_to_a_loopback_name_is_refused_unless_its_network_is_allowed(serve):
    server = serve("127.0.0.1")
    claim = claim_for(f"http://localhost:{port_of(server)}/hook")
    refused = webhooks.attempt(Settings(delivery_timeout=5), claim)
    assert not refused.delivered and refused.status_code is None
    assert refused.error.startswith("not sent: webhook URL: 'localhost' is a loopback address")
    assert "FLOWBIN_ALLOWED_NETWORKS" in refused.error
    assert server.seen == []
    # Allowed by the general setting, or by the older webhook-only one.
    for settings in (
        Settings(allowed_networks=LOOPBACK),
        Settings(webhook_allowed_networks=LOOPBACK),
    ):
        assert webhooks.attempt(settings, claim).delivered
    assert len(server.seen) == 2


def test_an_http_step_to_a_loopback_name_is_refused_unless_its_network_is_allowed(tmp_path, serve):
    server = serve("127.0.0.1")
    binary = http_step(tmp_path, f"http://localhost:{port_of(server)}/x")
    refused = post(binary)
    assert refused["error"].startswith(f"Error <refused to call http://localhost:{port_of(server)}")
    assert "'localhost' is a loopback address" in refused["error"]
    assert server.seen == []  # refused, not retried: the address will not become public
    allowed = post(binary, UrlGuard(parse_networks(LOOPBACK)))
    assert allowed["error"] is None
    assert allowed["fields"]["http_response"] == {"host": f"localhost:{port_of(server)}"}


def test_a_redirect_to_a_refused_address_sends_it_nothing(tmp_path, serve):
    allowed, refused = serve("127.0.0.2"), serve("127.0.0.1")
    guard = UrlGuard(parse_networks("127.0.0.2/32"))
    origin = f"http://127.0.0.2:{port_of(allowed)}"
    allowed.redirects = {
        "/away": f"http://127.0.0.1:{port_of(refused)}/stolen",
        "/ftp": "ftp://127.0.0.2/x",
        "/hop": "/x",
        "/loop": "/loop",
    }
    out = post(http_step(tmp_path / "away", f"{origin}/away"), guard)
    assert "refused to call" in out["error"] and "'127.0.0.1' is a loopback address" in out["error"]
    assert refused.seen == []
    assert (
        "only http and https" in post(http_step(tmp_path / "ftp", f"{origin}/ftp"), guard)["error"]
    )
    # A redirect to an address the guard allows is followed (307: the same POST again) ...
    followed = post(http_step(tmp_path / "hop", f"{origin}/hop"), guard)
    assert followed["error"] is None
    assert [path for path, _, _ in allowed.seen[-2:]] == ["/hop", "/x"]
    assert json.loads(allowed.seen[-1][2])["text"] == "acme"
    # ... up to a cap.
    before = len(allowed.seen)
    looping = post(http_step(tmp_path / "loop", f"{origin}/loop"), guard)
    assert looping["error"] == f"Error <{origin}/loop redirected more than 5 times> in step call"
    assert len(allowed.seen) - before == 6


def test_a_webhook_redirect_is_a_failed_attempt_and_is_not_followed(serve):
    first, second = serve("127.0.0.1"), serve("127.0.0.1")
    first.redirects = {"/hook": f"http://127.0.0.1:{port_of(second)}/hook"}
    settings = Settings(allowed_networks="127.0.0.1/32", delivery_timeout=5)
    result = webhooks.attempt(settings, claim_for(f"http://127.0.0.1:{port_of(first)}/hook"))
    assert not result.delivered and result.status_code == 307
    assert "only a 2xx acknowledges" in result.error
    assert len(first.seen) == 1 and second.seen == []


def test_a_webhook_connects_to_the_address_it_checked_not_to_a_second_lookup(serve):
    checked, elsewhere = twin_servers(serve)
    resolver = rebinding("127.0.0.2", then="127.0.0.1")
    settings = Settings(allowed_networks="127.0.0.2/32", delivery_timeout=5)
    claim = claim_for(f"http://rebind.test:{port_of(checked)}/hook")
    assert webhooks.attempt(settings, claim, resolver=resolver).delivered
    assert resolver.calls == ["rebind.test"]  # one lookup, checked and connected to
    [(_, headers, _)] = checked.seen
    assert headers["Host"] == f"rebind.test:{port_of(checked)}"
    # The next attempt looks again, gets the loopback answer, and is refused before sending.
    again = webhooks.attempt(settings, claim, resolver=resolver)
    assert again.error.startswith("not sent: webhook URL: 'rebind.test' is a loopback address")
    assert elsewhere.seen == [] and len(checked.seen) == 1


def test_an_http_step_connects_to_the_address_it_checked_not_to_a_second_lookup(tmp_path, serve):
    checked, elsewhere = twin_servers(serve)
    resolver = rebinding("127.0.0.2", then="127.0.0.1")
    guard = UrlGuard(parse_networks("127.0.0.2/32"), resolver)
    out = post(http_step(tmp_path, f"http://rebind.test:{port_of(checked)}/x"), guard)
    assert out["error"] is None
    assert out["fields"]["http_response"] == {"host": f"rebind.test:{port_of(checked)}"}
    assert resolver.calls == ["rebind.test"]
    assert len(checked.seen) == 1 and elsewhere.seen == []


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for the name flowbin.test only (no address in it)."""
    if shutil.which("openssl") is None:
        pytest.skip("the https test makes its certificate with the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=flowbin.test", "-addext", "subjectAltName=DNS:flowbin.test"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_keeps_the_host_name_for_sni_and_the_certificate_check(serve, certificate):
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    server = serve("127.0.0.1", tls=tls)
    hosts = {"flowbin.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    guard = UrlGuard(parse_networks("127.0.0.1/32"), lambda host, port: hosts[host])
    with guard.session() as http:
        response = http.post(f"https://flowbin.test:{port_of(server)}/x", json={}, verify=cert)
        assert response.json() == {"host": f"flowbin.test:{port_of(server)}"}
        assert names == ["flowbin.test"]
        # Same address, another name: the certificate is checked against the name, so it fails.
        with pytest.raises(requests.exceptions.SSLError, match="(?i)mismatch"):
            http.post(f"https://other.test:{port_of(server)}/x", json={}, verify=cert)
    assert len(server.seen) == 1
