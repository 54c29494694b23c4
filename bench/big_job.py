"""Submitting big jobs: how long ``run_binary_async`` takes to answer for input folders of many
sizes, now and as it was (the reference: every file recorded by the request and every first
step published by it, ``FLOWBIN_INPUT_BATCH_FILES`` unbounded and ``FLOWBIN_JOB_WINDOW=0``), in
one invocation; then how long a worker takes to list the biggest folder into the store. With
``--run N``, a job of N files then runs end to end on a worker of two slots: its time and
files/s, ``jobs/status`` read every 0.2 s while it runs (p50 / p99, beside the reference: the
previous summary, an aggregate over every file row of the job, timed at each read), and the RSS
of the worker's main process, its pool processes and this process (the API) at each read.

Submits go through the API's own view (Flask's test client, in this process) to a store in a
temporary folder (or ``--database-url``) and an embedded Redis. No worker runs while submits
are timed, so the timings are the request's alone; each submit is a new job of its own.

    .venv/bin/python bench/big_job.py [--sizes 1,1000,10000,100000] [--repeat 20]
        [--reference-max 10000] [--reference-repeat 3] [--run 0]
        [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, select

from api.app import create_app
from shared.config import Settings
from shared.ops.embedded_redis import EmbeddedRedis
from shared.store import migrate
from shared.store.models import Job

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proc_cpu  # noqa: E402
from big_store import old_summary  # noqa: E402
from flower_memory import rss_mb  # noqa: E402
from throughput import INVOICE, FlowbinSide, bench_user, start_worker, wait_until  # noqa: E402

# How often the end-to-end run's client reads jobs/status.
STATUS_INTERVAL = 0.2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,1000,10000,100000", help="input files per job")
    parser.add_argument("--repeat", type=int, default=20, help="submits timed per size")
    parser.add_argument(
        "--reference-max", type=int, default=10000, help="largest size timed the old way"
    )
    parser.add_argument("--reference-repeat", type=int, default=3, help="old-way submits a size")
    parser.add_argument(
        "--run", type=int, default=0, help="files of a job also run end to end (0: none)"
    )
    parser.add_argument("--database-url", default="", help="e.g. PostgreSQL (else SQLite)")
    return parser.parse_args()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed_submits(side: FlowbinSide, folder: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        side.post(
            "/api/v1/flow/run_binary_async",
            {
                "binary_path": side.binary_path,
                "input_dir": folder,
                "output_dir": f"{side.user}/bench/out-{uuid.uuid4().hex[:8]}",
            },
        )
        times.append(1000 * (time.perf_counter() - began))
    return times


def input_folder(settings: Settings, folder: str, files: int) -> str:
    """A drive folder of ``files`` invoices; its drive path."""
    real = settings.drive_root / folder
    real.mkdir(parents=True)
    for number in range(files):
        (real / f"f{number:06d}.txt").write_bytes(INVOICE)
    return folder


def submit(side: FlowbinSide, folder: str, output_dir: str) -> str:
    """A run of ``folder`` submitted through the API; its job id."""
    return side.post(
        "/api/v1/flow/run_binary_async",
        {"binary_path": side.binary_path, "input_dir": folder, "output_dir": output_dir},
    )["data"]["job_id"]


def listing_seconds(settings: Settings, side: FlowbinSide, folder: str, files: int) -> float:
    """Seconds from a submit until a worker has recorded all ``files`` files of the job."""
    job_id = submit(side, folder, f"{folder}-out")
    began = time.perf_counter()
    reader = create_engine(settings.sql_url)

    def listed() -> bool:
        with reader.connect() as conn:
            job = conn.execute(select(Job.__table__).where(Job.id == job_id)).first()
        return job.num_files == files and not job.inputs_pending

    wait_until(listed, 600, "the listing")
    took = time.perf_counter() - began
    side.client.get(f"/api/v1/jobs/cancel?job_id={job_id}", headers=side.headers)
    return took


def run_end_to_end(side: FlowbinSide, folder: str, files: int, worker_pid: int) -> None:
    """One job of ``files`` files run to its end, read as a polling client reads it."""
    job_id = submit(side, folder, f"{folder}-run")
    began = time.perf_counter()
    status_ms, summary_ms = [], []
    rss: dict[str, list[float]] = {"worker main": [], "worker pool": [], "API (this process)": []}
    url = side.settings.sql_url
    while True:
        read_at = time.perf_counter()
        response = side.client.get(f"/api/v1/jobs/status?job_id={job_id}", headers=side.headers)
        status_ms.append(1000 * (time.perf_counter() - read_at))
        assert response.status_code == 200, response.get_json()
        read_at = time.perf_counter()
        old_summary(url, job_id)
        summary_ms.append(1000 * (time.perf_counter() - read_at))
        rss["worker main"].append(rss_mb(worker_pid))
        rss["worker pool"].extend(rss_mb(pid) for pid in proc_cpu.children(worker_pid))
        rss["API (this process)"].append(rss_mb(os.getpid()))
        if response.get_json()["state"] == "DONE":
            break
        if time.perf_counter() - began > 60 + files:
            raise SystemExit(f"the {files}-file job did not end in {60 + files} s")
        time.sleep(STATUS_INTERVAL)  # a polling client's pace, not a wait for the job
    took = time.perf_counter() - began
    cur = json.loads(response.get_json()["cur_status"])  # the seed's JSON in a string
    assert cur["status"] == "COMPLETE", cur
    print(f"{files}-file job end to end: {took:.1f} s, {files / took:.1f} files/s")
    print(
        f"jobs/status while it ran ({len(status_ms)} reads): p50 {statistics.median(status_ms):.1f}"
        f" / p99 {percentile(status_ms, 0.99):.1f} ms; reference (every file row added up): "
        f"p50 {statistics.median(summary_ms):.1f} / p99 {percentile(summary_ms, 0.99):.1f} ms"
    )
    for label, samples in rss.items():
        print(f"RSS {label}: {min(samples):.0f}-{max(samples):.0f} MB")


def measure(args: argparse.Namespace, data_dir: Path, redis_url: str) -> None:
    sizes = [int(size) for size in args.sizes.split(",")]
    settings = Settings(data_dir=data_dir, database_url=args.database_url, redis_url=redis_url)
    migrate.upgrade(settings.sql_url)
    user = f"big-{uuid.uuid4().hex[:8]}"
    token = bench_user(settings, user)
    app = create_app(settings)
    celery_app = app.extensions["flowbin.celery"]
    log = data_dir / "worker.log"
    # A worker for the compile, stopped before anything is timed.
    worker = start_worker(settings, f"{user}-compile", 1, log)
    side = FlowbinSide(settings, app.test_client(), token, user)
    try:
        wait_until(lambda: celery_app.control.ping(timeout=0.5), 60, "the worker")
        side.prepare()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    old = replace(settings, input_batch_files=1 << 40, job_window=0)
    old_side = FlowbinSide(old, create_app(old).test_client(), token, user)
    old_side.binary_path = side.binary_path

    folders = {}
    for size in sizes:
        folders[size] = input_folder(settings, f"{user}/bench/in-{size}", size)
    store = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"store: {store}; submit answer time in ms, p50 / p99 / max")
    timed_submits(side, folders[sizes[0]], 3)  # warm-up: the views, the binary's cache
    for size in sizes:
        now = timed_submits(side, folders[size], args.repeat)
        line = (
            f"{size:>7} files: {statistics.median(now):8.1f} / {percentile(now, 0.99):8.1f} / "
            f"{max(now):8.1f} ({args.repeat} submits)"
        )
        if size <= args.reference_max:
            before = timed_submits(old_side, folders[size], args.reference_repeat)
            line += (
                f"; reference {statistics.median(before):9.1f} / {max(before):9.1f} "
                f"({args.reference_repeat} submits)"
            )
        print(line, flush=True)
        with celery_app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()

    biggest = max(sizes)
    worker = start_worker(settings, f"{user}-list", 2, log)
    try:
        wait_until(lambda: celery_app.control.ping(timeout=0.5), 60, "the worker")
        took = listing_seconds(settings, side, folders[biggest], biggest)
        if args.run:
            folder = input_folder(settings, f"{user}/bench/run-{args.run}", args.run)
            run_end_to_end(side, folder, args.run, worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print(
        f"listing {biggest} files into the store (a worker, {settings.input_batch_files} a "
        f"batch): {took:.1f} s, {biggest / took:.0f} files/s"
    )


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="flowbin-bigjob-") as tmp:
        data_dir = Path(tmp) / "var"
        data_dir.mkdir()
        with EmbeddedRedis(Path(tmp) / "redis") as server:
            measure(args, data_dir, server.url)


if __name__ == "__main__":
    main()
