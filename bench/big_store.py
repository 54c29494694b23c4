"""A big store: p50/p99 of status, list and log reads over 1,000,000 jobs in PostgreSQL, each
printed beside the previous code path's query on the same data (the reference).

Fills a database of its own (default ``flowbin_bench_big``, created if missing; its data is
dropped and written again) with COPY: --jobs jobs of 1-3 files spread over the last week across
ten users, with tags; one running job of --big-files files (half of them done), with a log of
--log-lines lines. Then, through the real Flask app (in process, no network):

- ``/health``, the liveness probe (no token, ``SELECT 1``): the floor of any request;
- ``jobs/status`` of a 1-file job and of the big job, against the previous summary (every file
  row of the job read and added up, as shared/jobs/summary.py did);
- ``jobs/list`` with common filters, a deep page through ``next_page``'s cursor, an explicit
  ``offset`` (answered by a deferred join) and a partial job id (a trigram index), against the
  previous statements (the same filters with OFFSET, and the partial id without the trigram
  index: bitmap scans off);
- ``get_logs`` deep in the big job's log through ``after_id``, against the previous OFFSET page;
- a list page's side reads (its 20 jobs' owners, totals, review counts and running steps) in one
  statement, against the four statements they were before, alternating; and a v2 job read's
  (the job with its totals, then its people, tags and collaborators in one statement), against
  the four they were;
- ``limit=1000`` beside the dump of its body through ``ListResponse`` that it no longer makes,
  and a deep ``get_logs`` page beside the dump of its lines through ``LogsResponse``;
- the plan flip: the first page on a connection that has served ten deep pages, with and
  without ``plan_cache_mode=force_custom_plan``;
- ``run_binary_async`` of a 1-file job by one of the ten owners (about a tenth of the jobs are
  its own), against the same submit on an empty store (a second database, the url's name +
  ``_empty``, migrated afresh each run), alternating one submit on each. The submits publish
  to an embedded Redis that no worker reads; the big store's are deleted afterwards.

With ``--http`` every read is also timed over real HTTP: the same app and settings served by
gunicorn as the Procfile's ``api`` line starts it, on ``--http-port``, read through one
keep-alive ``requests.Session`` (a polling client) and again through one keep-alive
``http.client`` connection (a lean client, whose own CPU costs the shared cores less), one
in-process read and one over each in turn. gunicorn's log goes to ``<data dir>/gunicorn.log``.

    .venv/bin/python bench/big_store.py [--jobs 1000000] [--queries 200] [--keep] [--http]
        [--http-port 5683] [--data-dir /tmp/flowbin-bench-big]
"""

from __future__ import annotations

import argparse
import http.client as http_client
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import delete, inspect, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api.app import create_app  # noqa: E402
from bench.drive_transfer import wait_healthy  # noqa: E402
from bench.list_latency import ensure_database  # noqa: E402
from bench.throughput import FLOW, INVOICE, UDF  # noqa: E402
from shared.accounts.credentials import create_token  # noqa: E402
from shared.accounts.users import create_user  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.drive import Drive  # noqa: E402
from shared.flow.compiler import compile_project  # noqa: E402
from shared.ops.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.ops.startup_heap import freeze_startup_objects  # noqa: E402
from shared.store.db import engine_for, session_scope, statement_session  # noqa: E402
from shared.store.migrate import upgrade  # noqa: E402
from shared.store.models import Job  # noqa: E402

STATUSES = ["complete"] * 6 + ["failed", "cancelled", "running", "queued", "paused"]
TAGS = [f"t{i}" for i in range(20)]
BIG = "big-job"
SUBMITTER = "u3"  # one of the ten owners, so about a tenth of the big store's jobs are its own
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


def fresh_schema(url: str) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(url)


def fill(url: str, jobs: int, big_files: int, log_lines: int) -> dict:
    fresh_schema(url)
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
    with engine_for(url).connect() as conn:
        if (
            not inspect(conn).has_table("jobs")
            or conn.scalar(text("SELECT count(*) FROM jobs")) < 2
        ):
            raise SystemExit(f"--keep: no earlier run filled {url}; run once without --keep")
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
    """The store read ``jobs/status`` makes now (shared/jobs/job_status.py): one statement for
    the job's row, its shard sums, its review counts and whether a step runs, as an admin."""
    from shared.accounts.principal import Principal
    from shared.jobs.job_status import job_status

    with statement_session(url) as session:
        job_status(session, Principal(user_id=1, username="admin", is_admin=True), job_id)


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


