"""Compile latency: how soon the binary of `POST /api/v1/flow_binary/compile` is on the drive.

Instabase's CI/CD toolkits compile, sleep about 3 s and then use the binary without polling, so
a small project's binary must exist within 1 s of the compile's answer, also while run steps of
other jobs are queued. This times, after the answer, the moment the binary file exists on disk
(polled every 5 ms) and the moment jobs/status says DONE, in two scenarios:

  idle     nothing else queued;
  backlog  right after a run_binary_async job of --backlog-files files at --backlog-priority
           (default 5) was submitted; the backlog job is cancelled after each measurement and
           its messages drain from the broker before the next repetition.

It compares this checkout with an earlier one (--reference, default /tmp/flowbin-ref, which
published compiles at priority 5 instead of 9) in one invocation: each side runs in a child
process of this script with its cwd and PYTHONPATH set to its checkout, with its own temporary
data folder (a migrated SQLite store and a drive), its own database number on one embedded
Redis, the API in-process (Flask's test client) and a real `celery -A workers worker --pool
prefork` started from that checkout. Repetitions alternate between the sides (and which side
goes first), so a slow spell of a shared host falls on both.

    .venv/bin/python bench/compile_latency.py [--repeat 20] [--concurrency 2]
        [--backlog-files 300] [--backlog-priority 5] [--reference /tmp/flowbin-ref]
"""

from __future__ import annotations

import argparse
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
FILE_POLL = 0.005  # the binary's path on disk
STATUS_POLL = 0.005  # jobs/status through the test client
DRAIN_POLL = 0.05
REPLY = "@@compile-bench "  # marks the child's answers among anything else on its stdout
REDIS_ENV = "COMPILE_BENCH_REDIS_BASE_URL"  # kept off the command line (it holds a password)
SCENARIOS = ("idle", "backlog")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="repetitions a scenario and side")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes a side")
    parser.add_argument("--backlog-files", type=int, default=300, help="files of the backlog")
    parser.add_argument(
        "--backlog-priority", type=int, default=5, help="the backlog run's settings.priority"
    )
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds a compile may take, else timeout"
    )
    parser.add_argument("--current", type=Path, default=REPO, help="the checkout under test")
    parser.add_argument(
        "--reference", type=Path, default=Path("/tmp/flowbin-ref"), help="the earlier checkout"
    )
    # The child's part: one side's measurements, asked for line by line on stdin.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args()


# --- the child: one checkout's API, worker and store -------------------------------------------


