"""GET /metrics on a real stack: a real worker's steps (counted in Redis), jobs by state (the
store), queue depth (the broker's lists), deliveries to a local webhook receiver, request counts
summed over two gunicorn processes, and a caller's traceparent in a job's log lines."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared.accounts.credentials import create_token
from shared.accounts.users import create_user
from shared.drive import Drive
from shared.store.db import session_scope
from shared.store.migrate import upgrade
from tests.conftest import (
    REPO,
    Stack,
    fresh_database,
    start_worker,
    stop_worker,
    wait_worker_ready,
)
from tests.integration.conftest import start_beat
from tests.integration.flows import compile_flow, invoice, put_project, run_async, wait_done
from tests.integration.test_webhooks import Receiver
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

PROJECT = "alice/metrics"
BINARY = f"{PROJECT}/build/bin/three_steps.ibflowbin"
INPUT = f"{PROJECT}/data/input"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
# Redis databases no other test uses: this module's stack's, and one whose messages no worker
# takes.
OWN_DB = 14
IDLE_BROKER_DB = 7


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, token: str) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def scrape_when_steps_counted(own, before, expected: dict[str, int]):
    """A scrape once every step of ``expected`` (steps by type) is in it, started and ended:
    each worker process sends its numbers to Redis up to a flush interval (1 s) after a step."""
    duration = "flowbin_step_duration_seconds_count"

    def counted():
        after = scrape(own.client, own.tokens["root"])
        done = all(
            moved(before, after, "flowbin_steps_started_total", step_type=step_type) >= n
            and moved(before, after, duration, step_type=step_type) >= n
            for step_type, n in expected.items()
        )
        return after if done else None

    return wait_for(counted, timeout=15, interval=0.1, message=f"steps counted: {expected}")


@pytest.fixture(scope="module")
def own(stack, redis_server_url, tmp_path_factory):
    """A stack of this module's own (store, Redis database, worker and beat), on the session's
    backend, so that nothing another test left running moves the numbers it reads."""
    tmp = tmp_path_factory.mktemp(f"metrics-{stack.backend}")
    url = fresh_database(stack.backend, tmp, schema="metrics")
    upgrade(url)
    settings = replace(
        stack.settings,
        data_dir=tmp / "var",
        database_url=url,
        redis_url=f"{redis_server_url}/{OWN_DB}",
        webhook_allowed_networks="127.0.0.0/8",
        delivery_retry_base=0.1,
        delivery_retry_cap=0.5,
        delivery_timeout=2.0,
        delivery_interval=0.25,
    )
    settings.data_dir.mkdir(parents=True)
    tokens = {}
    with session_scope(url) as session:
        for username, admin in (("alice", False), ("root", True)):
            create_user(session, username, is_admin=admin)
            tokens[username] = create_token(session, username)
            Drive(settings.drive_root).space_home(username)
    from api.app import create_app

    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    worker_log = tmp / "worker.log"
    name = f"metrics-{stack.backend}"
    worker = start_worker(settings, name, worker_log)
    beat = start_beat(settings, tmp / "celerybeat-schedule", tmp / "beat.log")
    try:
        wait_worker_ready(celery_app, name)
        yield Stack(stack.backend, settings, app.test_client(), tokens, worker, worker_log)
    finally:
        stop_worker(beat)
        stop_worker(worker)


@pytest.fixture(scope="module")
def binary(own):
    put_project(own, PROJECT)
    for name, total in (("a.txt", "100.00"), ("b.txt", "20.00")):
        own.upload(f"{INPUT}/{name}", invoice(name[0].upper(), total))
    compiled = compile_flow(own, PROJECT)
    assert compiled["cur_status"]["status"] == "COMPLETE", compiled
    return BINARY


def test_only_admins_and_the_metrics_token_read_metrics(stack):
    assert stack.client.get("/metrics").status_code == 401
    refused = stack.client.get("/metrics", headers=stack.headers("alice"))
    assert refused.status_code == 403 and "only admins" in refused.get_json()["msg"]
    assert stack.client.get("/metrics", headers=stack.headers("root")).status_code == 200

    from api.app import create_app

    app = create_app(replace(stack.settings, metrics_token="scrape-me-0123456789"))
    client = app.test_client()
    token = {"Authorization": "Bearer scrape-me-0123456789"}
    assert client.get("/metrics", headers=token).status_code == 200
    wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-012345678"})
    assert wrong.status_code == 401  # not the metrics token, and no user's token either
    # The metrics token is no user's token: it reads nothing else.
    assert client.get("/api/v1/jobs/list", headers=token).status_code == 401


def test_a_redis_that_cannot_be_read_costs_only_its_own_series(stack):
    from api.app import create_app

    app = create_app(replace(stack.settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    samples = scrape(app.test_client(), stack.tokens["root"])
    assert value(samples, "flowbin_metrics_source_up", source="redis") == 0
    assert value(samples, "flowbin_metrics_source_up", source="store") == 1
    assert ("flowbin_jobs", frozenset({("state", "complete")})) in samples
    assert not any(name.startswith("flowbin_steps_") for name, _ in samples)
    assert not any(name == "flowbin_queue_depth" for name, _ in samples)


def test_a_run_moves_steps_durations_jobs_and_requests(own, binary):
    root = own.tokens["root"]
    before = scrape(own.client, root)
    response = run_async(own, {"binary_path": binary, "input_dir": INPUT})
    assert response.status_code == 200, response.get_json()
    job_id = response.get_json()["data"]["job_id"]
    assert wait_done(own, job_id)["cur_status"]["status"] == "COMPLETE"
    after = scrape_when_steps_counted(own, before, {"extract_text": 2, "refine": 2, "udf": 2})

    for step_type in ("extract_text", "refine", "udf"):  # two files, one step of each type
        assert moved(before, after, "flowbin_steps_started_total", step_type=step_type) == 2
        assert moved(before, after, "flowbin_steps_finished_total", step_type=step_type) == 2
        assert moved(before, after, "flowbin_steps_failed_total", step_type=step_type) == 0
        count = "flowbin_step_duration_seconds_count"
        assert moved(before, after, count, step_type=step_type) == 2
        inf = "flowbin_step_duration_seconds_bucket"
        assert moved(before, after, inf, step_type=step_type, le="+Inf") == 2
        assert moved(before, after, "flowbin_step_duration_seconds_sum", step_type=step_type) > 0
    assert moved(before, after, "flowbin_jobs", state="complete") == 1
    assert value(after, "flowbin_jobs", state="cancelled") >= 0  # every state is shown
    run = {"endpoint": "/api/v1/flow/run_binary_async", "method": "POST", "status": "200"}
    assert moved(before, after, "flowbin_http_requests_total", **run) == 1
    assert moved(before, after, "flowbin_http_request_duration_seconds_count", **run) == 1

    for _ in range(3):
        missing = own.client.get("/api/v1/jobs/status?job_id=nope", headers=own.headers())
        assert missing.status_code == 404
    again = scrape(own.client, root)
    status = {"endpoint": "/api/v1/jobs/status", "method": "GET", "status": "404"}
    assert moved(after, again, "flowbin_http_requests_total", **status) == 3
    scrapes = {"endpoint": "/metrics", "method": "GET", "status": "200"}
    assert moved(after, again, "flowbin_http_requests_total", **scrapes) == 1


def test_a_step_that_fails_as_a_whole_is_counted_as_failed(own, binary):
    # A folder where the first step writes a.txt's records: the write fails, outside any
    # record's handling, and the file fails at that step; b.txt's step finishes.
    out = f"{PROJECT}/out-blocked-{own.backend}"
    own.upload(f"{out}/steps/00_read/a.txt.json/blocker", b"in the way")
    root = own.tokens["root"]
    before = scrape(own.client, root)
    body = {"binary_path": binary, "input_dir": INPUT, "output_dir": out}
    response = run_async(own, body)
    assert response.status_code == 200, response.get_json()
    wait_done(own, response.get_json()["data"]["job_id"])
    after = scrape_when_steps_counted(own, before, {"extract_text": 2, "udf": 1})
    read = {"step_type": "extract_text"}
    assert moved(before, after, "flowbin_steps_started_total", **read) == 2
    assert moved(before, after, "flowbin_steps_failed_total", **read) == 1
    assert moved(before, after, "flowbin_steps_finished_total", **read) == 1
    assert moved(before, after, "flowbin_step_duration_seconds_count", **read) == 2
    # Only b.txt went on.
    assert moved(before, after, "flowbin_steps_finished_total", step_type="udf") == 1


def test_queue_depth_counts_the_messages_no_worker_takes(own, binary, redis_server_url):
    from api.app import create_app

    # An API whose broker has no worker: what it publishes waits in Redis, by priority.
    settings = replace(own.settings, redis_url=f"{redis_server_url}/{IDLE_BROKER_DB}")
    app = create_app(settings)
    with app.extensions["flowbin.celery"].connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    client = app.test_client()
    root = own.tokens["root"]
    before = scrape(client, root)
    jobs = []
    for priority in (2, 7):
        body = {"binary_path": binary, "input_dir": INPUT, "settings": {"priority": priority}}
        response = client.post(
            "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=own.headers()
        )
        assert response.status_code == 200, response.get_json()
        jobs.append(response.get_json()["data"]["job_id"])
    after = scrape(client, root)
    depth = {p: value(after, "flowbin_queue_depth", priority=str(p)) for p in range(10)}
    assert depth == {p: (2.0 if p in (2, 7) else 0.0) for p in range(10)}  # two files each
    assert moved(before, after, "flowbin_jobs", state="queued") == 2
    for job_id in jobs:
        cancelled = client.get(f"/api/v1/jobs/cancel?job_id={job_id}", headers=own.headers())
        assert cancelled.status_code == 200, cancelled.get_json()
    assert moved(before, scrape(client, root), "flowbin_jobs", state="queued") == 0


def test_deliveries_are_counted_by_outcome(own, binary):
    root = own.tokens["root"]
    receiver = Receiver(answers=[500], then=204)
    try:
        before = scrape(own.client, root)
        body = {
            "binary_path": binary,
            "input_dir": INPUT,
            "settings": {"webhook_config": {"url": receiver.url}},
        }
        response = run_async(own, body)
        assert response.status_code == 200, response.get_json()
        job_id = response.get_json()["data"]["job_id"]

        def delivered():
            found = own.client.get(f"/api/v1/deliveries?job_id={job_id}", headers=own.headers())
            deliveries = found.get_json()["deliveries"]
            return deliveries and all(d["status"] == "delivered" for d in deliveries)

        wait_for(delivered, timeout=60, interval=0.1, message="the webhook to be delivered")

        # The worker counts an attempt just after it recorded the attempt in the store.
        def counted():
            after = scrape(own.client, root)
            done = {"channel": "webhook", "outcome": "delivered"}
            return after if moved(before, after, "flowbin_deliveries_total", **done) else None

        after = wait_for(counted, timeout=10, message="the delivery to be counted")
    finally:
        receiver.stop()
    webhook = {"channel": "webhook"}
    assert moved(before, after, "flowbin_deliveries_total", **webhook, outcome="retrying") == 1
    assert moved(before, after, "flowbin_deliveries_total", **webhook, outcome="delivered") == 1
    assert moved(before, after, "flowbin_deliveries_total", **webhook, outcome="failed") == 0


def trace_of(header: str) -> str:
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", header or "")
    assert match, f"not a traceparent: {header!r}"
    return match.group(1)


def log_traces(own, job_id: str) -> tuple[set[str], set[str]]:
    logs = own.client.get(f"/api/v1/jobs/get_logs?job_id={job_id}", headers=own.headers())
    lines = logs.get_json()["logs"]
    assert lines
    return {line["trace_id"] for line in lines}, {line["task-id"] for line in lines}


def test_a_traceparent_sets_the_trace_id_of_every_log_line_of_the_job(own, binary):
    headers = {**own.headers(), "traceparent": TRACEPARENT}
    body = {"binary_path": binary, "input_dir": INPUT}
    response = own.client.post(
        "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=headers
    )
    assert response.status_code == 200, response.get_json()
    assert trace_of(response.headers["traceparent"]) == TRACE
    job_id = response.get_json()["data"]["job_id"]
    wait_done(own, job_id)
    traces, tasks = log_traces(own, job_id)
    assert traces == {TRACE}
    assert len(tasks) >= 6  # the worker's step tasks wrote them, 3 steps of 2 files

    # An invalid one (an all-zero trace id) is ignored: the job gets a new trace.
    headers["traceparent"] = f"00-{'0' * 32}-00f067aa0ba902b7-01"
    response = own.client.post(
        "/api/v1/flow/run_binary_async", data=json.dumps(body), headers=headers
    )
    fresh = trace_of(response.headers["traceparent"])
    assert fresh != "0" * 32
    wait_done(own, response.get_json()["data"]["job_id"])
    assert log_traces(own, response.get_json()["data"]["job_id"])[0] == {fresh}

    # A refused submit (the job id is taken) answers none either.
    again = own.client.post(
        "/api/v1/flow/run_binary_async",
        data=json.dumps({**body, "job_id": job_id}),
        headers=headers,
    )
    assert again.status_code == 409 and "traceparent" not in again.headers
    # A call that creates no job answers no traceparent.
    listed = own.client.get("/api/v1/jobs/list", headers=headers)
    assert listed.status_code == 200 and "traceparent" not in listed.headers


def test_compile_sync_and_v2_jobs_take_the_traceparent_too(own, binary):
    headers = {**own.headers(), "traceparent": TRACEPARENT}
    compiled = own.client.post(
        "/api/v1/flow_binary/compile",
        data=json.dumps(
            {
                "binary_type": "Single Flow",
                "flow_project_root": PROJECT,
                "settings": {"flow_file": "flows/main.ibflow"},
            }
        ),
        headers=headers,
    )
    assert compiled.status_code == 200 and trace_of(compiled.headers["traceparent"]) == TRACE
    wait_done(own, compiled.get_json()["job_id"])
    assert log_traces(own, compiled.get_json()["job_id"])[0] == {TRACE}

    content = base64.b64encode(invoice("S-1", "5.00")).decode()
    synced = own.client.post(
        "/api/v1/flow/run_binary_sync",
        data=json.dumps(
            {"binary_path": binary, "files": [{"file_name": "s.txt", "file_content": content}]}
        ),
        headers=headers,
    )
    assert synced.status_code == 200 and trace_of(synced.headers["traceparent"]) == TRACE
    assert log_traces(own, synced.get_json()["job_id"])[0] == {TRACE}

    created = own.client.post(
        "/api/v2/jobs",
        data=json.dumps({"type": "flow-run", "binary_path": binary, "input_dir": INPUT}),
        headers=headers,
    )
    assert created.status_code == 201 and trace_of(created.headers["traceparent"]) == TRACE
    wait_done(own, created.get_json()["id"])
    assert log_traces(own, created.get_json()["id"])[0] == {TRACE}


def test_request_counts_add_up_over_two_gunicorn_processes(own, binary, tmp_path):
    folder = tmp_path / "prometheus"
    port = free_port()
    env = {
        **os.environ,
        **own.settings.to_env(),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--config",
            "python:api.gunicorn_conf",
            "api.wsgi:app",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    root = {"Authorization": f"Bearer {own.tokens['root']}"}
    try:

        def healthy():
            try:
                return requests.get(f"{url}/health", timeout=30).status_code == 200
            # Refused while it binds. A long timeout: a request given up on while a worker still
            # imports the app would be answered later, and counted after the first scrape.
            except requests.ConnectionError:
                return False

        wait_for(healthy, timeout=60, message="gunicorn to answer")
        health = {"endpoint": "/health", "method": "GET", "status": "200"}
        scraped = {"endpoint": "/metrics", "method": "GET", "status": "200"}

        def metrics() -> dict:
            answer = requests.get(f"{url}/metrics", headers=root, timeout=10)
            assert answer.status_code == 200
            return parse(answer.text)

        # The wait above may have sent requests that answered after its timeout: count from here.
        start = metrics()

        def counting_pids() -> set[str]:
            return {path.stem.rpartition("_")[2] for path in folder.glob("counter_*.db")}

        # Until both processes have answered some: each request on a new connection.
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while len(counting_pids()) < 2 or sent == 0:
                assert sent < 2000, "one gunicorn process answered every request"
                codes = list(
                    pool.map(
                        lambda _: requests.get(f"{url}/health", timeout=10).status_code, range(16)
                    )
                )
                assert codes == [200] * 16
                sent += 16
        for scrapes in range(1, 5):  # whichever process answers, it counts both processes'
            samples = metrics()
            assert moved(start, samples, "flowbin_http_requests_total", **health) == sent
            assert moved(start, samples, "flowbin_http_requests_total", **scraped) == scrapes

        # A sync run starts the runner pool of the process that answers it: FLOWBIN_SYNC_RUNNERS
        # runners, idle again once the run is over; the other process has none yet.
        content = base64.b64encode(invoice("G-1", "5.00")).decode()
        body = {"binary_path": binary, "files": [{"file_name": "g.txt", "file_content": content}]}
        synced = requests.post(
            f"{url}/api/v1/flow/run_binary_sync", data=json.dumps(body), headers=root, timeout=60
        )
        assert synced.status_code == 200, synced.text
        samples = metrics()
        size = own.settings.sync_runners
        assert value(samples, "flowbin_sync_runner_pool_size") == size
        assert value(samples, "flowbin_sync_runners", state="idle") == size
        assert value(samples, "flowbin_sync_runners", state="busy") == 0
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        log.close()
    assert folder.is_dir()
