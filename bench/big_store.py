"""A big store: p50/p99 of status, list and log reads over 1,000,000 jobs in PostgreSQL, each
printed beside the previous code path's query on the same data (the reference).

Fills a database of its own (default ``flowbin_bench_big``, created if missing; its data is
dropped and written again) with COPY: --jobs jobs of 1-3 files spread over the last week across
ten users, with tags; one running job of --big-files files (half of them done), with a log of
--log-lines lines. Then, through the real Flask app (in process, no network):

- ``jobs/status`` of a 1-file job and of the big job, against the previous summary (every file
  row of the job read and added up, as shared/jobs/summary.py did);
- ``jobs/list`` with common filters, a deep page through ``next_page``'s cursor, an explicit
  ``offset`` (answered by a deferred join) and a partial job id (a trigram index), against the
  previous statements (the same filters with OFFSET, and the partial id without the trigram
  index: bitmap scans off);
- ``get_logs`` deep in the big job's log through ``after_id``, against the previous OFFSET page;
- the plan flip: the first page on a connection that has served ten deep pages, with and
  without ``plan_cache_mode=force_custom_plan``.

    .venv/bin/python bench/big_store.py [--jobs 1000000] [--queries 200] [--keep]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.list_latency import ensure_database  # noqa: E402
from shared.accounts.credentials import create_token  # noqa: E402
from shared.accounts.users import create_user  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.store.db import engine_for, session_scope  # noqa: E402
from shared.store.migrate import upgrade  # noqa: E402

STATUSES = ["complete"] * 6 + ["failed", "cancelled", "running", "queued", "paused"]
TAGS = [f"t{i}" for i in range(20)]
BIG = "big-job"
JOB_COLUMNS = [
    *("id", "owner_id", "kind", "status", "message", "flow_type", "binary_path", "binary_hash"),
    *("input_dir", "output_dir", "settings", "priority", "step_timeout", "log_prefix"),
    *("log_to_timeline", "trace_id", "num_files", "num_steps", "files_done", "reviewer"),
    *("review_state", "created_at", "started_at", "finished_at", "steps_done", "total_records"),
]
FILE_COLUMNS = [
    *("job_id", "file_index", "file_name", "status", "next_step", "attempts", "num_records"),
    *("num_errors", "num_checkpoint_failed", "num_filtered", "error_counts", "updated_at"),
]


def _copy(raw, table: str, columns: list[str], rows) -> None:
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def fill(url: str, jobs: int, big_files: int, log_lines: int) -> dict:
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
    files, tags, ids = [], [], []

    def job_rows():
        for _ in range(jobs):
            job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            ids.append(job_id)
            created = now - timedelta(seconds=rng.uniform(60, 6.9 * 86400))
            status = rng.choice(STATUSES)
            count = rng.randint(1, 3)
            files.append((job_id, count, created))
            tags.extend((job_id, tag) for tag in rng.sample(TAGS, rng.randint(0, 2)))
            yield (
                job_id, rng.choice(owners), "flow", status, status, "single_flow",
                "u/bin.ibflowbin", "", "u/in", "u/out", "{}", rng.randint(0, 9), 0, "",
                False, "0" * 16, count, 3, count, "", "NONE", created, created,
                created + timedelta(seconds=30), 3 * count, count,
            )  # fmt: skip
        yield (
            BIG, users["u0"], "flow", "running", "Running", "single_flow", "u/bin.ibflowbin",
            "", "u/in", "u/out", "{}", 5, 0, "", False, "0" * 16, big_files, 3,
            big_files // 2, "", "NONE", now, now, None, 3 * (big_files // 2), big_files // 2,
        )  # fmt: skip

    def file_rows():
        for job_id, count, created in files:
            for index in range(count):
                yield (
                    job_id, index, f"f{index}.txt", "complete", 3, 0, 1, 0, 0, 0, "{}", created
                )  # fmt: skip
        for index in range(big_files):
            done = index < big_files // 2
            yield (
                BIG, index, f"f{index}.txt", "complete" if done else "pending",
                3 if done else 0, 0, 1 if done else 0, 0, 0, 0, "{}", now,
            )  # fmt: skip

    def log_rows():
        for number in range(log_lines):
            yield BIG, "task", "INFO", now, "0" * 16, "0" * 16, f"line {number}"

    with engine_for(url).connect() as conn:
        raw = conn.connection.driver_connection
        _copy(raw, "jobs", JOB_COLUMNS, job_rows())
        _copy(raw, "job_files", FILE_COLUMNS, file_rows())
        _copy(raw, "job_tags", ["job_id", "tag"], iter(tags))
        _copy(
            raw,
            "job_logs",
            ["job_id", "task_id", "level", "ts", "trace_id", "span_id", "message"],
            log_rows(),
        )
        raw.commit()
    with engine_for(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        deep = conn.execute(
            text("SELECT id FROM jobs ORDER BY created_at DESC, id DESC OFFSET :at LIMIT 1"),
            {"at": jobs // 2},
        ).scalar()
        line = conn.execute(
            text("SELECT id FROM job_logs WHERE job_id = :job ORDER BY id OFFSET :at LIMIT 1"),
            {"job": BIG, "at": log_lines * 9 // 10},
        ).scalar()
    return {"tokens": tokens, "small": ids[0], "partial": ids[1][9:18], "deep": deep, "line": line}


def filled(url: str, jobs: int, log_lines: int) -> dict:
    """The facts of a database an earlier run filled (--keep), with fresh tokens."""
    with session_scope(url) as session:
        tokens = {name: create_token(session, name) for name in ["admin", "u0", "u3"]}
    with engine_for(url).connect() as conn:
        small, other = conn.execute(
            text("SELECT id FROM jobs WHERE id != :big LIMIT 2"), {"big": BIG}
        ).scalars()
        deep = conn.execute(
            text("SELECT id FROM jobs ORDER BY created_at DESC, id DESC OFFSET :at LIMIT 1"),
            {"at": jobs // 2},
        ).scalar()
        line = conn.execute(
            text("SELECT id FROM job_logs WHERE job_id = :job ORDER BY id OFFSET :at LIMIT 1"),
            {"job": BIG, "at": log_lines * 9 // 10},
        ).scalar()
    return {"tokens": tokens, "small": small, "partial": other[9:18], "deep": deep, "line": line}


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def timed(call: Callable[[], object], times: int) -> tuple[float, float]:
    call()  # warm
    values = []
    for _ in range(times):
        begin = time.perf_counter()
        call()
        values.append((time.perf_counter() - begin) * 1000)
    return statistics.median(values), percentile(values, 99)


# The previous code path's statements, as they were (the reference).
OLD_SUMMARY = "SELECT * FROM job_files WHERE job_id = :job"
OLD_LIST = (
    "SELECT jobs.* FROM jobs WHERE jobs.kind IN ('flow', 'sync') AND jobs.created_at >= :since "
    "AND jobs.created_at <= :until {where} ORDER BY jobs.created_at DESC, jobs.id DESC "
    "LIMIT :limit OFFSET :offset"
)
OLD_LOGS = "SELECT * FROM job_logs WHERE job_id = :job ORDER BY id LIMIT 1000 OFFSET :offset"


def old_summary(url: str, job_id: str) -> None:
    with engine_for(url).connect() as conn:
        rows = conn.execute(text(OLD_SUMMARY), {"job": job_id}).all()
        sum(row.num_records for row in rows), sum(row.num_errors for row in rows)


def old_list(
    url: str, where: str = "", offset: int = 0, settings: str = "", limit: int = 21, **params
) -> None:
    now = datetime.now(UTC)
    with engine_for(url).connect() as conn:
        if settings:
            conn.execute(text(settings))
        conn.execute(
            text(OLD_LIST.format(where=where)),
            {"since": now - timedelta(days=7), "until": now, "limit": limit, "offset": offset}
            | params,
        ).all()


def store_logs(url: str, after_id: int) -> None:
    from shared.jobs.log import read_logs

    with session_scope(url, read_only=True) as session:
        read_logs(session, BIG, 0, 1000, after_id)


def old_logs(url: str, offset: int) -> None:
    with engine_for(url).connect() as conn:
        conn.execute(text(OLD_LOGS), {"job": BIG, "offset": offset}).all()


def store_status(url: str, job_id: str) -> None:
    """The store reads ``jobs/status`` makes now: the job's row, and whether a step runs."""
    from shared.jobs.summary import jobs_with_running_steps, run_summaries
    from shared.store.models import Job

    with session_scope(url, read_only=True) as session:
        job = session.get(Job, job_id)
        run_summaries(session, [job]), jobs_with_running_steps(session, [job_id])


