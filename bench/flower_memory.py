"""Flower's memory on a big job: with Flowbin's task cap (the Procfile's --max_tasks) and without.

Flower keeps every task it hears of in a celery.events State whose task map is an LRU cache of
``max_tasks`` entries. Flower's own default for it is 100,000 (flower 2.x, 2.2.0 here; the
option reads "maximum number of tasks to keep in memory", and mher/flower#1415 corrected the
man page's 10,000 to 100,000), so the Procfile before the cap, which passed no --max_tasks, was
itself capped, only at 100,000 tasks. The reference here is therefore a much larger cap,
1,000,000 (``--reference-cap``), that keeps every task of the job as the issue's measurement did
(a job of up to 100,000 tasks is kept whole by Flower's default too); ``--reference-cap 0`` runs
the old command line itself, without --max_tasks.

One embedded Redis and one real worker (`celery -A workers worker`, prefork, the bench's
Settings) serve both sides; Flower is started twice, one after the other, with the Procfile's
flags and its FLOWER_BASIC_AUTH (a bench password: Flower 2.x refuses its API without
authentication unless FLOWER_UNAUTHENTICATED_API is set, which production never does). Each
side sends N ``flowbin.noop`` tasks with the options of workers/publisher.py's publish_step
(priority, soft and hard time limits, ignore_result, argsrepr ``job=<id> file=<n> step=<n>``,
three steps a file) in batches, each batch sent once Flower has seen the one before last
succeed, so neither the worker nor Flower's event stream falls far behind (a Flower far behind
would be cut off by Redis's pub/sub output buffer limit). Flower's RSS (VmRSS of
/proc/<pid>/status) is sampled every second. It prints, a side: tasks done, Flower's RSS at the
start, peak and end, the tasks Flower's API lists (`/api/tasks`, read after the samples), the
RSS at each tenth of the job (whether it levels off at the cap), the flower.db that Flower
writes as it stops and how long stopping took, and one task's ``args`` as Flower shows it.

    .venv/bin/python bench/flower_memory.py [--tasks 50000] [--cap 10000]
        [--reference-cap 1000000] [--batch 1000] [--concurrency 2] [--port 5591]
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from shared.config import Settings
from shared.engine.scheduling import NextStep, StepCall
from shared.ops.embedded_redis import HOST, EmbeddedRedis, free_port
from workers.app import HARD_LIMIT_GRACE, create_celery_app
from workers.names import NOOP
from workers.publisher import broker_priority, step_label

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import PRIORITY, REPO, STEP_LIMIT, start_worker, wait_until  # noqa: E402

STEPS_PER_FILE = 3
WARMUP_TASKS = 10
SAMPLE_INTERVAL = 1.0
FLOWER_START_TIMEOUT = 60
# Flower saves its whole state to --db when it stops (persistent mode): a big state takes a while.
FLOWER_STOP_TIMEOUT = 300


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50_000, help="tasks sent on each side")
    parser.add_argument("--cap", type=int, default=10_000, help="the Procfile's FLOWER_MAX_TASKS")
    parser.add_argument(
        "--reference-cap",
        type=int,
        default=1_000_000,
        help="the reference's --max_tasks; 0 passes none (Flower's own default, 100,000)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="tasks sent at a time")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--port", type=int, default=5591, help="Flower's port (if free)")
    return parser.parse_args()


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"no {field_name} for process {pid}")


class RssSampler(threading.Thread):
    """Reads a process's RSS every second until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append(rss_mb(self.pid))
            self.stopped.wait(SAMPLE_INTERVAL)

    def stop(self) -> list[float]:
        self.stopped.set()
        self.join()
        return self.samples


