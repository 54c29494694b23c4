"""Completion webhooks end to end: real runs, a real worker and a real beat, and HTTP receivers
served from this process that fail, hang, refuse or accept as each test needs."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.delivery import webhooks
from shared.delivery.policy import lease_seconds
from tests.integration.conftest import BAD_INPUT, BINARY, GOOD_INPUT
from tests.integration.flows import run_async, wait_done
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

HANG = "hang"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint in a thread. ``answers[n]`` is what request n gets (an HTTP status or
    HANG: no answer until the test ends); requests past the list get ``then``."""

    def __init__(self, answers=(), then=200, port: int = 0):
        self.answers, self.then = list(answers), then
        self.received: list[Received] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                number = len(receiver.received)
                receiver.received.append(Received(dict(self.headers.items()), body))
                answers = receiver.answers
                answer = answers[number] if number < len(answers) else receiver.then
                if answer == HANG:
                    receiver.release.wait(30)
                    answer = 200
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", "0")
                    if 300 <= answer < 400:
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/flowbin"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    started = []

    def start(*args, **kwargs) -> Receiver:
        receiver = Receiver(*args, **kwargs)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def finished(status: str):
    return lambda found: all(d["status"] == status for d in found)


def test_a_receiver_failing_three_times_gets_it_on_the_fourth_attempt(notify, receivers):
    secret = "test-secret-for-alice-0123456789"
    response = notify.client.put(
        "/api/v1/webhooks/secret", data=json.dumps({"secret": secret}), headers=notify.headers()
    )
    assert response.status_code == 200 and response.get_json()["configured"] is True
    # A 3xx is not an acknowledgement either (seed 001), and it is not followed.
    receiver = receivers(answers=[500, 503, 302], then=204)
    job_id = notify.run(
        f"hook4-{notify.backend}",
        webhook_config={"url": receiver.url, "headers": {"X-Team": "billing"}},
    )

    [delivery] = notify.wait_deliveries(
        job_id, finished("delivered"), message="the 4th attempt to be acknowledged"
    )
    assert delivery["channel"] == "webhook" and delivery["target"] == receiver.url
    assert delivery["attempts"] == 4 and delivery["last_status_code"] == 204
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"]
    log = delivery["attempt_log"]
    assert [(a["number"], a["outcome"], a["status_code"]) for a in log] == [
        (1, "failed", 500),
        (2, "failed", 503),
        (3, "failed", 302),
        (4, "delivered", 204),
    ]
    assert all(a["duration_ms"] is not None and a["started_at"] for a in log)
    assert "HTTP 503" in log[1]["error"]

    assert len(receiver.received) == 4
    first = receiver.received[0]
    assert first.json == {
        "status": "OK",
        "job_id": job_id,
        "binary_path": BINARY,
        "input_dir": GOOD_INPUT,
        "output": first.json["output"],
    }
    assert first.json["output"].startswith("alice/notify/data/out/")
    for number, request in enumerate(receiver.received, start=1):
        headers = request.headers
        assert request.body == first.body
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Team"] == "billing"
        assert headers["X-Flowbin-Delivery"] == str(delivery["id"])
        assert headers["X-Flowbin-Attempt"] == str(number)
        assert webhooks.verify(
            secret,
            headers["X-Flowbin-Timestamp"],
            request.body,
            headers["X-Flowbin-Signature"],
            now=time.time(),
        )
    status = notify.client.get("/api/v1/webhooks/secret", headers=notify.headers()).get_json()
    assert status == {"status": "OK", "configured": True}  # never shown again
    assert (
        notify.client.delete("/api/v1/webhooks/secret", headers=notify.headers()).get_json()[
            "configured"
        ]
        is False
    )


def test_a_receiver_that_always_fails_gets_eight_attempts_then_the_delivery_fails(
    notify, receivers
):
    receiver = receivers(then=500)
    job_id = notify.run(f"hook8-{notify.backend}", webhook_config={"url": receiver.url})
    [delivery] = notify.wait_deliveries(
        job_id, finished("failed"), timeout=40, message="8 failed attempts"
    )
    assert delivery["attempts"] == delivery["max_attempts"] == 8
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["failed"] * 8
    assert [a["number"] for a in delivery["attempt_log"]] == list(range(1, 9))
    assert delivery["last_status_code"] == 500 and delivery["next_attempt_at"] is None
    assert len(receiver.received) == 8
    assert "X-Flowbin-Signature" not in receiver.received[0].headers  # no secret, no signature


def test_a_hanging_receiver_times_out_and_that_counts_as_a_failed_attempt(notify, receivers):
    receiver = receivers(answers=[HANG], then=200)
    job_id = notify.run(f"hang-{notify.backend}", webhook_config={"url": receiver.url})
    [delivery] = notify.wait_deliveries(
        job_id, finished("delivered"), message="the attempt after the timeout"
    )
    first, second = delivery["attempt_log"]
    timeout_ms = notify.settings.delivery_timeout * 1000
    assert first["outcome"] == "failed" and first["status_code"] is None
    assert "timed out" in first["error"] and first["duration_ms"] >= timeout_ms * 0.9
    assert second["outcome"] == "delivered" and second["status_code"] == 200