def first_page(session) -> list:
    """The jobs of the listing's first page of 20, newest first."""
    from sqlalchemy import select

    return list(
        session.scalars(select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(20))
    )


def page_facts_now(url: str) -> Callable[[], object]:
    """A page's side reads as jobs/list makes them now: one statement (shared/jobs/
    page_facts.py), in the list's read transaction."""
    from shared.jobs.page_facts import page_facts

    def call():
        with session_scope(url, read_only=True) as session:
            page_facts(session, first_page(session))

    return call


def page_facts_before(url: str) -> Callable[[], object]:
    """The same reads as the previous commit made them: a statement each for the page's shard
    sums, review counts, owners' names and paused jobs' running steps."""
    from sqlalchemy import select

    from shared.jobs.summary import jobs_with_running_steps, run_summaries
    from shared.review.metrics import review_metrics
    from shared.states import JobStatus
    from shared.store.models import User
    from shared.store.sets import among

    def call():
        with session_scope(url, read_only=True) as session:
            jobs = first_page(session)
            review_metrics(session, jobs, run_summaries(session, jobs))
            owners = {job.owner_id for job in jobs}
            session.execute(select(User.id, User.username).where(among(session, User.id, owners)))
            paused = [job.id for job in jobs if job.status == JobStatus.PAUSED]
            jobs_with_running_steps(session, paused)

    return call


def job_read_facts_now(url: str, job_id: str) -> Callable[[], object]:
    """A v2 job read's store reads as it makes them now: the job with its totals, then its
    people, tags and collaborators in one statement (shared/jobs/resource_facts.py)."""
    from shared.jobs.counters import job_with_counters
    from shared.jobs.resource_facts import facts_of

    def call():
        with statement_session(url) as session:
            job, totals = job_with_counters(session, job_id)
            facts_of(session, [job], {job.id: totals})

    return call


def job_read_facts_before(url: str, job_id: str) -> Callable[[], object]:
    """The same reads as the previous commit made them: after the job, a statement each for
    its owner and modifier, its tags and its collaborators."""
    from sqlalchemy import select

    from shared.accounts.collaboration import collaboration_of
    from shared.jobs.counters import job_with_counters
    from shared.jobs.store import tags_of
    from shared.store.models import User

    def call():
        with statement_session(url) as session:
            job, _ = job_with_counters(session, job_id)
            people = {job.owner_id} | ({job.last_modified_by} - {None})
            list(session.scalars(select(User).where(User.id.in_(people))))
            tags_of(session, [job.id])
            collaboration_of(session, [job.id])

    return call


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


def empty_store(url: str) -> tuple[str, str]:
    """The submit's reference: a second database beside ``url`` (its name + ``_empty``),
    migrated afresh, holding only the submitting user; its url and the user's token."""
    target = make_url(url)
    empty = target.set(database=f"{target.database}_empty").render_as_string(hide_password=False)
    ensure_database(empty)
    fresh_schema(empty)
    with session_scope(empty) as session:
        create_user(session, SUBMITTER)
        token = create_token(session, SUBMITTER)
    return empty, token


def submit_inputs(settings: Settings) -> tuple[str, str]:
    """The throughput bench's flow compiled into the submitter's drive, and an input folder of
    one file: their drive paths. Compiled here rather than by a worker (as the API would have
    it), which is only safe because the UDF it imports is this bench's own two lines."""
    project = Drive(settings.drive_root).space_home(SUBMITTER) / "bench"
    for relative, data in (
        ("flows/bench.ibflow", FLOW.encode()),
        ("udfs/tag.py", UDF.encode()),
        ("data/input/invoice.txt", INVOICE),
    ):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_bytes(data)
    artifact = compile_project(
        project, "Single Flow", {"flow_file": "flows/bench.ibflow"}, compiled_by=SUBMITTER
    )
    binary = project / "build" / "bin" / artifact.file_name
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(artifact.data)
    return f"{SUBMITTER}/bench/build/bin/{artifact.file_name}", f"{SUBMITTER}/bench/data/input"


