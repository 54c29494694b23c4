"""The README's walk-through against a stack started the README's way: `flowbin up`.

Nothing is shared with the other tiers: `flowbin up` starts its own embedded Redis, migrates its
own SQLite store in a temporary data folder and runs gunicorn, a worker, beat and Flower. The
client side is plain `requests`, written like the seeds' examples.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.ops.embedded_redis import port_is_free
from tests.support import descendants, free_port, running, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "invoices"
TOKEN = "fb_e2e_readme_stack_token"
START_TIMEOUT = 45
STOP_TIMEOUT = 30
LOG_KEYS = {"job-id", "task-id", "level", "ts", "trace_id", "span_id", "log"}
# Processes are followed through /proc; elsewhere only the ports tell that the stack stopped.
HAS_PROC = Path("/proc/self/stat").exists()


@dataclass
class Stack:
    process: subprocess.Popen
    api_port: int
    flower_port: int
    redis_port: int

    @property
    def url_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def stack_environment(data_dir: Path, api_port: int, flower_port: int) -> dict[str, str]:
    """The parent's environment without anything that configures Flowbin, Celery or Flower
    (a FLOWBIN_DATABASE_URL, FLOWBIN_REDIS_URL or CELERY_BROKER_URL would point the stack
    elsewhere), plus exactly the settings of a fresh machine."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLOWBIN_", "CELERY_", "FLOWER_"))
    }
    env.update(
        FLOWBIN_DATA_DIR=str(data_dir),
        FLOWBIN_API_PORT=str(api_port),
        FLOWBIN_FLOWER_PORT=str(flower_port),
        FLOWBIN_ADMIN_TOKEN=TOKEN,
    )
    return env


def banner_redis_port(log: Path) -> int | None:
    found = re.search(r"^Redis: redis://127\.0\.0\.1:(\d+)/", log.read_text(), re.MULTILINE)
    return int(found.group(1)) if found else None


def health_ok(url_base: str) -> bool:
    try:
        return requests.get(f"{url_base}/health", timeout=2).status_code == 200
    # Refused while gunicorn binds, or slow while its worker still imports the app.
    except (requests.ConnectionError, requests.Timeout):
        return False


def stop(process: subprocess.Popen) -> tuple[int | None, set[int]]:
    """Ctrl-C: SIGINT to `flowbin up`, which stops its children and then Redis. Returns the
    exit code (None if it did not exit in time) and the processes it had started."""
    started = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=STOP_TIMEOUT), started
    except subprocess.TimeoutExpired:
        return None, started