def test_a_worker_killed_mid_attempt_loses_nothing(notify, receivers):
    receiver = receivers(answers=[HANG], then=200)
    job_id = notify.run(f"killed-{notify.backend}", webhook_config={"url": receiver.url})
    wait_for(lambda: receiver.received, interval=0.02, message="the first attempt")
    notify.kill_worker_and_start_another()  # well inside the attempt's 1 s timeout
    [delivery] = notify.wait_deliveries(
        job_id, finished("delivered"), message="the attempt after the lease"
    )
    lost, second = delivery["attempt_log"]
    assert lost["outcome"] == "lost" and "worker stopped" in lost["error"]
    assert second["outcome"] == "delivered" and second["number"] == 2
    # Nobody touched it while the dead worker's claim held.
    lease = lease_seconds(notify.settings)
    assert second["started_at"] - lost["started_at"] >= lease - 0.1
    assert len(receiver.received) == 2


def test_a_refused_connection_is_retried_until_the_receiver_is_up(notify, receivers):
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}/hooks/flowbin"
    job_id = notify.run(
        f"refused-{notify.backend}", input_dir=BAD_INPUT, webhook_config={"url": url}
    )
    notify.wait_deliveries(
        job_id, lambda found: found[0]["attempts"] >= 2, message="two refused attempts"
    )
    receiver = receivers(then=200, port=port)
    [delivery] = notify.wait_deliveries(job_id, finished("delivered"))
    refused = delivery["attempt_log"][:-1]
    assert all(a["outcome"] == "failed" and "refused" in a["error"].lower() for a in refused)
    # The job failed (its only record failed its UDF): the seed's ERROR body, with the reason.
    body = receiver.received[-1].json
    assert body["status"] == "ERROR" and body["job_id"] == job_id
    assert "no record came through" in body["msg"]


def test_redeliver_now_and_only_the_owner_or_an_admin_sees_deliveries(notify, receivers):
    receiver = receivers(then=200)
    job_id = notify.run(f"redeliver-{notify.backend}", webhook_config={"url": receiver.url})
    [first] = notify.wait_deliveries(job_id, finished("delivered"))

    other = notify.client.get(f"/api/v1/deliveries?job_id={job_id}", headers=notify.headers("bob"))
    assert other.status_code == 404 and other.get_json()["status"] == "ERROR"
    again = notify.client.post(
        f"/api/v1/deliveries/{first['id']}/redeliver", headers=notify.headers("bob")
    )
    assert again.status_code == 404 and "no delivery" in again.get_json()["msg"]
    missing = notify.client.get("/api/v1/deliveries", headers=notify.headers())
    assert missing.status_code == 400 and "job_id" in missing.get_json()["msg"]
    assert notify.deliveries(job_id, user="root")[0]["id"] == first["id"]  # admins see all

    response = notify.client.post(
        f"/api/v1/deliveries/{first['id']}/redeliver", headers=notify.headers()
    )
    assert response.status_code == 200, response.get_json()
    copy = response.get_json()["delivery"]
    assert copy["redelivery_of"] == first["id"] and copy["status"] == "pending"
    found = notify.wait_deliveries(
        job_id,
        lambda found: len(found) == 2 and finished("delivered")(found),
        message="the redelivery",
    )
    assert [d["attempts"] for d in found] == [1, 1]
    assert len(receiver.received) == 2 and receiver.received[1].body == receiver.received[0].body
    assert receiver.received[1].headers["X-Flowbin-Delivery"] == str(copy["id"])


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/hook", "only http and https"),
        ("http://10.20.30.40/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8000/hook", "loopback"),
        ("not a url", "only http and https"),
    ],
)
def test_unsafe_webhook_urls_are_refused_when_the_run_is_submitted(notify, url, fragment):
    body = {
        "binary_path": BINARY,
        "input_dir": GOOD_INPUT,
        "settings": {"webhook_config": {"url": url}},
    }
    response = run_async(notify, body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["status"] == "ERROR"
    msg = response.get_json()["msg"]
    assert msg.startswith("settings.webhook_config.url: ") and fragment in msg


def test_loopback_is_refused_unless_the_operator_allows_it(stack):
    # The plain stack allows 127.0.0.1/32 only (FLOWBIN_ALLOWED_NETWORKS) and does not set
    # FLOWBIN_WEBHOOK_ALLOWED_NETWORKS.
    body = {
        "binary_path": "alice/any.ibflowbin",
        "input_dir": "alice/in",
        "settings": {"webhook_config": {"url": "http://127.0.0.2:8000/hook"}},
    }
    response = run_async(stack, body)
    assert response.status_code == 400
    assert "loopback" in response.get_json()["msg"]
    assert "FLOWBIN_WEBHOOK_ALLOWED_NETWORKS" in response.get_json()["msg"]
    bad_headers = {
        "binary_path": "alice/any.ibflowbin",
        "input_dir": "alice/in",
        "settings": {
            "webhook_config": {"url": "https://93.184.215.14/h", "headers": {"X-A": "1\r\nX-B: 2"}}
        },
    }
    response = run_async(stack, bad_headers)
    assert response.status_code == 400 and "headers.X-A" in response.get_json()["msg"]


def test_secret_must_be_long_enough(notify):
    response = notify.client.put(
        "/api/v1/webhooks/secret",
        data=json.dumps({"secret": "short"}),
        headers=notify.headers("bob"),
    )
    assert response.status_code == 400 and "secret" in response.get_json()["msg"]
    generated = notify.client.put("/api/v1/webhooks/secret", headers=notify.headers("bob"))
    assert generated.get_json()["secret"].startswith("whsec_")
    notify.client.delete("/api/v1/webhooks/secret", headers=notify.headers("bob"))


def test_a_job_without_receivers_has_no_deliveries(notify):
    job_id = notify.run(f"quiet-{notify.backend}")
    assert wait_done(notify, job_id)["cur_status"]["status"] == "COMPLETE"
    assert notify.deliveries(job_id) == []