def wait_until(done: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def start_worker(tree: Path, settings, name: str, concurrency: int, log: Path) -> subprocess.Popen:
    """The worker of bench/throughput.py, started from ``tree`` (PYTHONPATH is set to it)."""
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
        return subprocess.Popen(command, cwd=tree, env=env, stdout=sink, stderr=subprocess.STDOUT)


def account_modules():
    """This tree's users and credentials modules: shared.accounts, or the older layout where
    create_user and create_token both lived in shared.users."""
    try:
        from shared.accounts import credentials, users
    except ImportError:
        from shared import users

        credentials = users
    return users, credentials


class Side:
    """One checkout: a store, a drive with two projects, the API in-process and a worker."""

    def __init__(self, args: argparse.Namespace, tmp: Path):
        import redis

        import shared
        from api.app import create_app
        from shared.config import Settings
        from shared.drive import Drive
        from shared.store import migrate
        from shared.store.db import session_scope

        tree = args.tree.resolve()
        for module in (shared, sys.modules["api"]):
            if not Path(module.__file__).resolve().is_relative_to(tree):
                raise SystemExit(f"{module.__name__} comes from {module.__file__}, not {tree}")
        self.args = args
        self.tree = tree
        redis_url = f"{os.environ[REDIS_ENV]}/{args.db}"
        self.redis = redis.Redis.from_url(redis_url)
        self.redis.flushdb()
        self.settings = Settings(data_dir=tmp / "var", redis_url=redis_url)
        self.settings.data_dir.mkdir()
        migrate.upgrade(self.settings.sql_url)
        users, credentials = account_modules()
        self.user = f"bench-{uuid.uuid4().hex[:8]}"
        with session_scope(self.settings.sql_url) as session:
            users.create_user(session, self.user)
            token = credentials.create_token(session, self.user)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.home = Drive(self.settings.drive_root).space_home(self.user)
        for project in ("small", "backlog"):
            (self.home / project / "flows").mkdir(parents=True)
            (self.home / project / "udfs").mkdir()
            (self.home / project / "flows/bench.ibflow").write_text(FLOW)
            (self.home / project / "udfs/tag.py").write_text(UDF)
        backlog_input = self.home / "backlog/data/input"
        backlog_input.mkdir(parents=True)
        for index in range(args.backlog_files):
            (backlog_input / f"invoice-{index:04d}.txt").write_bytes(INVOICE)
        warm_input = self.home / "backlog/data/warm"
        warm_input.mkdir()
        for index in range(4):
            (warm_input / f"invoice-{index}.txt").write_bytes(INVOICE)

        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.log = tmp / "worker.log"
        self.worker = start_worker(
            tree, self.settings, f"compile-bench-{args.db}", args.concurrency, self.log
        )
        self.runs = 0

    # requests

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(path, data=json.dumps(body), headers=self.headers)
        assert response.status_code == 200, (path, response.get_json())
        return response.get_json()

    def get(self, path: str) -> dict:
        response = self.client.get(path, headers=self.headers)
        assert response.status_code == 200, (path, response.get_json())
        return response.get_json()

    def status(self, job_id: str) -> dict:
        return self.get(f"/api/v1/jobs/status?job_id={job_id}")

    def compile(self, project: str) -> str:
        body = {
            "binary_type": "Single Flow",
            "flow_project_root": f"{self.user}/{project}",
            "settings": {"flow_file": "flows/bench.ibflow"},
        }
        return self.post("/api/v1/flow_binary/compile", body)["job_id"]

    def wait_done(self, job_id: str, timeout: float) -> dict:
        answer: dict = {}

        def done() -> bool:
            answer.update(self.status(job_id))
            return answer["state"] == "DONE"

        wait_until(done, timeout, f"job {job_id}", STATUS_POLL)
        return answer

    def run_async(self, input_folder: str, priority: int) -> str:
        self.runs += 1
        job_id = f"backlog-{uuid.uuid4().hex[:8]}-{self.runs}"
        self.post(
            "/api/v1/flow/run_binary_async",
            {
                "binary_path": self.backlog_binary,
                "input_dir": f"{self.user}/backlog/data/{input_folder}",
                "output_dir": f"{self.user}/backlog/out/{job_id}",
                "job_id": job_id,
                "settings": {"priority": priority},
            },
        )
        return job_id

    # the broker

    def queued(self) -> int:
        """Messages waiting in the broker (every priority bucket of every queue) or delivered
        and not yet acknowledged."""
        total = self.redis.hlen("unacked")
        for key in self.redis.scan_iter("celery*"):
            if self.redis.type(key) == b"list":
                total += self.redis.llen(key)
        return total

    def drain(self, timeout: float = 120) -> None:
        """Until the broker is empty twice in a row, a little apart."""
        empty = [0]

        def drained() -> bool:
            empty[0] = empty[0] + 1 if self.queued() == 0 else 0
            return empty[0] >= 3

        wait_until(drained, timeout, "the broker to drain", DRAIN_POLL)

    # setup and measurements

    def prepare(self) -> None:
        celery_app = self.app.extensions["flowbin.celery"]
        wait_until(lambda: celery_app.control.ping(timeout=0.5), 60, "the worker")
        answer = self.wait_done(self.compile("backlog"), 60)
        result = answer["results"][0]
        assert result["status"] == "OK", answer
        self.backlog_binary = result["binary_path"]
        # Warm-up: the pool's children load the runtime and the UDF, and compile once.
        warm = self.run_async("warm", self.args.backlog_priority)
        assert self.wait_done(warm, 60)["results"][0]["status"] == "OK"
        self.measure_compile()
        self.drain()

    def measure_compile(self) -> dict:
        """Compile the small project; milliseconds from the answer to the binary on the drive
        and to jobs/status DONE (None: not within the deadline)."""
        binary = self.home / "small/build/bin/bench.ibflowbin"
        binary.unlink(missing_ok=True)
        job_id = self.compile("small")
        answered = time.perf_counter()
        queued = self.queued()
        deadline = answered + self.args.deadline
        file_ms = done_ms = None
        while time.perf_counter() < deadline:
            if binary.exists():
                file_ms = (time.perf_counter() - answered) * 1000
                break
            time.sleep(FILE_POLL)
        while time.perf_counter() < deadline:
            answer = self.status(job_id)
            if answer["state"] == "DONE":
                done_ms = (time.perf_counter() - answered) * 1000
                assert answer["results"][0]["status"] == "OK", answer
                break
            time.sleep(STATUS_POLL)
        return {"file_ms": file_ms, "done_ms": done_ms, "queued_at_answer": queued}

    def idle(self) -> dict:
        return self.measure_compile()

    def backlog(self) -> dict:
        job_id = self.run_async("input", self.args.backlog_priority)
        figures = self.measure_compile()
        self.get(f"/api/v1/jobs/cancel?job_id={job_id}")
        self.wait_done(job_id, 60)
        self.drain()
        return figures

    def stop(self) -> None:
        self.worker.terminate()
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()


def reply(payload: dict) -> None:
    sys.stdout.write(REPLY + json.dumps(payload) + "\n")
    sys.stdout.flush()


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="flowbin-compile-bench-") as tmp:
        side = None
        try:
            side = Side(args, Path(tmp))
            side.prepare()
            reply({"ready": True})
            for line in sys.stdin:
                command = line.strip()
                if command == "quit":
                    break
                reply(getattr(side, command)())
        except BaseException:
            if side is not None and side.log.exists():
                tail = side.log.read_text(errors="replace")[-4000:]
                print(f"--- worker log of {args.tree} (tail) ---\n{tail}", file=sys.stderr)
            raise
        finally:
            if side is not None:
                side.stop()


