"""p50/p99 latency of filtered GET /api/v1/jobs/list over a large store.

Fills a PostgreSQL database (by default its own: flowbin_bench_list, created if missing) with
--jobs jobs spread over the last week across ten users, with files and tags, then times
--queries requests of several filter mixes through the real Flask app. Target: p99 < 50 ms
over 100,000 jobs.

    .venv/bin/python bench/list_latency.py [--jobs 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.accounts.credentials import create_token  # noqa: E402
from shared.accounts.users import create_user  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.store.db import engine_for, session_scope  # noqa: E402
from shared.store.migrate import upgrade  # noqa: E402
from shared.store.models import Job, JobFile, JobTag  # noqa: E402

STATUSES = ["complete"] * 6 + ["failed", "cancelled", "running", "queued", "paused"]
TAGS = [f"t{i}" for i in range(20)]
QUERIES = {
    "own, state+tag": ("u3", "state=COMPLETE&tags=t3&limit=20"),
    "own, two states, page 3": ("u3", "state=FAILED,CANCELLED&limit=20&offset=40"),
    "own, priority": ("u5", "priority=7"),
    "own, partial job_id": ("u1", "job_id={partial}"),
    "admin, user+state": ("admin", "user=u7&state=RUNNING"),
    "admin, tags+review_state": ("admin", "tags=t1,t2&review_state=NONE&limit=50"),
    "admin, all in window": ("admin", "limit=20"),
}


def ensure_database(url: str) -> None:
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        ).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    server.dispose()


def fill(url: str, jobs: int) -> tuple[dict[str, str], str]:
    with engine_for(url).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(url)
    tokens = {}
    with session_scope(url) as session:
        users = {}
        for name in ["admin"] + [f"u{i}" for i in range(10)]:
            users[name] = create_user(session, name, is_admin=name == "admin").id
            tokens[name] = create_token(session, name)
    owners = [users[f"u{i}"] for i in range(10)]
    now = datetime.now(UTC)
    rng = random.Random(7)
    partial = ""
    batch = 5000
    engine = engine_for(url)
    for start in range(0, jobs, batch):
        job_rows, file_rows, tag_rows = [], [], []
        for _ in range(start, min(start + batch, jobs)):
            job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            partial = partial or job_id[9:18]
            created = now - timedelta(seconds=rng.uniform(0, 6.9 * 86400))
            status = rng.choice(STATUSES)
            files = rng.randint(1, 3)
            job_rows.append(
                {
                    "id": job_id,
                    "owner_id": rng.choice(owners),
                    "kind": "flow",
                    "status": status,
                    "message": status,
                    "flow_type": "single_flow",
                    "binary_path": "u/bin.ibflowbin",
                    "binary_hash": "",
                    "input_dir": "u/in",
                    "output_dir": "u/out",
                    "settings": {},
                    "priority": rng.randint(0, 9),
                    "step_timeout": 0,
                    "log_prefix": "",
                    "log_to_timeline": False,
                    "trace_id": "0" * 16,
                    "num_files": files,
                    "num_steps": 3,
                    "files_done": files,
                    "reviewer": "",
                    "review_state": "NONE",
                    "created_at": created,
                    "started_at": created,
                    "finished_at": created + timedelta(seconds=30),
                }
            )
            for index in range(files):
                file_rows.append(
                    {
                        "job_id": job_id,
                        "file_index": index,
                        "file_name": f"f{index}.txt",
                        "status": "complete",
                        "next_step": 3,
                        "attempts": 0,
                        "num_records": 1,
                        "num_errors": 0,
                        "num_checkpoint_failed": 0,
                        "num_filtered": 0,
                        "error_counts": {},
                        "updated_at": created,
                    }
                )
            for tag in rng.sample(TAGS, rng.randint(0, 2)):
                tag_rows.append({"job_id": job_id, "tag": tag})
        with engine.begin() as conn:
            conn.execute(insert(Job), job_rows)
            conn.execute(insert(JobFile), file_rows)
            if tag_rows:
                conn.execute(insert(JobTag), tag_rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return tokens, partial


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/flowbin_bench_list"
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    from api.app import create_app

    ensure_database(args.database_url)
    started = time.perf_counter()
    tokens, partial = fill(args.database_url, args.jobs)
    print(f"filled {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
    # The list endpoint never touches the broker; the URL only has to be well-formed.
    app = create_app(
        Settings(
            database_url=args.database_url,
            redis_url="redis://127.0.0.1:1/0",
            data_dir=Path("/tmp/flowbin-bench-list"),
        )
    )
    client = app.test_client()
    timings: dict[str, list[float]] = {name: [] for name in QUERIES}
    names = list(QUERIES)
    for round_ in range(args.queries + len(names)):
        name = names[round_ % len(names)]
        user, query = QUERIES[name]
        url = "/api/v1/jobs/list?" + query.format(partial=partial)
        begin = time.perf_counter()
        response = client.get(url, headers={"Authorization": f"Bearer {tokens[user]}"})
        elapsed = (time.perf_counter() - begin) * 1000
        assert response.status_code == 200, response.get_json()
        if round_ >= len(names):  # the first round warms caches
            timings[name].append(elapsed)
    everything = [t for values in timings.values() for t in values]
    for name, values in timings.items():
        print(
            f"{name:28s} p50 {statistics.median(values):6.1f} ms   "
            f"p99 {percentile(values, 99):6.1f} ms"
        )
    p50, p99 = statistics.median(everything), percentile(everything, 99)
    print(
        f"all {len(everything)} requests over {args.jobs} jobs: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms (target p99 < 50 ms)"
    )


if __name__ == "__main__":
    main()
