"""How long the web UI's jobs page takes to load in a real browser with 10,000 jobs in the store.

Seeds a fresh store (SQLite under a temporary data folder, or --database-url) with --jobs jobs
of one user over the last week, each with a file, serves the app on a real HTTP server, signs
in with Debian's chromium (Playwright) and loads /jobs --loads times. Reported per load: the
browser's load event (the shell: HTML, CSS, scripts) and the time until the first page of jobs
is in the table (jobs/list with limit=25; the page marks it), both from the start of the
navigation; and jobs/list?limit=25 alone, through the app without HTTP. Target: under
300 ms.

    .venv/bin/python bench/ui_page_load.py [--jobs 10000] [--loads 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.accounts.credentials import create_token  # noqa: E402
from shared.accounts.users import create_user  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.store.db import engine_for, session_scope  # noqa: E402
from shared.store.migrate import upgrade  # noqa: E402
from shared.store.models import Job, JobFile  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, install_chromium  # noqa: E402
from tests.support import free_port  # noqa: E402

STATUSES = ["complete", "complete", "complete", "failed", "running", "paused"]


def seed(url: str, jobs: int) -> str:
    if url.startswith("postgresql"):
        with engine_for(url).begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(url)
    with session_scope(url) as session:
        owner = create_user(session, "bench").id
        token = create_token(session, "bench")
    now = datetime.now(UTC)
    engine = engine_for(url)
    for start in range(0, jobs, 2000):
        job_rows, file_rows = [], []
        for n in range(start, min(start + 2000, jobs)):
            job_id = str(uuid.uuid4())
            created = now - timedelta(seconds=n * 6.9 * 86400 / jobs)
            status = STATUSES[n % len(STATUSES)]
            done = status in ("complete", "failed")
            job_rows.append(
                {
                    "id": job_id,
                    "owner_id": owner,
                    "kind": "flow",
                    "status": status,
                    "message": status,
                    "binary_path": "bench/bin.ibflowbin",
                    "input_dir": "bench/in",
                    "output_dir": "bench/out",
                    "settings": {},
                    "trace_id": "0" * 32,
                    "num_files": 1,
                    "num_steps": 3,
                    "files_done": 1 if done else 0,
                    "created_at": created,
                    "started_at": created,
                    "finished_at": created + timedelta(seconds=30) if done else None,
                }
            )
            file_rows.append(
                {
                    "job_id": job_id,
                    "file_index": 0,
                    "file_name": "f.txt",
                    "status": "complete" if done else "pending",
                    "next_step": 3 if done else 1,
                    "error_counts": {},
                    "updated_at": created,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Job), job_rows)
            conn.execute(insert(JobFile), file_rows)
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="flowbin-ui-bench-"))
    settings = Settings(
        data_dir=data_dir, database_url=args.database_url, redis_url="redis://127.0.0.1:1/0"
    )
    token = seed(settings.sql_url, args.jobs)
    from api.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(settings)
    client = app.test_client()
    api_times = []
    for _ in range(args.loads):
        started = time.perf_counter()
        answer = client.get(
            "/api/v1/jobs/list?limit=25", headers={"Authorization": f"Bearer {token}"}
        )
        api_times.append((time.perf_counter() - started) * 1000)
        assert len(answer.get_json()["jobs"]) == 25, answer.get_json()
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    install_chromium()
    from playwright.sync_api import sync_playwright

    shell, rows = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/")
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/jobs")
        page.locator("#jobs-body tr[data-job-id]").first.wait_for()
        for _ in range(args.loads):
            page.goto(f"{base}/jobs")
            page.locator("#jobs-body tr[data-job-id]").nth(24).wait_for()
            timing = page.evaluate(
                """() => {
                  const nav = performance.getEntriesByType("navigation")[0];
                  const shown = performance.getEntriesByName("jobs-shown")[0];
                  return [nav.loadEventEnd, shown.startTime];
                }"""
            )
            shell.append(timing[0])
            rows.append(timing[1])
        browser.close()
    server.shutdown()

    def summary(values):
        values = sorted(values)
        return f"p50 {statistics.median(values):.0f} ms, max {values[-1]:.0f} ms"

    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"{args.jobs} jobs in {backend}, {args.loads} loads of /jobs in chromium:")
    print(f"  load event (the page's shell):         {summary(shell)}")
    print(f"  first 25 jobs in the table:             {summary(rows)}")
    print(f"  jobs/list?limit=25 on the server:       {summary(api_times)}")


if __name__ == "__main__":
    main()