def submitter(client, token: str, binary: str, folder: str, job_ids: list[str]):
    """A submit of the 1-file job; the server picks the job id, kept in ``job_ids``."""
    headers = {"Authorization": f"Bearer {token}"}

    def call():
        body = {
            "binary_path": binary,
            "input_dir": folder,
            "output_dir": f"{SUBMITTER}/bench/out/{uuid.uuid4().hex}",
        }
        response = client.post("/api/v1/flow/run_binary_async", json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
        job_ids.append(response.get_json()["data"]["job_id"])

    return call


def timed_alternately(calls: list[Callable[[], object]], times: int) -> list[tuple[float, float]]:
    """``timed`` for several calls, one of each in turn, so that a busy spell of the shared
    host falls on all of them rather than on whichever ran then."""
    for call in calls:
        call()  # warm
    values = [[] for _ in calls]
    for _ in range(times):
        for call, spent in zip(calls, values, strict=True):
            begin = time.perf_counter()
            call()
            spent.append((time.perf_counter() - begin) * 1000)
    return [(statistics.median(spent), percentile(spent, 99)) for spent in values]


def beside_dump(
    client, path: str, headers: dict, dump: Callable[[], object], queries: int, label: str,
    what: str,
) -> None:  # fmt: skip
    """Print the request's p50 beside that of the schema dump of its ``what`` it no longer
    makes, timed alternately."""
    request, dumped = timed_alternately(
        [lambda: client.get(path, headers=headers), dump], max(10, queries // 10)
    )
    print(
        f"{label}: p50 {request[0]:.1f} ms; the schema dump of its {what} it no longer makes, "
        f"as it was: p50 {dumped[0]:.1f} ms"
    )


def time_submit(settings: Settings, client, token: str, times: int) -> tuple[tuple, tuple]:
    """p50/p99 of the submit on the big store (through ``client``) and on an empty one; the big
    store's submitted jobs are deleted afterwards, so that a --keep run finds it as filled."""
    empty_url, empty_token = empty_store(settings.database_url)
    binary, folder = submit_inputs(settings)
    big_ids: list[str] = []
    big = submitter(client, token, binary, folder, big_ids)
    empty_app = create_app(replace(settings, database_url=empty_url))
    empty = submitter(empty_app.test_client(), empty_token, binary, folder, [])
    try:
        on_big, on_empty = timed_alternately([big, empty], times)
    finally:
        with engine_for(settings.database_url).begin() as conn:
            conn.execute(delete(Job).where(Job.id.in_(big_ids)))
    return on_big, on_empty


def procfile_command(process: str) -> str:
    """The command line of one of the Procfile's processes."""
    procfile = REPO / "Procfile"
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise SystemExit(f"no {process!r} process in {procfile}")


@contextmanager
def served_over_http(settings: Settings, log: Path) -> Iterator[str]:
    """The app under gunicorn, started by the Procfile's own ``api`` line (its workers,
    threads, keep-alive and api/gunicorn_conf.py) with ``settings`` in its environment: the
    base url while it answers; stopped on the way out, also on error."""
    with socket.socket() as probe:
        # A server already there would answer the health check and be timed in our place.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.api_host, settings.api_port))
        except OSError as exc:
            raise SystemExit(
                f"{settings.api_host}:{settings.api_port} is taken ({exc}): pass another "
                "--http-port"
            ) from exc
    env = {**os.environ, **settings.to_env()}
    # The Procfile names a bare `gunicorn`: the one beside this interpreter, as `flowbin up`
    # finds it.
    env["PATH"] = os.pathsep.join(
        filter(None, [str(Path(sys.executable).parent), env.get("PATH", "")])
    )
    # `exec`, as honcho's shell would not: so that terminate() reaches gunicorn's master,
    # which then stops its workers.
    command = ["/bin/sh", "-c", f"exec {procfile_command('api')}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=sink)
    try:
        url = f"http://{settings.api_host}:{settings.api_port}"
        # Both workers import the app on a host that may be busy: a generous deadline.
        wait_healthy(url, server, timeout=120)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def figures(timing: tuple[float, float] | None, width: int) -> str:
    """One column's p50 and p99 (blank without a timing), ``width`` wide with its p99."""
    if timing is None:
        return " " * (width + 8)
    return f"{timing[0]:{width - 2}.1f}ms {timing[1]:5.1f}ms"


def time_reads(args: argparse.Namespace, client, base_url: str | None, facts: dict) -> None:
    """Each read's p50/p99 in process, over HTTP when ``base_url`` is given, and its store
    reads now and before, as one table."""
    from shared.jobs.listing import Cursor

    url = args.database_url
    tokens = facts["tokens"]
    # One keep-alive connection for every read over HTTP, as a client polling the API keeps.
    http = requests.Session() if base_url else None
    # And the same reads through the standard library's client, which costs about a fifth of
    # requests' CPU a request (0.14 against 0.7 ms here): on two cores shared with gunicorn,
    # requests' own work shows in its latency, and this column is closer to the server's.
    lean = http_client.HTTPConnection(urlsplit(base_url).netloc, timeout=60) if base_url else None

    def get(path: str, user: str = "admin") -> list[Callable[[], object]]:
        """The read in process and, with a server, the same read over HTTP."""
        headers = {"Authorization": f"Bearer {tokens[user]}"}

        def in_process():
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_json())

        def over_http():
            response = http.get(base_url + path, headers=headers, timeout=60)
            assert response.status_code == 200, (path, response.text[:500])

        def over_lean_http():
            try:
                lean.request("GET", path, headers=headers)
                response = lean.getresponse()
            except ConnectionError:  # http.client.RemoteDisconnected among them
                # gunicorn closed the connection after its keep-alive (a row's store reads can
                # take longer): connect again, as requests does. The first read of each row is
                # not timed, so the reconnection never is.
                lean.close()
                lean.request("GET", path, headers=headers)
                response = lean.getresponse()
            body = response.read()
            assert response.status == 200, (path, body[:500])

        return [in_process, over_http, over_lean_http] if http else [in_process]

    with session_scope(url, read_only=True) as session:
        from shared.store.models import Job

        deep_job = session.get(Job, facts["deep"])
        cursor = Cursor(deep_job.created_at, deep_job.id).encode()
    n = args.queries
    deep, shallow, line = args.jobs // 2, args.jobs // 20, args.log_lines * 9 // 10
    small, partial, after = facts["small"], facts["partial"], Cursor.decode(cursor)
    complete = "AND jobs.status = 'complete'"
    rows = [
        # The floor of any request: the liveness probe reads no token and runs SELECT 1.
        ("health (no token, SELECT 1)", get("/health"), None, None),
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
    # (title, width of its p50): the request's columns, then its store reads'.
    request_columns = [("in process", 14)] + (
        [("over HTTP", 13), ("HTTP, lean client", 21)] if http else []
    )
    store_columns = [("store now", 13), ("store before", 16)]
    print(
        f"{'request':38s} "
        + " | ".join(
            f"{title + ' p50':>{width}s} {'p99':>7s}"
            for title, width in request_columns + store_columns
        )
    )
    for name, reads, now, before in rows:
        slow = "offset" in name or "partial" in name or "page at" in name or "logs" in name
        times = max(20, n // 5) if slow else n
        cells = [
            figures(timing, width)
            for timing, (_, width) in zip(
                timed_alternately(reads, times), request_columns, strict=True
            )
        ]
        for reference, (_, width) in zip((now, before), store_columns, strict=True):
            timing = timed(reference, max(10, times // 2)) if reference else None
            cells.append(figures(timing, width))
        print(f"{name:38s} " + " | ".join(cells), flush=True)
    if http:
        http.close()
        lean.close()


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
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/tmp/flowbin-bench-big"), help="drive and Redis"
    )
    parser.add_argument(
        "--http", action="store_true", help="time the reads over HTTP too, under gunicorn"
    )
    parser.add_argument("--http-port", type=int, default=5683)
    args = parser.parse_args()
    url = args.database_url

    ensure_database(url)
    started = time.perf_counter()
    if args.keep:
        facts = filled(url, args.jobs, args.log_lines)
    else:
        facts = fill(url, args.jobs, args.big_files, args.log_lines)
        print(f"filled {args.jobs} jobs (+1 of {args.big_files} files, {args.log_lines} log "
              f"lines) in {time.perf_counter() - started:.0f} s")  # fmt: skip
    # The reads never touch the broker; each submit publishes its first step, which no
    # worker takes: they go with the server, which keeps nothing on disk.
    with EmbeddedRedis(args.data_dir / "redis", appendonly=False) as broker:
        settings = Settings(
            database_url=url,
            redis_url=broker.url,
            # Absolute: gunicorn runs from the checkout.
            data_dir=args.data_dir.resolve() / "var",
            api_port=args.http_port,
        )
        client = create_app(settings).test_client()
        server = (
            served_over_http(settings, args.data_dir / "gunicorn.log")
            if args.http
            else nullcontext()
        )
        # As the served app does (api/wsgi.py): a full collection, which the reference reads'
        # many rows bring on, would otherwise walk this process's whole startup heap (70-80 ms)
        # during whichever timed read it falls in.
        freeze_startup_objects()
        with server as base_url:
            time_reads(args, client, base_url, facts)
        token = facts["tokens"][SUBMITTER]
        on_big, on_empty = time_submit(settings, client, token, args.queries)
    print(f"{'submit, 1-file job':38s} {figures(on_big, 14)}")
    # The dumps through the schema that jobs/list and get_logs no longer make (their views
    # shape the body themselves), each beside the request that skips it.
    from api.job_schemas import ListResponse
    from api.schemas import LogsResponse
    from shared.jobs.log import read_logs

    thousand = "/api/v1/jobs/list?limit=1000"
    admin = {"Authorization": f"Bearer {facts['tokens']['admin']}"}
    body = client.get(thousand, headers=admin).get_json()
    beside_dump(client, thousand, admin, lambda: ListResponse().dump(body), args.queries,
                "list, limit=1000 in process", "body")  # fmt: skip
    # get_logs: a deep page of 1,000 lines, and the dump of those lines as read_logs gives
    # them that the view made before it shaped them itself.
    deep = f"/api/v1/jobs/get_logs?job_id={BIG}&after_id={facts['line']}"
    owner = {"Authorization": f"Bearer {facts['tokens']['u0']}"}
    with session_scope(url, read_only=True) as session:
        lines = read_logs(session, BIG, 0, 1000, facts["line"])
    page = {"logs": lines, "next_offset": len(lines), "next_after_id": lines[-1]["id"]}
    beside_dump(client, deep, owner, lambda: LogsResponse().dump(page), args.queries,
                "get_logs, 1,000 lines in process", "lines")  # fmt: skip
    # Both include reading the page's 20 jobs: alternating, so that a slow spell falls on both.
    now, before = timed_alternately([page_facts_now(url), page_facts_before(url)], args.queries)
    print(
        f"list page's side reads (20 jobs, with the page): one statement p50 {now[0]:.1f} ms "
        f"p99 {now[1]:.1f} ms; four statements, as before, p50 {before[0]:.1f} ms p99 "
        f"{before[1]:.1f} ms"
    )
    now, before = timed_alternately(
        [job_read_facts_now(url, BIG), job_read_facts_before(url, BIG)], args.queries
    )
    print(
        f"v2 job read's store reads: two statements p50 {now[0]:.1f} ms p99 {now[1]:.1f} ms; "
        f"four, as before, p50 {before[0]:.1f} ms p99 {before[1]:.1f} ms"
    )
    print(
        "plan flip, first page after ten deep pages on one connection: "
        f"{plan_flip(url, False, args.jobs // 2):.1f} ms with the default plan cache, "
        f"{plan_flip(url, True, args.jobs // 2):.1f} ms with force_custom_plan"
    )
    print(
        f"submit, 1-file job ({args.queries} each, alternating): big store p50 {on_big[0]:.1f} "
        f"ms p99 {on_big[1]:.1f} ms; empty store p50 {on_empty[0]:.1f} ms p99 {on_empty[1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
