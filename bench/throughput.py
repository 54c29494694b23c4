"""Throughput: N one-file runs of a 3-step flow through Flowbin against N raw Celery chains.

Both go through the same Redis, the same Celery configuration (workers/app.py) and the same
worker process, so the ratio is what Flowbin's bookkeeping (store transactions, step files,
logs) costs on top of Celery itself. Flowbin's runs are submitted through the API's own views
(Flask's test client, in this process); the worker is a real `celery worker --pool prefork`.

    .venv/bin/python bench/throughput.py [--runs 200] [--rounds 3] [--concurrency 2]
        [--redis-url redis://...] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import redis
from celery import chain
from sqlalchemy import create_engine, func, select

from api.app import create_app
from shared.accounts import credentials, users
from shared.config import Settings
from shared.drive import Drive, write_atomic
from shared.ops.embedded_redis import EmbeddedRedis
from shared.states import REPORTED_DONE, JobStatus
from shared.store import migrate
from shared.store.db import session_scope
from shared.store.models import Job
from workers.app import HARD_LIMIT_GRACE
from workers.names import NOOP
from workers.publisher import broker_priority

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proc_cpu  # noqa: E402  (a sibling module of this script)

# The checkout: the worker runs from here, like the Procfile's (the venv has it installed).
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
        total: "to_number(regex(text, 'Total:\\\\s*\\\\$?([0-9.,]+)'))"
  - id: tag
    type: udf
    params: {function: "udfs/tag.py:tag"}
"""
UDF = "def tag(record, context):\n    return record\n"
INVOICE = b"ACME Corp\nInvoice # B-1\nTotal: $100.00\n"
PRIORITY = 0  # the API's default for a run
STEP_LIMIT = 300  # what Flowbin sends for step_timeout 0 with the default settings
POLL_INTERVAL = 0.1  # a tenth of a second in rounds of 10 s and more; polling costs the machine CPU
WARMUP_RUNS = 4
# Files the drive probe of each round creates (file_creation_us).
PROBE_FILES = 50


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs measured on each side")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of both sides; the median round is reported",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--redis-url", default="", help="an existing Redis (else embedded)")
    parser.add_argument("--database-url", default="", help="e.g. PostgreSQL (else SQLite)")
    return parser.parse_args()


def bench_user(settings: Settings, user: str) -> str:
    """A new user ``user`` with a home on the drive; its API token."""
    with session_scope(settings.sql_url) as session:
        users.create_user(session, user)
        token = credentials.create_token(session, user)
    Drive(settings.drive_root).space_home(user)
    return token


def start_worker(settings: Settings, name: str, concurrency: int, log: Path) -> subprocess.Popen:
    """The worker of tests/conftest.py: prefork, the app of workers/app.py."""
    env = {**os.environ, **settings.to_env()}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


