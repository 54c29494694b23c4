"""Does keeping a job's totals on its row (shared/jobs/counters.py) make many workers wait on that
row? Steps/s of one job's files advanced by N concurrent connections on PostgreSQL, each step a
claim and an advance as a worker runs them (shared/engine/statements.py), with the advance that
also counts the step on the job's row and, as the reference, the advance as it was before
(without that UPDATE), and the first design, which counted on the job's row, in alternating
rounds; and how often a connection was seen waiting on a
lock (pg_stat_activity, sampled every 10 ms).

    .venv/bin/python bench/counter_contention.py --database-url postgresql+psycopg://... \\
        [--connections 1 4 8] [--steps 3000] [--rounds 3]

It works in a schema of its own (``counter_contention``) in that database, dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.engine import statements  # noqa: E402
from shared.jobs.log import JobLogger, insert_lines_if, line_params  # noqa: E402
from shared.store.db import engine_for, statement_scope  # noqa: E402
from shared.store.migrate import upgrade  # noqa: E402
from shared.store.models import Job  # noqa: E402
from shared.store.prepared import Prepared  # noqa: E402

SCHEMA = "counter_contention"
STEPS_PER_FILE = 3


def _old_advance_and_log(lines: int) -> Prepared:
    """The advance with its log lines as it was before the job's totals: no UPDATE of jobs."""
    moved = statements._advance_statement(False, False, file_ends=False).cte("moved")
    logged = insert_lines_if(lines, select(moved.c.job_status).exists()).cte("logged")
    return Prepared(select(moved.c.job_status).add_cte(logged))


def _counted_on_the_job_row(lines: int) -> Prepared:
    """The first design: the step counted on the job's row, in the advance's statement."""
    moved = statements._advance_statement(False, False, file_ends=False).cte("moved")
    logged = insert_lines_if(lines, select(moved.c.job_status).exists()).cte("logged")
    jobs = Job.__table__
    counted = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_job_id"), select(moved.c.job_status).exists())
        .values(steps_done=jobs.c.steps_done + 1)
        .cte("counted")
    )
    return Prepared(select(moved.c.job_status).add_cte(logged).add_cte(counted))


VARIANTS = {
    "in shards (now)": statements.advance_and_log(False, False, 3),
    "on the job's row": _counted_on_the_job_row(3),
    "uncounted (before)": _old_advance_and_log(3),
}


def prepare(server_url: str) -> str:
    with engine_for(server_url).begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    url = url.render_as_string(hide_password=False)
    upgrade(url)
    with engine_for(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, is_admin, created_at) "
                "VALUES (1, 'b', true, now())"
            )
        )
    return url


def new_job(url: str, files: int) -> str:
    job_id = str(uuid.uuid4())
    with engine_for(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, owner_id, kind, status, message, flow_type, binary_path,"
                " binary_hash, input_dir, output_dir, settings, priority, step_timeout,"
                " log_prefix, log_to_timeline, trace_id, num_files, num_steps, files_done,"
                " reviewer, review_state, created_at) VALUES (:id, 1, 'flow', 'running', '',"
                " 'single_flow', '', '', '', '', '{}', 0, 0, '', false, 't', :files, 99, 0, '',"
                " 'NONE', now())"
            ),
            {"id": job_id, "files": files},
        )
        conn.execute(
            text(
                "INSERT INTO job_files (job_id, file_index, file_name, status, next_step,"
                " attempts, next_task_id, num_records, num_errors, num_checkpoint_failed,"
                " num_filtered, error_counts, updated_at) SELECT :id, n, n || '.txt', 'pending',"
                " 0, 0, 'token-' || n, 0, 0, 0, 0, '{}', now() FROM generate_series(0, :last) n"
            ),
            {"id": job_id, "last": files - 1},
        )
    return job_id


def worker(url: str, job_id: str, files: range, advance: Prepared, waits: list) -> None:
    for index in files:
        token = f"token-{index}"
        for step in range(STEPS_PER_FILE):
            now = datetime.now(UTC)
            params = {"b_job_id": job_id, "b_file_index": index, "step": step, "now": now}
            with statement_scope(url) as conn:
                claimed = statements.CLAIM.first(
                    conn,
                    params
                    | {"task_id": token, "max_attempts": 9, "until": now + timedelta(minutes=5)},
                )
                assert claimed is not None, (index, step)
                logger = JobLogger(job_id, token, "t")
                for number in range(3):
                    logger.info(f"line {number}")
                following = str(uuid.uuid4())
                moved = advance.first(
                    conn,
                    params
                    | {"task_id": token, "filtered": 0, "next_token": following}
                    | line_params(logger.take()),
                )
                assert moved is not None
                token = following


def run(url: str, connections: int, steps: int, advance: Prepared) -> tuple[float, int, int]:
    files = max(connections, steps // STEPS_PER_FILE)
    job_id = new_job(url, files)
    per = files // connections
    threads = [
        threading.Thread(
            target=worker, args=(url, job_id, range(n * per, (n + 1) * per), advance, [])
        )
        for n in range(connections)
    ]
    samples, lock_waits = 0, 0
    done = threading.Event()

    def sample() -> None:
        nonlocal samples, lock_waits
        with engine_for(url).connect() as conn:
            while not done.is_set():
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar()
                conn.rollback()
                samples += 1
                lock_waits += bool(waiting)
                time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    done.set()
    sampler.join()
    with engine_for(url).connect() as conn:
        counted = conn.execute(
            text(
                "SELECT steps_done + (SELECT COALESCE(SUM(steps_done), 0) FROM job_step_counts "
                "WHERE job_id = :id) FROM jobs WHERE id = :id"
            ),
            {"id": job_id},
        ).scalar()
    assert counted in (0, per * connections * STEPS_PER_FILE), counted
    return per * connections * STEPS_PER_FILE / elapsed, lock_waits, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = prepare(args.database_url)
    try:
        for connections in args.connections:
            found: dict[str, list[tuple[float, int, int]]] = {name: [] for name in VARIANTS}
            for _ in range(args.rounds):
                for name, advance in VARIANTS.items():
                    found[name].append(run(url, connections, args.steps, advance))
            for name, rounds in found.items():
                rate = statistics.median(r[0] for r in rounds)
                waits = sum(r[1] for r in rounds)
                samples = sum(r[2] for r in rounds)
                print(
                    f"{connections} connections, {name:20s}: {rate:7.0f} steps/s "
                    f"(rounds {', '.join(f'{r[0]:.0f}' for r in rounds)}), "
                    f"lock waits seen in {waits} of {samples} samples",
                    flush=True,
                )
    finally:
        with engine_for(args.database_url).begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))


if __name__ == "__main__":
    main()
