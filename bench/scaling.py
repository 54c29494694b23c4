"""Scaling: runs/s of 1-file 3-step jobs with 1, 2 and 4 worker processes on one host and with
two worker hosts, on PostgreSQL, in one invocation.

Every part runs on hosts made of network namespaces (tests/multihost/): Redis and PostgreSQL on
one, the API and beat on another, workers on one or two more, so the two-host figure pays the
same network hops as the one-host ones. For each shape the workers start and warm up, stop
consuming while the runs are submitted over HTTP, then consume again; the figure is the runs
divided by the time from the first job's start to the last job's end (both from the store).
CPU seconds per run of PostgreSQL, Redis and the worker processes, and how busy the machine
was, say where the bound is.

Needs root (network namespaces) and PostgreSQL's server binaries (/usr/lib/postgresql).

    .venv/bin/python bench/scaling.py [--runs 300]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import proc_cpu  # noqa: E402  (a sibling module of this script)
from throughput import FLOW, INVOICE, UDF  # noqa: E402

from shared.states import JobStatus  # noqa: E402
from shared.store.db import session_scope  # noqa: E402
from shared.store.models import Job  # noqa: E402
from tests.multihost.deployment import USER, Deployment, deploy  # noqa: E402
from tests.multihost.netns import Lab  # noqa: E402

PROJECT = f"{USER}/bench"
# (label, [(host, processes)]): every worker is one `celery worker` with that concurrency.
SHAPES = [
    ("1 host, 1 process", [("w1", 1)]),
    ("1 host, 2 processes", [("w1", 2)]),
    ("1 host, 4 processes", [("w1", 4)]),
    ("2 hosts, 2 processes each", [("w1", 2), ("w2", 2)]),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="jobs per shape")
    return parser.parse_args()


def submit(deployment: Deployment, binary: str, batch: str, runs: int) -> None:
    for number in range(runs):
        deployment.post(
            "flow/run_binary_async",
            {
                "binary_path": binary,
                "input_dir": f"{PROJECT}/data/input",
                "output_dir": f"{PROJECT}/out/{batch}/{number}",
                "tags": [batch],
            },
        )


def batch_span(deployment: Deployment, batch_ids: list[str]) -> tuple[int, float]:
    """(jobs complete, seconds from the first start to the last end) of a batch."""
    with session_scope(deployment.settings.sql_url, read_only=True) as session:
        done, first, last = session.execute(
            select(func.count(), func.min(Job.started_at), func.max(Job.finished_at)).where(
                Job.id.in_(batch_ids), Job.status == JobStatus.COMPLETE
            )
        ).one()
    return done, (last - first).total_seconds() if done else 0.0


def batch_ids(deployment: Deployment, since) -> list[str]:
    with session_scope(deployment.settings.sql_url, read_only=True) as session:
        return list(session.scalars(select(Job.id).where(Job.created_at >= since)))


def measure(deployment: Deployment, binary: str, label: str, workers, runs: int) -> dict:
    names = []
    for host, processes in workers:
        name = f"{host}-{processes}"
        deployment.start_worker(host, name, processes)
        names.append(name)
    for name in names:
        deployment.wait_ready(name)
    # Warm-up: pool processes import the tasks, open connections and load the binary.
    since = datetime.now(UTC)
    submit(deployment, binary, f"warm-{label}", 4 * len(names))
    deployment.wait_done(batch_ids(deployment, since), timeout=120)
    # The runs wait in Redis while the warm workers consume nothing, then all start at once.
    control = deployment.celery.control
    queue = deployment.celery.conf.task_default_queue
    hostnames = [f"{name}@{socket.gethostname()}" for name in names]
    control.cancel_consumer(queue, destination=hostnames, reply=True)
    since = datetime.now(UTC)
    submit(deployment, binary, f"run-{label}", runs)
    ids = batch_ids(deployment, since)
    pids = {name: deployment.processes.running[name].pid for name in names}
    mains = {f"{name}-main": pid for name, pid in pids.items()}
    services = {"postgres": "postgres", "redis": "redis-server", "s3": "weed"}
    before = proc_cpu.snapshot(mains, pids, services)
    ticks = cpu_ticks()
    control.add_consumer(queue, destination=hostnames, reply=True)
    deadline = time.monotonic() + 600
    while batch_span(deployment, ids)[0] < runs:
        assert time.monotonic() < deadline, f"{label}: the runs did not finish"
        time.sleep(0.2)  # polling the store for the batch's end
    after = proc_cpu.snapshot(mains, pids, services)
    busy = busy_share(ticks, cpu_ticks())
    for name in names:
        deployment.processes.stop(name)
    _, seconds = batch_span(deployment, ids)
    spent = after - before
    return {
        "runs_per_s": runs / seconds,
        "workers_cpu_ms": 1000 * sum(spent[n] + spent[f"{n}-main"] for n in names) / runs,
        "postgres_cpu_ms": 1000 * spent["postgres"] / runs,
        "redis_cpu_ms": 1000 * spent["redis"] / runs,
        "s3_cpu_ms": 1000 * spent["s3"] / runs,
        "busy": busy,
    }


def cpu_ticks() -> tuple[int, int]:
    """(all CPU ticks, idle and iowait ticks) of the machine so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time in use between two readings of cpu_ticks()."""
    total, idle = after[0] - before[0], after[1] - before[1]
    return (total - idle) / total if total else 0.0


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="flowbin-scaling-") as tmp:
        lab = Lab.create()
        try:
            with deploy(lab, Path(tmp)) as deployment:
                for host in ("w1", "w2"):
                    lab.add_host(host)
                deployment.start_worker("w1", "compiler", 1)
                deployment.wait_ready("compiler")
                deployment.put(f"{PROJECT}/data/input/invoice.txt", INVOICE)
                binary = deployment.compile(PROJECT, FLOW, {"tag.py": UDF})
                deployment.processes.stop("compiler")
                figures = [
                    (label, measure(deployment, binary, label, workers, args.runs))
                    for label, workers in SHAPES
                ]
        finally:
            lab.close()
    print(f"PostgreSQL and SeaweedFS, {args.runs} 1-file 3-step jobs per shape")
    print(f"{'':36} {'CPU ms per run':-^38}")
    header = f"{'shape':28} {'runs/s':>7} {'workers':>9} {'postgres':>9} {'redis':>7} {'s3':>7}"
    print(f"{header} {'busy':>5}")
    for label, figure in figures:
        print(
            f"{label:28} {figure['runs_per_s']:7.1f} {figure['workers_cpu_ms']:9.1f} "
            f"{figure['postgres_cpu_ms']:9.1f} {figure['redis_cpu_ms']:7.1f} "
            f"{figure['s3_cpu_ms']:7.1f} {figure['busy']:5.0%}"
        )


if __name__ == "__main__":
    main()
