"""Fairness and the job window (shared/engine/window.py), with the window and without it (the old
behaviour: ``FLOWBIN_JOB_WINDOW=0``) in one invocation, on one embedded Redis and one store.

For each side: a worker of ``--concurrency`` slots with that side's settings; a big job of
``--big-files`` files of the 3-step flow of throughput.py, then, once it runs and every file of
it is recorded, a 1-file job at the same priority: how many seconds after its submit the small
job started (``started_at``) and ended (``finished_at``), and how far the big job had come
then; the big job is then cancelled and the broker emptied. Then, in ``--rounds`` alternating
rounds, a lone big job of ``--lone-files`` files on each side, and raw Celery's as many chains
of three no-op tasks sent at once (the same options as Flowbin's steps): steps per second of
each, the median round.

    .venv/bin/python bench/fairness.py [--big-files 2000] [--lone-files 1000] [--window 8]
        [--concurrency 2] [--rounds 3] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, select

from api.app import create_app
from shared.accounts import credentials, users
from shared.config import Settings
from shared.drive import Drive
from shared.ops.embedded_redis import EmbeddedRedis
from shared.states import ENDED
from shared.store import migrate
from shared.store.db import session_scope
from shared.store.models import Job

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import INVOICE, CelerySide, FlowbinSide, start_worker, wait_until  # noqa: E402

STEPS = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-files", type=int, default=2000, help="files of the big job")
    parser.add_argument("--lone-files", type=int, default=1000, help="files of the lone job")
    parser.add_argument("--window", type=int, default=8, help="FLOWBIN_JOB_WINDOW of one side")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating lone-job rounds")
    parser.add_argument("--database-url", default="", help="e.g. PostgreSQL (else SQLite)")
    return parser.parse_args()


class Side:
    """One setting of the window: its API app, worker and bench user."""

    def __init__(self, name: str, settings: Settings, concurrency: int, tag: str):
        self.name = name
        self.settings = settings
        self.user = f"fair-{tag}-{name}"
        with session_scope(settings.sql_url) as session:
            users.create_user(session, self.user)
            token = credentials.create_token(session, self.user)
        Drive(settings.drive_root).space_home(self.user)
        app = create_app(settings)
        self.celery_app = app.extensions["flowbin.celery"]
        with self.celery_app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()
        self.log = settings.data_dir / f"worker-{name}.log"
        self.worker = start_worker(settings, f"fair-{tag}-{name}", concurrency, self.log)
        wait_until(lambda: self.celery_app.control.ping(timeout=0.5), 60, "the worker")
        self.flowbin = FlowbinSide(settings, app.test_client(), token, self.user)
        self.flowbin.prepare()
        self.reader = create_engine(settings.sql_url)

    def folder(self, label: str, files: int) -> str:
        path = f"{self.user}/bench/{label}"
        real = self.settings.drive_root / path
        real.mkdir(parents=True)
        for number in range(files):
            (real / f"f{number:06d}.txt").write_bytes(INVOICE)
        return path

    def submit(self, input_dir: str, output: str) -> str:
        return self.flowbin.post(
            "/api/v1/flow/run_binary_async",
            {
                "binary_path": self.flowbin.binary_path,
                "input_dir": input_dir,
                "output_dir": f"{self.user}/bench/{output}",
                "settings": {"priority": 5},
            },
        )["data"]["job_id"]

    def job(self, job_id: str) -> Job:
        with self.reader.connect() as conn:
            return conn.execute(select(Job.__table__).where(Job.id == job_id)).first()

    def ended(self, job_id: str) -> bool:
        return self.job(job_id).status in ENDED

    def stop(self) -> None:
        self.worker.terminate()
        self.worker.wait(timeout=30)


def small_behind_big(side: Side, big_files: int) -> dict:
    big_dir, small_dir = side.folder("big", big_files), side.folder("small", 1)
    big = side.submit(big_dir, "out-big")

    def big_is_under_way() -> bool:
        job = side.job(big)
        return job.started_at is not None and not job.inputs_pending

    # As a client would meet it: the big job already running, every file of it recorded.
    wait_until(big_is_under_way, 600, "the big job to start")
    submitted = time.time()
    small = side.submit(small_dir, "out-small")
    wait_until(lambda: side.ended(small), 600, "the small job")
    job, big_then = side.job(small), side.job(big)
    started = job.started_at.timestamp() - submitted
    ended = job.finished_at.timestamp() - submitted
    side.flowbin.client.get(f"/api/v1/jobs/cancel?job_id={big}", headers=side.flowbin.headers)
    wait_until(lambda: side.ended(big), 60, "the big job to stop")
    with side.celery_app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    return {"started": started, "ended": ended, "big_done": big_then.files_done}


def lone_big_job(side: Side, files: int, number: int) -> float:
    """Steps per second of one job of ``files`` files, from its submit to its end."""
    folder = side.folder(f"lone{number}", files)
    began = time.perf_counter()
    job_id = side.submit(folder, f"out-lone{number}")
    wait_until(lambda: side.ended(job_id), 60 + files, "the lone big job")
    elapsed = time.perf_counter() - began
    assert side.job(job_id).status == "complete", side.job(job_id).message
    return files * STEPS / elapsed


def raw_steps_per_second(side: Side, chains: int) -> float:
    """Steps per second of ``chains`` raw Celery chains of three no-op tasks sent at once."""
    raw = CelerySide(side.celery_app, side.settings.redis_url)
    raw.run(f"warm-{uuid.uuid4().hex[:6]}", 4)
    elapsed = raw.run(f"lone-{uuid.uuid4().hex[:6]}", chains)
    return chains * STEPS / elapsed


def measure(args: argparse.Namespace, data_dir: Path, redis_base: str) -> None:
    tag = uuid.uuid4().hex[:8]
    base = Settings(data_dir=data_dir, database_url=args.database_url)
    migrate.upgrade(base.sql_url)
    sides = {}
    try:
        # Both sides' workers run throughout, each on its own Redis database; the one not
        # measured meanwhile waits on an empty queue.
        for number, (name, window) in enumerate((("window", args.window), ("unlimited", 0))):
            settings = replace(base, redis_url=f"{redis_base}/{number + 1}", job_window=window)
            sides[name] = Side(name, settings, args.concurrency, tag)
        results = {name: small_behind_big(side, args.big_files) for name, side in sides.items()}
        # Rounds alternate the sides (and raw Celery), so a slow spell of a shared host falls
        # on every side of a round; the median round is reported.
        rounds = []
        for number in range(args.rounds):
            found = {
                name: lone_big_job(side, args.lone_files, number) for name, side in sides.items()
            }
            found["raw"] = raw_steps_per_second(sides["window"], args.lone_files)
            rounds.append(found)
            print(
                f"round {number + 1}: lone big job with the window {found['window']:6.1f} "
                f"steps/s, unlimited {found['unlimited']:6.1f}, raw Celery {found['raw']:6.1f}",
                flush=True,
            )
    except BaseException:
        for side in sides.values():
            print(f"--- {side.name} worker log (tail) ---")
            print(side.log.read_text(errors="replace")[-3000:])
        raise
    finally:
        for side in sides.values():
            side.stop()
    median = sorted(rounds, key=lambda found: found["window"] / found["raw"])[len(rounds) // 2]

    store = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(
        f"store: {store}, worker concurrency: {args.concurrency}, big job {args.big_files} "
        f"files, lone job {args.lone_files} files, window {args.window} vs unlimited"
    )
    for name, found in results.items():
        print(
            f"{name:>9}: a 1-file job submitted behind the big one started after "
            f"{found['started']:6.2f} s, ended after {found['ended']:6.2f} s "
            f"(the big job had {found['big_done']} files done)"
        )
    window, unlimited = results["window"], results["unlimited"]
    print(f"the small job ends {unlimited['ended'] / window['ended']:.1f}x sooner with the window")
    print(
        f"median round, lone big job: window {median['window']:.1f} steps/s, unlimited "
        f"{median['unlimited']:.1f}, raw Celery {median['raw']:.1f}; window / raw "
        f"{median['window'] / median['raw']:.2f}, unlimited / raw "
        f"{median['unlimited'] / median['raw']:.2f}, window / unlimited "
        f"{median['window'] / median['unlimited']:.2f}"
    )
    print(json.dumps({"fairness": results, "rounds": rounds}))


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="flowbin-fairness-") as tmp:
        data_dir = Path(tmp) / "var"
        data_dir.mkdir()
        with EmbeddedRedis(Path(tmp) / "redis") as server:
            measure(args, data_dir, server.url.rsplit("/", 1)[0])


if __name__ == "__main__":
    main()