@pytest.fixture
def stack(tmp_path):
    api_port, flower_port = free_port(), free_port()
    log = tmp_path / "flowbin-up.log"
    flowbin = Path(sys.executable).parent / "flowbin"
    with log.open("wb") as sink:
        # A file, not a pipe: nobody reads while the test runs, and a full pipe would block it.
        process = subprocess.Popen(
            [str(flowbin), "up"],
            cwd=REPO,
            env=stack_environment(tmp_path / "var", api_port, flower_port),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url_base = f"http://127.0.0.1:{api_port}"

        def up() -> bool:
            assert process.poll() is None, f"flowbin up exited with {process.returncode}"
            return health_ok(url_base)

        wait_for(up, timeout=START_TIMEOUT, interval=0.2, message="GET /health to answer 200")
        redis_port = wait_for(lambda: banner_redis_port(log), timeout=5, message="the banner")
        yield Stack(process, api_port, flower_port, redis_port)
    finally:
        if process.poll() is None:  # the test failed before it stopped the stack
            # Stopped the way a user would, so no worker is left to take another stack's tasks.
            _, started = stop(process)
            for pid in [p for p in started if running(p)]:
                with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                    os.kill(pid, signal.SIGKILL)
            if process.poll() is None:
                process.kill()
            process.wait()
        # Shown by pytest only when the test fails.
        output = log.read_text("utf-8", "replace")
        print(f"--- flowbin up (exit code {process.returncode}) ---\n{output}")
        for process_log in sorted((tmp_path / "var" / "logs").glob("*.log")):
            tail = process_log.read_text("utf-8", "replace").splitlines()[-40:]
            print(f"--- {process_log.name} (last lines) ---", *tail, sep="\n")


def api(stack: Stack, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return requests.request(method, stack.url_base + path, headers=headers, timeout=10, **kwargs)


def upload_sample_project(stack: Stack) -> None:
    files = ["flows/invoices.ibflow", "udfs/enrich.py"]
    files += sorted(f"data/input/{p.name}" for p in (PROJECT / "data" / "input").iterdir())
    for name in files:
        r = api(
            stack, "PUT", f"/api/v1/drive/admin/invoices/{name}", data=(PROJECT / name).read_bytes()
        )
        assert r.status_code == 200, r.text
    listing = api(stack, "GET", "/api/v1/drive/admin/invoices/data/input").json()
    assert sorted(e["name"] for e in listing["entries"]) == [
        "acme.txt",
        "globex.txt",
        "initech.html",
    ]


def compile_sample_project(stack: Stack) -> str:
    args = {
        "binary_type": "Single Flow",
        "flow_project_root": "admin/invoices",
        "settings": {"flow_file": "flows/invoices.ibflow"},
    }
    r = api(stack, "POST", "/api/v1/flow_binary/compile", data=json.dumps(args))
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]

    def done():
        resp = api(stack, "GET", f"/api/v1/jobs/status?job_id={job_id}").json()
        return resp if resp["state"] == "DONE" else None

    resp = wait_for(done, timeout=20, interval=0.1, message="the compile job")
    cur_status = json.loads(resp["cur_status"])
    assert cur_status["status"] == "COMPLETE", resp
    return cur_status["binary_path"]


def wait_like_the_seed(url_base: str, token: str, job_id: str) -> dict:
    """Seed 000's "Job Status" example, unchanged but for the deadline."""
    deadline = time.monotonic() + 30
    url = url_base + f"/api/v1/jobs/status?job_id={job_id}&type=flow"

    headers = {
        "Authorization": "Bearer {0}".format(token)  # noqa: UP030, UP032 (the seed's code)
    }

    still_running = True
    while still_running:
        assert time.monotonic() < deadline, f"job {job_id} still running after 30 s"
        r = requests.get(url, headers=headers)
        resp = json.loads(r.content)
        still_running = (resp["status"] == "OK") and (resp["state"] != "DONE")
        print("still running")
        time.sleep(1)

    print("Job finished!")
    print(resp)
    return resp


def test_readme_walk_through_on_a_fresh_stack(stack):
    upload_sample_project(stack)
    binary_path = compile_sample_project(stack)
    assert binary_path == "admin/invoices/build/bin/invoices.ibflowbin"

    args = {
        "binary_path": binary_path,
        "input_dir": "admin/invoices/data/input",
        "settings": {"tags": ["demo"], "priority": 5},
    }
    r = api(stack, "POST", "/api/v1/flow/run_binary_async", data=json.dumps(args))
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "OK" and run["data"]["output_folder"] == "admin/invoices/data/out"
    job_id = run["data"]["job_id"]

    resp = wait_like_the_seed(stack.url_base, TOKEN, job_id)
    cur_status = json.loads(resp["cur_status"])
    assert cur_status["status"] == "COMPLETE", resp
    assert cur_status["curProgress"] == 1.0
    assert resp["results"] == [{"status": "OK", "output_folder": "admin/invoices/data/out"}]
    summary = cur_status["run_summary"]
    assert (summary["numFiles"], summary["numRecords"]) == (3, 3), summary
    assert (summary["numRuntimeErrors"], summary["numCheckpointFailed"]) == (0, 0), summary

    logs = api(stack, "GET", f"/api/v1/jobs/get_logs?job_id={job_id}").json()
    assert logs["logs"] and logs["next_offset"] == len(logs["logs"])
    assert all(set(line) >= LOG_KEYS and line["job-id"] == job_id for line in logs["logs"])
    assert any("Completed" in line["log"] for line in logs["logs"]), logs

    r = api(stack, "GET", "/api/v1/drive/admin/invoices/data/out/results.json")
    assert r.status_code == 200, r.text
    results = {row["file_name"]: row for row in r.json()}
    fields = {
        name: {kv["key"]: kv["value"] for kv in row["results"]} for name, row in results.items()
    }
    assert fields == {
        "acme.txt": {
            "invoice_number": "INV-1001",
            "vendor": "Acme Supplies",
            "invoice_date": "2024-03-05",
            "total": 100.0,
            "vendor_upper": "ACME SUPPLIES",
            "total_with_tax": 120.0,
        },
        "globex.txt": {
            "invoice_number": "GX-77",
            "vendor": "Globex Corporation",
            "invoice_date": "2024-03-12",
            "total": 1234.5,
            "vendor_upper": "GLOBEX CORPORATION",
            "total_with_tax": 1481.4,
        },
        "initech.html": {
            "invoice_number": "IT-3003",
            "vendor": "Initech & Sons",
            "invoice_date": "2024-04-01",
            "total": 250.0,
            "vendor_upper": "INITECH & SONS",
            "total_with_tax": 300.0,
        },
    }
    assert [row["file_index"] for row in r.json()] == [0, 1, 2]
    assert all(not row["error"] and not row["checkpoint_failed"] for row in results.values())

    # Flower starts beside the API and may answer a moment later.
    flower = f"http://127.0.0.1:{stack.flower_port}/"

    def flower_status(**auth) -> int | None:
        try:
            return requests.get(flower, timeout=2, **auth).status_code
        except requests.ConnectionError:
            return None

    assert (
        wait_for(
            lambda: flower_status(auth=("admin", TOKEN)), timeout=20, interval=0.2, message="Flower"
        )
        == 200
    )
    assert flower_status() == 401
    assert flower_status(auth=("admin", "wrong")) == 401

    exit_code, started = stop(stack.process)
    assert exit_code == 0
    if HAS_PROC:
        assert len(started) >= 5, started  # at least Redis, the API, a worker, beat and Flower
        # Its reaper sees it gone and exits a moment after it (shared/ops/reaper.py).
        wait_for(
            lambda: not [pid for pid in started if running(pid)],
            timeout=10,
            interval=0.1,
            message="every process `flowbin up` started to be gone once it exited",
        )
    for port in (stack.api_port, stack.flower_port, stack.redis_port):
        assert port_is_free(port), f"port {port} still in use after `flowbin up` stopped"