def store_list(url: str, **wanted) -> None:
    """The listing's store query now (shared/jobs/listing.py), as the admin."""
    from shared.accounts.principal import Principal
    from shared.jobs.listing import JobFilter, list_jobs
    from shared.store.db import custom_plans

    now = datetime.now(UTC)
    with session_scope(url, read_only=True) as session:
        custom_plans(session)
        admin = Principal(user_id=1, username="admin", is_admin=True)
        list_jobs(session, admin, JobFilter(now - timedelta(days=7), now, **wanted))


def plan_flip(url: str, custom: bool, deep: int) -> float:
    """The first page's time on a connection that has just served ten deep pages (the driver
    has prepared the statement by then, and PostgreSQL may give it a generic plan)."""
    sql = OLD_LIST.format(where="")
    now = datetime.now(UTC)
    params = {"since": now - timedelta(days=7), "until": now, "limit": 21}
    with engine_for(url).connect() as conn:
        if custom:
            conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
        for _ in range(10):
            conn.execute(text(sql), params | {"offset": deep}).all()
        values = []
        for _ in range(20):
            begin = time.perf_counter()
            conn.execute(text(sql), params | {"offset": 0}).all()
            values.append((time.perf_counter() - begin) * 1000)
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.rollback()
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/flowbin_bench_big"
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--big-files", type=int, default=50_000)
    parser.add_argument("--log-lines", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--keep", action="store_true", help="time the database an earlier run filled (same sizes)"
    )
    args = parser.parse_args()
    url = args.database_url

    from api.app import create_app
    from shared.jobs.listing import Cursor

    ensure_database(url)
    started = time.perf_counter()
    if args.keep:
        facts = filled(url, args.jobs, args.log_lines)
    else:
        facts = fill(url, args.jobs, args.big_files, args.log_lines)
        print(f"filled {args.jobs} jobs (+1 of {args.big_files} files, {args.log_lines} log "
              f"lines) in {time.perf_counter() - started:.0f} s")  # fmt: skip
    app = create_app(
        Settings(
            database_url=url,
            redis_url="redis://127.0.0.1:1/0",  # these reads never touch the broker
            data_dir=Path("/tmp/flowbin-bench-big"),
        )
    )
    client = app.test_client()
    tokens = facts["tokens"]

    def get(path: str, user: str = "admin") -> Callable[[], object]:
        def call():
            response = client.get(path, headers={"Authorization": f"Bearer {tokens[user]}"})
            assert response.status_code == 200, (path, response.get_json())

        return call

    with session_scope(url, read_only=True) as session:
        from shared.store.models import Job

        deep_job = session.get(Job, facts["deep"])
        cursor = Cursor(deep_job.created_at, deep_job.id).encode()
    n = args.queries
    deep, shallow, line = args.jobs // 2, args.jobs // 20, args.log_lines * 9 // 10
    small, partial, after = facts["small"], facts["partial"], Cursor.decode(cursor)
    complete = "AND jobs.status = 'complete'"
    rows = [
        ("jobs/status, 1-file job", get(f"/api/v1/jobs/status?job_id={small}"),
         lambda: store_status(url, small), lambda: old_summary(url, small)),
        (f"jobs/status, {args.big_files}-file job", get(f"/api/v1/jobs/status?job_id={BIG}"),
         lambda: store_status(url, BIG), lambda: old_summary(url, BIG)),
        (f"v2 job read, {args.big_files}-file job", get(f"/api/v2/jobs/{BIG}"), None,
         lambda: old_summary(url, BIG)),
        ("list, first page", get("/api/v1/jobs/list?limit=20"),
         lambda: store_list(url), lambda: old_list(url)),
        ("list, state=COMPLETE", get("/api/v1/jobs/list?state=COMPLETE"),
         lambda: store_list(url, states=("COMPLETE",)), lambda: old_list(url, complete)),
        ("list, user+state", get("/api/v1/jobs/list?user=u7&state=RUNNING"),
         lambda: store_list(url, user="u7", states=("RUNNING",)),
         lambda: old_list(url, "AND jobs.owner_id = 9 AND jobs.status IN ('queued', 'running')")),
        ("list, own, state+tag", get("/api/v1/jobs/list?state=COMPLETE&tags=t3", "u3"),
         None, None),
        ("list, priority", get("/api/v1/jobs/list?priority=7"),
         lambda: store_list(url, priority=7), lambda: old_list(url, "AND jobs.priority = 7")),
        ("list, limit=1000", get("/api/v1/jobs/list?limit=1000"),
         lambda: store_list(url, limit=1000), lambda: old_list(url, limit=1001)),
        (f"list, page at {deep} (next_page)", get(f"/api/v1/jobs/list?after={cursor}"),
         lambda: store_list(url, after=after), lambda: old_list(url, offset=deep)),
        (f"list, offset={shallow}", get(f"/api/v1/jobs/list?offset={shallow}"),
         lambda: store_list(url, offset=shallow), lambda: old_list(url, offset=shallow)),
        (f"list, offset={deep}", get(f"/api/v1/jobs/list?offset={deep}"),
         lambda: store_list(url, offset=deep), lambda: old_list(url, offset=deep)),
        (f"list, state=COMPLETE&offset={shallow}",
         get(f"/api/v1/jobs/list?state=COMPLETE&offset={shallow}"),
         lambda: store_list(url, states=("COMPLETE",), offset=shallow),
         lambda: old_list(url, complete, offset=shallow)),
        ("list, partial job_id", get(f"/api/v1/jobs/list?job_id={partial}"),
         lambda: store_list(url, job_id=partial),
         lambda: old_list(url, "AND jobs.id LIKE :like", like=f"%{partial}%",
                          settings="SET enable_bitmapscan = off")),
        (f"get_logs at line {line} (after_id)",
         get(f"/api/v1/jobs/get_logs?job_id={BIG}&after_id={facts['line']}", "u0"),
         lambda: store_logs(url, facts["line"]), lambda: old_logs(url, line)),
    ]  # fmt: skip
    print(
        f"{'request':38s} {'HTTP p50':>9s} {'p99':>7s} | {'store now p50':>13s} {'p99':>7s} "
        f"| {'store before p50':>16s} {'p99':>7s}"
    )
    for name, call, now, before in rows:
        slow = "offset" in name or "partial" in name or "page at" in name or "logs" in name
        times = max(20, n // 5) if slow else n
        shown = f"{name:38s} " + "{:7.1f}ms {:5.1f}ms".format(*timed(call, times))
        for reference, width in ((now, 11), (before, 14)):
            if reference is None:
                shown += " | " + " " * (width + 11)
                continue
            r50, r99 = timed(reference, max(10, times // 2))
            shown += f" | {r50:{width}.1f}ms {r99:5.1f}ms"
        print(shown, flush=True)
    print(
        "plan flip, first page after ten deep pages on one connection: "
        f"{plan_flip(url, False, deep):.1f} ms with the default plan cache, "
        f"{plan_flip(url, True, deep):.1f} ms with force_custom_plan"
    )


if __name__ == "__main__":
    main()