# --- the parent: both sides, alternating --------------------------------------------------------


class ChildSide:
    def __init__(self, label: str, tree: Path, db: int, args: argparse.Namespace, logs: Path):
        self.label = label
        self.tree = tree
        self.stderr_path = logs / f"{label}.stderr"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--tree",
            str(tree),
            "--db",
            str(db),
            "--concurrency",
            str(args.concurrency),
            "--backlog-files",
            str(args.backlog_files),
            "--backlog-priority",
            str(args.backlog_priority),
            "--deadline",
            str(args.deadline),
        ]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=tree,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )

    def read(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY) :])
        tail = self.stderr_path.read_text(errors="replace")[-6000:]
        raise SystemExit(f"the {self.label} side ({self.tree}) exited:\n{tail}")

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(timeout=30)


def percentile(sorted_ms: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    return sorted_ms[max(0, math.ceil(fraction * len(sorted_ms)) - 1)]


def stats(values: list[float | None]) -> tuple[float, float, float, int]:
    """p50, p90, max over the repetitions that ended, and how many did not (timeouts count as
    infinitely slow)."""
    ordered = sorted(math.inf if value is None else value for value in values)
    return (
        percentile(ordered, 0.5),
        percentile(ordered, 0.9),
        ordered[-1],
        sum(v is None for v in values),
    )


def print_report(args: argparse.Namespace, sides: list[ChildSide], results: dict) -> None:
    print(
        f"compile latency after the compile answer, {args.repeat} repetitions a scenario and side;"
        f" worker concurrency {args.concurrency};\nbacklog: one run_binary_async job of "
        f"{args.backlog_files} files (3 steps each) at priority {args.backlog_priority}, "
        "submitted just before the compile"
    )
    for side in sides:
        print(f"  {side.label:<9} {side.tree}")
    print(f"{'scenario':<9} {'until':<14} {'side':<9} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9}")
    for scenario in SCENARIOS:
        for key, until in (("file_ms", "binary exists"), ("done_ms", "status DONE")):
            rows = {}
            for side in sides:
                figures = stats([r[key] for r in results[side.label][scenario]])
                rows[side.label] = figures
                late = f"  ({figures[3]} timed out)" if figures[3] else ""
                print(
                    f"{scenario:<9} {until:<14} {side.label:<9} {figures[0]:9.1f} "
                    f"{figures[1]:9.1f} {figures[2]:9.1f}{late}"
                )
            current, reference = (rows[side.label] for side in sides)
            pairs = zip(current[:3], reference[:3], strict=True)
            ratios = [c / r if r else math.nan for c, r in pairs]
            print(
                f"{scenario:<9} {until:<14} {'ratio':<9} "
                + " ".join(f"{ratio:9.2f}" for ratio in ratios)
            )
    for side in sides:
        queued = sorted(r["queued_at_answer"] for r in results[side.label]["backlog"])
        print(
            f"messages in the broker at the compile answer (backlog and the compile), "
            f"{side.label}: median {percentile(queued, 0.5)}, min {queued[0]}, max {queued[-1]}"
        )
    for side in sides:
        over = sum(
            1 for r in results[side.label]["backlog"] if r["file_ms"] is None or r["file_ms"] > 1000
        )
        print(f"backlog repetitions with the binary later than 1 s, {side.label}: {over}")
    print("ratio: current / reference")


def parent(args: argparse.Namespace) -> None:
    from shared.ops.embedded_redis import EmbeddedRedis, free_port

    trees = {"current": args.current.resolve(), "reference": args.reference.resolve()}
    for label, tree in trees.items():
        if not (tree / "workers/publisher.py").is_file():
            raise SystemExit(f"the {label} checkout {tree} has no workers/publisher.py")
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="flowbin-compile-bench-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port(None), appendonly=False) as server,
    ):
        os.environ[REDIS_ENV] = server.base_url
        sides: list[ChildSide] = []
        try:
            for db, (label, tree) in enumerate(trees.items(), 1):
                sides.append(ChildSide(label, tree, db, args, Path(tmp)))
            for side in sides:
                side.read()  # ready: set up and warmed up
            results = {side.label: {scenario: [] for scenario in SCENARIOS} for side in sides}
            for scenario in SCENARIOS:
                for repetition in range(args.repeat):
                    order = sides if repetition % 2 == 0 else sides[::-1]
                    for side in order:
                        results[side.label][scenario].append(side.ask(scenario))
        finally:
            for side in sides:
                side.stop()
    print_report(args, sides, results)
    print(f"({time.monotonic() - started:.0f} s)")


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