class FlowerClient:
    """Flower's HTTP endpoints that the bench reads, as the user of FLOWER_BASIC_AUTH."""

    def __init__(self, port: int, basic_auth: str):
        self.base = f"http://{HOST}:{port}"
        self.authorization = "Basic " + base64.b64encode(basic_auth.encode()).decode()

    def get(self, path: str, timeout: float = 120) -> bytes:
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": self.authorization}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def healthy(self) -> bool:
        try:
            return self.get("/healthcheck", timeout=2) == b"OK"
        except OSError:
            return False

    def succeeded(self) -> int:
        """task-succeeded events of the no-op task Flower has processed (its /metrics count,
        which the task cap does not bound)."""
        total = 0.0
        for line in self.get("/metrics").decode().splitlines():
            if (
                line.startswith("flower_events_total{")
                and 'type="task-succeeded"' in line
                and f'task="{NOOP}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def has_seen(self, succeeded: int) -> bool:
        return self.succeeded() >= succeeded

    def tasks(self, limit: int) -> dict:
        return json.loads(self.get(f"/api/tasks?limit={limit}"))


def flower_command(port: int, db: Path, max_tasks: int | None) -> list[str]:
    """The Procfile's `flower:` line; FLOWER_BASIC_AUTH comes from the environment."""
    command = [sys.executable, "-m", "celery", "-A", "workers", "flower"]
    command += [f"--address={HOST}", f"--port={port}", "--persistent=True", f"--db={db}"]
    if max_tasks is not None:
        command.append(f"--max_tasks={max_tasks}")
    return command


@dataclass
class SideResult:
    name: str
    done: int = 0
    rss: list[float] = field(default_factory=list)
    # (tasks Flower has seen succeed, its RSS then), once a batch: whether the cap bounds it.
    growth: list[tuple[int, float]] = field(default_factory=list)
    start_mb: float = 0.0
    end_mb: float = 0.0
    hwm_mb: float = 0.0
    listed: int = 0
    sample_args: str = ""
    seconds: float = 0.0
    save_seconds: float = 0.0
    db_mb: float = 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings, folder: Path):
        self.args = args
        self.settings = settings
        self.folder = folder
        self.app = create_celery_app(settings)
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.job_id = f"bench-flower-{uuid.uuid4().hex[:8]}"
        self.basic_auth = f"bench:{secrets.token_urlsafe(16)}"

    def publish(self, first: int, count: int, done_key: str) -> None:
        """Tasks ``first`` .. ``first + count - 1`` of the job, as publish_step sends steps."""
        with self.app.producer_or_acquire() as producer:
            for index in range(first, first + count):
                file_index, step_index = divmod(index, STEPS_PER_FILE)
                step = NextStep(StepCall(self.job_id, file_index, step_index), PRIORITY, STEP_LIMIT)
                self.app.send_task(
                    NOOP,
                    args=(file_index, step_index, done_key),
                    argsrepr=step_label(step),  # what Flowbin's steps show in Flower
                    priority=broker_priority(step.priority),
                    soft_time_limit=step.time_limit,
                    time_limit=step.time_limit + HARD_LIMIT_GRACE,
                    ignore_result=True,
                    producer=producer,
                )

    def flower_env(self) -> dict[str, str]:
        # Flower reads FLOWER_* options from the environment: none may leak in from the caller.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
        return {**inherited, **self.settings.to_env(), "FLOWER_BASIC_AUTH": self.basic_auth}

    def side(self, name: str, max_tasks: int | None) -> SideResult:
        result = SideResult(name)
        side_dir = self.folder / name
        side_dir.mkdir()
        db = side_dir / "flower.db"
        port = free_port(self.args.port)
        log = side_dir / "flower.log"
        subscriptions_before = self.event_subscriptions()
        with log.open("ab") as sink:
            flower = subprocess.Popen(
                flower_command(port, db, max_tasks),
                cwd=REPO,
                env=self.flower_env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        client = FlowerClient(port, self.basic_auth)
        try:
            self.measure(result, flower, client, subscriptions_before)
        except BaseException:
            print(f"--- flower log (tail) ---\n{log.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            stopping = time.perf_counter()
            flower.send_signal(signal.SIGTERM)
            flower.wait(timeout=FLOWER_STOP_TIMEOUT)
            result.save_seconds = time.perf_counter() - stopping
        result.db_mb = sum(p.stat().st_size for p in side_dir.glob("flower.db*")) / 2**20
        return result

    def event_subscriptions(self) -> int:
        # Kombu's Redis transport receives fanout messages, task events among them, through
        # PSUBSCRIBE patterns.
        return int(self.redis.execute_command("PUBSUB", "NUMPAT"))

    def measure(
        self, result: SideResult, flower, client: FlowerClient, subscriptions_before: int
    ) -> None:
        name = result.name
        wait_until(client.healthy, FLOWER_START_TIMEOUT, f"Flower ({name})")
        # Events published before Flower subscribes are lost to it, and its HTTP server
        # answers before its event receiver has subscribed.
        wait_until(
            lambda: self.event_subscriptions() > subscriptions_before,
            FLOWER_START_TIMEOUT,
            f"Flower's event receiver ({name})",
        )
        done_key = f"bench:flower:{uuid.uuid4().hex}:done"
        self.publish(0, WARMUP_TASKS, done_key)
        wait_until(
            functools.partial(client.has_seen, WARMUP_TASKS), 60, f"Flower's warm-up ({name})"
        )
        result.start_mb = rss_mb(flower.pid)
        sampler = RssSampler(flower.pid)
        sampler.start()
        started = time.perf_counter()
        total, batch = self.args.tasks, self.args.batch
        try:
            sent = 0
            while sent < total:
                # At most two batches outstanding: the one just sent and the one before it.
                seen = WARMUP_TASKS + sent - batch
                wait_until(functools.partial(client.has_seen, seen), 120, "a batch")
                result.growth.append((max(0, sent - batch), rss_mb(flower.pid)))
                count = min(batch, total - sent)
                self.publish(WARMUP_TASKS + sent, count, done_key)
                sent += count
            wait_until(
                functools.partial(client.has_seen, WARMUP_TASKS + total),
                120 + total / 100,
                f"Flower to see all {total} tasks succeed ({name})",
            )
            result.seconds = time.perf_counter() - started
            result.end_mb = rss_mb(flower.pid)
            sampler.samples.append(result.end_mb)
            result.growth.append((total, result.end_mb))
        finally:
            result.rss = sampler.stop()
        result.hwm_mb = rss_mb(flower.pid, "VmHWM")
        result.done = int(self.redis.get(done_key) or 0) - WARMUP_TASKS
        # Read after the samples: a listing of every task is a big response of its own.
        listed = client.tasks(limit=WARMUP_TASKS + total)
        result.listed = len(listed)
        result.sample_args = next(
            (task.get("args") for task in listed.values() if task.get("name") == NOOP), ""
        )


def cap_name(max_tasks: int | None) -> str:
    return "no --max_tasks (Flower's default, 100,000)" if max_tasks is None else f"{max_tasks:,}"


def tenths(growth: list[tuple[int, float]], total: int) -> str:
    """The RSS at each tenth of the job: the first reading at or past it."""
    marks = [total * tenth // 10 for tenth in range(1, 11)]
    readings = [next(reading for reading in growth if reading[0] >= mark) for mark in marks]
    return ", ".join(f"{seen:,} {mb:.0f}" for seen, mb in readings)


def report(args: argparse.Namespace, sides: list[tuple[int | None, SideResult]]) -> None:
    print(
        f"Flower RSS, {args.tasks:,} flowbin.noop tasks a side ({STEPS_PER_FILE} steps a file), "
        f"worker concurrency {args.concurrency}, batches of {args.batch:,}"
    )
    header = f"{'side':<10}{'tasks done':>11}{'in API':>9}{'start MB':>10}{'peak MB':>9}"
    print(header + f"{'end MB':>8}{'VmHWM MB':>10}{'tasks/s':>9}  --max_tasks")
    for max_tasks, side in sides:
        print(
            f"{side.name:<10}{side.done:>11,}{side.listed:>9,}{side.start_mb:>10.1f}"
            f"{max(side.rss, default=side.end_mb):>9.1f}{side.end_mb:>8.1f}{side.hwm_mb:>10.1f}"
            f"{args.tasks / side.seconds:>9.0f}  {cap_name(max_tasks)}"
        )
    for _, side in sides:
        print(f"{side.name}: RSS MB after tasks seen: {tenths(side.growth, args.tasks)}")
    for _, side in sides:
        print(
            f"{side.name}: flower.db written at exit {side.db_mb:.1f} MB, "
            f"stop took {side.save_seconds:.1f} s; a task's args in Flower: {side.sample_args!r}"
        )


def main() -> None:
    args = parse_args()
    reference_cap = args.reference_cap or None
    with tempfile.TemporaryDirectory(prefix="flowbin-flower-") as tmp:
        folder = Path(tmp)
        with EmbeddedRedis(folder / "redis") as server:
            settings = Settings(data_dir=folder / "var", redis_url=server.url)
            settings.data_dir.mkdir()
            bench = Bench(args, settings, folder)
            log = folder / "worker.log"
            worker = start_worker(settings, "bench-flower", args.concurrency, log)
            try:
                wait_until(lambda: bench.app.control.ping(timeout=0.5), 60, "the worker")
                sides = [
                    (args.cap, bench.side("capped", args.cap)),
                    (reference_cap, bench.side("reference", reference_cap)),
                ]
            except BaseException:
                print(f"--- worker log (tail) ---\n{log.read_text(errors='replace')[-4000:]}")
                raise
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    report(args, sides)


if __name__ == "__main__":
    main()