class FlowbinSide:
    """Submits runs through the API and counts finished ones in the store."""

    def __init__(self, settings: Settings, client, token: str, user: str):
        self.settings = settings
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.user = user
        # A plain engine, not shared.db's: its transactions start with BEGIN IMMEDIATE on
        # SQLite, and polling with the write lock would slow the workers down.
        self.reader = create_engine(settings.sql_url)
        self.binary_path = ""

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(path, data=json.dumps(body), headers=self.headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def upload(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` in the bench's project folder of the drive."""
        response = self.client.put(
            f"/api/v1/drive/{self.user}/bench/{path}", data=data, headers=self.headers
        )
        assert response.status_code == 200, response.get_json()

    def prepare(self) -> None:
        """The bench's project on the drive, compiled by the worker."""
        since = datetime.now(UTC)
        job_id = self.ask_compile()
        wait_until(lambda: self.count(REPORTED_DONE, since) >= 1, 60, "the compile job")
        assert self.count({JobStatus.COMPLETE}, since, job_id) == 1, "the flow did not compile"

    def ask_compile(self) -> str:
        """Upload the bench's project and ask for its compile; the compile job's id. Sets
        ``binary_path``, where the binary will be."""
        self.upload("flows/bench.ibflow", FLOW.encode())
        self.upload("udfs/tag.py", UDF.encode())
        self.upload("data/input/invoice.txt", INVOICE)
        self.binary_path = f"{self.user}/bench/build/bin/bench.ibflowbin"
        return self.post(
            "/api/v1/flow_binary/compile",
            {
                "binary_type": "Single Flow",
                "flow_project_root": f"{self.user}/bench",
                "settings": {"flow_file": "flows/bench.ibflow"},
            },
        )["job_id"]

    def submit(self, job_id: str) -> None:
        """One run of the binary over the bench's one input file, as ``job_id``."""
        self.post(
            "/api/v1/flow/run_binary_async",
            {
                "binary_path": self.binary_path,
                "input_dir": f"{self.user}/bench/data/input",
                "output_dir": f"{self.user}/bench/out/{job_id}",
                "job_id": job_id,
                "settings": {"priority": PRIORITY},
            },
        )

    def count(self, states, since: datetime, id_prefix: str | None = None) -> int:
        """Jobs in ``states`` created since ``since``: the bench's store holds nothing else
        created meanwhile. Polled from ix_jobs_status_created_id alone, so a poll reads only this
        batch's index entries however many jobs earlier rounds left (a scan of them all, as a
        LIKE on the id would be, slows the workers down); ``id_prefix`` checks the ids too."""
        query = (
            select(func.count())
            .select_from(Job)
            .where(Job.status.in_(sorted(states)), Job.created_at >= since)
        )
        if id_prefix is not None:
            query = query.where(Job.id.like(f"{id_prefix}%"))
        with self.reader.connect() as conn:
            return conn.scalar(query)

    def run(self, batch: str, n: int) -> float:
        started = time.perf_counter()
        since = datetime.now(UTC)
        for index in range(n):
            self.submit(f"{batch}-{index}")
        wait_until(lambda: self.count(REPORTED_DONE, since) >= n, 60 + n, f"{n} Flowbin runs")
        elapsed = time.perf_counter() - started
        complete = self.count({JobStatus.COMPLETE}, since, id_prefix=f"{batch}-")
        assert complete == n, f"only {complete} of {n} Flowbin runs completed"
        return elapsed


class CelerySide:
    """Publishes chains of three no-op tasks with the options Flowbin's steps are sent with;
    the last task of each chain counts it in a Redis key."""

    def __init__(self, celery_app, redis_url: str):
        self.app = celery_app
        self.redis = redis.Redis.from_url(redis_url)

    def step(self, run: int, step: int, done_key: str | None = None):
        return self.app.signature(NOOP, args=(run, step, done_key), immutable=True).set(
            priority=broker_priority(PRIORITY),
            soft_time_limit=STEP_LIMIT,
            time_limit=STEP_LIMIT + HARD_LIMIT_GRACE,
        )

    def run(self, batch: str, n: int) -> float:
        done_key = f"bench:{batch}:done"
        started = time.perf_counter()
        for index in range(n):
            steps = (self.step(index, 0), self.step(index, 1), self.step(index, 2, done_key))
            chain(*steps).apply_async()
        wait_until(lambda: int(self.redis.get(done_key) or 0) >= n, 60 + n, f"{n} raw chains")
        return time.perf_counter() - started


def cpu_meter(worker: subprocess.Popen, redis_pid: int | None, postgres: bool):
    """A function that returns CPU seconds so far per process group (Linux), or None."""
    if not proc_cpu.available():
        return lambda: None
    processes = {"bench process (API)": os.getpid(), "worker main": worker.pid}
    by_name = {} if redis_pid else {"redis": "redis-server"}
    if redis_pid:
        processes["redis"] = redis_pid
    if postgres:
        by_name["postgresql"] = "postgres"
    return lambda: proc_cpu.snapshot(processes, {"worker pool": worker.pid}, by_name)


def timed(run: Callable[[str, int], float], batch: str, n: int, meter) -> tuple[float, dict | None]:
    before = meter()
    elapsed = run(batch, n)
    after = meter()
    return elapsed, (None if before is None else {k: after[k] - before[k] for k in after})


def stolen_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time the hypervisor gave to others meanwhile: a round
    with much of it measured a crowded host, not this code."""
    total, steal = after[0] - before[0], after[1] - before[1]
    return steal / total if total else 0.0


def print_cpu(runs: int, sides: dict[str, dict | None]) -> None:
    if any(cpu is None for cpu in sides.values()):
        return
    print("CPU ms per run:")
    labels = list(next(iter(sides.values())))
    for label in [*labels, "total"]:
        cells = []
        for cpu in sides.values():
            seconds = sum(cpu.values()) if label == "total" else cpu[label]
            cells.append(f"{1000 * seconds / runs:9.2f}")
        print(f"  {label:<22}" + "".join(cells))
    print(f"  {'':<22}" + "".join(f"{name:>9}" for name in sides))


def print_cpu_bound(
    runs: int, raw_s: float, flowbin_s: float, flowbin_cpu: dict | None, target: float
) -> None:
    """What the machine's cores allow: with every process of the run (API, worker, Redis,
    PostgreSQL) on the same cores, Flowbin can run no faster than the cores over its CPU per
    run, however its processes wait for each other; and so no closer to the raw side than
    that. Then the CPU per run the target would need at most, at the raw side's speed."""
    if flowbin_cpu is None:
        return
    cores = len(os.sched_getaffinity(0))
    per_run = sum(flowbin_cpu.values()) / runs
    raw_rate = runs / raw_s
    most = cores / per_run
    print(
        f"CPU bound: {per_run * 1000:.1f} ms of CPU a run (it kept {per_run * runs / flowbin_s:.2f}"
        f" of {cores} cores busy) allow at most {most:.1f} Flowbin runs/s, a ratio of at most "
        f"{most / raw_rate:.2f} against the median round's raw side; {target} needs at most "
        f"{1000 * cores / (target * raw_rate):.1f} ms a run"
    )


def file_creation_us(folder: Path) -> float:
    """CPU microseconds this process spends to create one small file in a new folder under
    ``folder``, written as a step's output is (beside its name, then renamed). Flowbin's runs
    create 13 files and folders each on the drive, raw Celery's none, and on this project's
    build machine (journal-less ext4) what one costs moves with the disk's recent deletions
    (bench/README.md): a round's figure says what the drive charged then. The probe's files
    are left in place, since deleting them would raise that cost for the rounds after."""
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=folder))
    started = time.process_time()
    for index in range(PROBE_FILES):
        write_atomic(probe / f"{index}.json", b"[]")
    return 1e6 * (time.process_time() - started) / PROBE_FILES


def measure(
    args: argparse.Namespace, data_dir: Path, redis_url: str, redis_pid: int | None = None
) -> None:
    tag = uuid.uuid4().hex[:8]  # job ids and the user stay apart from an earlier run's
    settings = Settings(data_dir=data_dir, database_url=args.database_url, redis_url=redis_url)
    migrate.upgrade(settings.sql_url)
    user = f"bench-{tag}"
    token = bench_user(settings, user)

    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    log = data_dir / "worker.log"
    worker = start_worker(settings, f"bench-{tag}", args.concurrency, log)
    try:
        wait_until(lambda: celery_app.control.ping(timeout=0.5), 60, "the worker")
        flowbin = FlowbinSide(settings, app.test_client(), token, user)
        flowbin.prepare()
        raw = CelerySide(celery_app, redis_url)
        # Warm-up: worker children import the tasks, open connections, load the binary.
        raw.run(f"{tag}-warm", WARMUP_RUNS)
        flowbin.run(f"{tag}-warm", WARMUP_RUNS)
        meter = cpu_meter(worker, redis_pid, args.database_url.startswith("postgresql"))
        # Rounds alternate the two sides, so a slow spell of a shared machine falls on both
        # sides of one round rather than on one side of the whole comparison.
        rounds = []
        for number in range(args.rounds):
            ticks = proc_cpu.machine_ticks() if proc_cpu.available() else (0, 0)
            new_file_us = file_creation_us(data_dir)
            raw_s, raw_cpu = timed(raw.run, f"{tag}-raw{number}", args.runs, meter)
            flowbin_s, flowbin_cpu = timed(flowbin.run, f"{tag}-fb{number}", args.runs, meter)
            stolen = stolen_share(ticks, proc_cpu.machine_ticks()) if proc_cpu.available() else 0
            rounds.append((raw_s, flowbin_s, raw_cpu, flowbin_cpu, stolen, new_file_us))
    except BaseException:
        print(f"--- worker log (tail) ---\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    store = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"store: {store}, worker concurrency: {args.concurrency}, {args.runs} runs a side")
    for number, (raw_s, flowbin_s, _, _, stolen, new_file_us) in enumerate(rounds, 1):
        print(
            f"round {number}: flowbin {args.runs / flowbin_s:6.1f} runs/s, "
            f"raw celery chain {args.runs / raw_s:6.1f} runs/s, ratio {raw_s / flowbin_s:.2f}"
            f" (CPU stolen by the host: {stolen:.0%}; a new file on the drive: "
            f"{new_file_us:.0f} us of CPU)"
        )
    raw_s, flowbin_s, raw_cpu, flowbin_cpu, *_ = sorted(rounds, key=lambda r: r[0] / r[1])[
        len(rounds) // 2
    ]
    print(
        f"median round: flowbin {args.runs / flowbin_s:.1f} runs/s, "
        f"raw celery chain {args.runs / raw_s:.1f} runs/s"
    )
    target = 0.7 if store == "PostgreSQL" else 0.8  # issue 17's, for this store
    print(f"ratio: {raw_s / flowbin_s:.2f} (target >= {target})")
    print_cpu(args.runs, {"raw": raw_cpu, "flowbin": flowbin_cpu})
    print_cpu_bound(args.runs, raw_s, flowbin_s, flowbin_cpu, target)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="flowbin-bench-") as tmp:
        data_dir = Path(tmp) / "var"
        data_dir.mkdir()
        if args.redis_url:
            measure(args, data_dir, args.redis_url)
            return
        with EmbeddedRedis(Path(tmp) / "redis") as server:
            measure(args, data_dir, server.url, server.process.pid)


if __name__ == "__main__":
    main()
