"""Sync run latency: N requests to flow/run_binary_sync, each one small file through a 3-step
flow (extract_text, refine, udf), one after another; prints p50 and p99 in milliseconds.

By default the requests go over real HTTP to a real `gunicorn api.wsgi:app` (one worker
process, four threads, as the Procfile runs it), timed at the client from send to parsed JSON.
``--in-process`` uses Flask's test client in this process instead. Either way every request
authenticates, reads the binary from the drive, runs in a sync runner process and records its
job in the store; the targets are p50 < 25 ms and p99 < 60 ms. The first ``--warmup`` requests
(runner start, first load of the binary and UDF module) are not counted.

    .venv/bin/python bench/sync_latency.py [--requests 500] [--warmup 20] [--in-process]
        [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from shared.accounts import credentials, users
from shared.config import Settings
from shared.drive import Drive
from shared.flow.compiler import compile_project
from shared.store import migrate
from shared.store.db import session_scope

REPO = Path(__file__).resolve().parents[1]
FLOW = """
name: bench
steps:
  - id: read
    type: extract_text
  - id: fields
    type: refine
    params:
      fields:
        invoice_number: "regex(text, 'Invoice #\\\\s*(\\\\S+)')"
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: tag
    type: udf
    params: {function: "udfs/tag.py:tag"}
"""
UDF = "def tag(record, context):\n    record['fields']['tagged'] = True\n    return record\n"
INVOICE = b"ACME Corp\nInvoice # B-1\nTotal: $100.00\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests measured")
    parser.add_argument("--warmup", type=int, default=20, help="requests not measured")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="Flask's test client in this process instead of gunicorn",
    )
    parser.add_argument("--database-url", default="", help="e.g. PostgreSQL (else SQLite)")
    return parser.parse_args()


def prepare(settings: Settings) -> tuple[str, str]:
    """A migrated store, a user with a token, and the compiled binary in the user's drive."""
    migrate.upgrade(settings.sql_url)
    username = f"bench-{uuid.uuid4().hex[:8]}"
    with session_scope(settings.sql_url) as session:
        users.create_user(session, username)
        token = credentials.create_token(session, username)
    project = Drive(settings.drive_root).space_home(username) / "sync"
    (project / "flows").mkdir(parents=True)
    (project / "udfs").mkdir()
    (project / "flows/bench.ibflow").write_text(FLOW)
    (project / "udfs/tag.py").write_text(UDF)
    artifact = compile_project(
        project, "Single Flow", {"flow_file": "flows/bench.ibflow"}, username
    )
    (project / "build/bin").mkdir(parents=True)
    (project / "build/bin" / artifact.file_name).write_bytes(artifact.data)
    return token, f"{username}/sync/build/bin/{artifact.file_name}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(settings: Settings, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env()}
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "4",
        "api.wsgi:app",
    ]
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gunicorn did not answer {url}/health within {timeout} s")


def percentile(sorted_ms: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    return sorted_ms[max(0, math.ceil(fraction * len(sorted_ms)) - 1)]


def measure(send: Callable[[], dict], warmup: int, count: int) -> list[float]:
    for _ in range(warmup):
        send()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        body = send()
        timings.append((time.perf_counter() - started) * 1000)
        if body["records"][0]["results"][0]["value"] != "B-1":
            raise SystemExit(f"unexpected answer: {body}")
    return sorted(timings)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="flowbin-sync-bench-") as tmp:
        # Sync runs never touch the broker; the URL only satisfies the app's configuration.
        settings = Settings(
            data_dir=Path(tmp), database_url=args.database_url, redis_url="redis://127.0.0.1:1/0"
        )
        token, binary = prepare(settings)
        body = json.dumps(
            {
                "binary_path": binary,
                "files": [
                    {"file_name": "invoice.txt", "file_content": base64.b64encode(INVOICE).decode()}
                ],
            }
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        gunicorn = None
        try:
            if args.in_process:
                from api.app import create_app

                client = create_app(settings).test_client()
                where = "in-process Flask test client"

                def send() -> dict:
                    response = client.post(
                        "/api/v1/flow/run_binary_sync", data=body, headers=headers
                    )
                    assert response.status_code == 200, response.get_json()
                    return response.get_json()
            else:
                port = free_port()
                gunicorn = start_gunicorn(settings, port, Path(tmp) / "gunicorn.log")
                url = f"http://127.0.0.1:{port}"
                wait_healthy(url, gunicorn)
                session = requests.Session()
                where = "HTTP to gunicorn (1 worker, 4 threads)"

                def send() -> dict:
                    response = session.post(
                        f"{url}/api/v1/flow/run_binary_sync", data=body, headers=headers, timeout=60
                    )
                    assert response.status_code == 200, response.text
                    return response.json()

            timings = measure(send, args.warmup, args.requests)
        finally:
            if gunicorn is not None:
                gunicorn.terminate()
                gunicorn.wait(timeout=20)
    store = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(
        f"run_binary_sync, 1 small file, 3-step flow, {args.requests} requests "
        f"({where}, {store} store)"
    )
    print(
        f"p50 {percentile(timings, 0.50):.1f} ms  p99 {percentile(timings, 0.99):.1f} ms  "
        f"min {timings[0]:.1f} ms  max {timings[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
