"""Instructions per run, counted by callgrind: throughput.py's 1-file run of its 3-step flow,
submitted through the API's views and its three steps run by StepRunner, all in one process,
for this checkout and a reference commit in the same invocation. The submit's publish of the
first step is counted; the publishes of the next steps, which the worker's task makes after
StepRunner returns, are not.

Wall time and CPU time on a shared host move by a factor of two within an hour, and a file's
creation costs what the disk's recent deletions make it cost (bench/README.md); the count of
instructions a run executes in user space does not move with either. So a change of a few
percent in the submit's or a step's own work shows here when throughput.py cannot show it. What
it leaves out: the kernel's work (file system, sockets), the worker's main process, Redis and
PostgreSQL, and waiting; throughput.py measures those. The store is SQLite unless
``--database-url`` names another; the drive and SQLite live on tmpfs (/dev/shm), Redis is
embedded. The reference is checked out in a temporary git worktree and run with this
checkout's copy of this script. A ``--database-url`` should name a database of its own: both
sides migrate it, the reference first, and a reference older than the schema an earlier
invocation left there cannot run on it.

    .venv/bin/python bench/instructions.py [--runs 40] [--reference HEAD~1]
        [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Runs before the measured ones: each process's first run imports, compiles and caches.
WARMUP_RUNS = 5
# Called between the measured phases, where callgrind writes the counts so far and starts
# again (--dump-before); nothing else this process runs calls it.
PHASE_MARK = "os_sched_yield*"
PHASES = ("setup", "submit", "steps")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs counted on each side")
    parser.add_argument(
        "--reference", default="HEAD~1", help="the commit to compare with (default HEAD~1)"
    )
    parser.add_argument("--database-url", default="", help="e.g. PostgreSQL (else SQLite)")
    # Internal: how the counted process is started (under valgrind, in a checkout).
    parser.add_argument("--phases-of", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def run_phases(checkout: Path, runs: int, database_url: str) -> None:
    """In the counted process: set up a store, a user and the compiled binary from
    ``checkout``'s code, then submit ``runs`` runs, then run their steps, marking each phase."""
    sys.path[:0] = [str(checkout), str(Path(__file__).resolve().parent)]
    import throughput as bench  # its sibling here: the flow, the bench user, the API side
    from sqlalchemy import select

    import shared
    from api.app import create_app
    from shared.config import Settings
    from shared.engine.runner import StepRunner
    from shared.engine.scheduling import StepCall
    from shared.ops.embedded_redis import EmbeddedRedis
    from shared.runs.compile import run_compile
    from shared.store import migrate
    from shared.store.db import session_scope
    from shared.store.models import JobFile

    if Path(shared.__file__).resolve().parents[1] != checkout.resolve():
        raise SystemExit(f"imported {shared.__file__}, not {checkout}'s code: check PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="flowbin-instructions-", dir="/dev/shm") as tmp:
        data_dir = Path(tmp) / "var"
        data_dir.mkdir()
        with EmbeddedRedis(Path(tmp) / "redis") as server:
            settings = Settings(data_dir=data_dir, database_url=database_url, redis_url=server.url)
            migrate.upgrade(settings.sql_url)
            user = f"bench-{os.getpid()}"
            token = bench.bench_user(settings, user)
            side = bench.FlowbinSide(settings, create_app(settings).test_client(), token, user)
            # Compiled here: no worker runs in this process's bench.
            run_compile(settings, side.ask_compile(), "instructions-compile")
            runner = StepRunner(settings)

            def submit(batch: str, count: int) -> None:
                for index in range(count):
                    side.submit(f"{user}-{batch}-{index}")

            def run_steps(batch: str) -> None:
                # What the API published is left in Redis: the steps run here, each file's
                # first step by the token the store holds for it, then the ones each returns.
                with session_scope(settings.sql_url) as session:
                    files = session.execute(
                        select(JobFile.job_id, JobFile.next_task_id).where(
                            JobFile.job_id.like(f"{user}-{batch}-%")
                        )
                    ).all()
                for job_id, token in files:
                    call = StepCall(job_id, 0, 0, token)
                    while call is not None:
                        following = runner.run(call, time_limit=bench.STEP_LIMIT)
                        call = following.call if following is not None else None

            submit("warm", WARMUP_RUNS)
            run_steps("warm")
            os.sched_yield()
            submit("counted", runs)
            os.sched_yield()
            run_steps("counted")
            os.sched_yield()


def counted(checkout: Path, runs: int, database_url: str, out: Path) -> dict[str, float]:
    """Millions of instructions per run of each phase, for ``checkout``'s code."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--dump-before={PHASE_MARK}",
        f"--callgrind-out-file={out}/callgrind.%p",
        sys.executable,
        str(Path(__file__).resolve()),
        "--phases-of",
        str(checkout),
        "--runs",
        str(runs),
        "--database-url",
        database_url,
    ]
    log = out / "valgrind.log"
    with log.open("wb") as sink:
        finished = subprocess.run(
            command,
            cwd=checkout,
            env={**os.environ, "PYTHONPATH": str(checkout)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    if finished.returncode != 0:
        raise SystemExit(f"the counted run failed:\n{log.read_text(errors='replace')[-3000:]}")
    # One file per part up to each mark, numbered in order: setup, submit, steps. What ran
    # after the last mark (the exit) is in the file without a number.
    parts = sorted(out.glob("callgrind.*.*"), key=lambda path: int(path.suffix[1:]))
    totals = [_total(path) for path in parts]
    if len(totals) != len(PHASES):
        raise SystemExit(f"callgrind wrote {len(totals)} parts, not {len(PHASES)}: see {log}")
    return {phase: totals[i] / runs / 1e6 for i, phase in enumerate(PHASES) if phase != "setup"}


def _total(path: Path) -> int:
    with path.open() as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"no total in {path}")


def main() -> None:
    args = parse_args()
    if args.phases_of is not None:
        run_phases(args.phases_of, args.runs, args.database_url)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    reference = subprocess.run(
        ["git", "rev-parse", "--short", args.reference],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="flowbin-instructions-") as tmp:
        worktree = Path(tmp) / "reference"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(worktree), reference],
            cwd=REPO,
            check=True,
        )
        try:
            sides = {}
            for number, (name, checkout) in enumerate(
                ((f"reference {reference}", worktree), ("this checkout", REPO))
            ):
                out = Path(tmp) / f"counts-{number}"
                out.mkdir()
                sides[name] = counted(checkout, args.runs, args.database_url, out)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=True
            )
    store = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"store: {store}; millions of instructions per run, {args.runs} runs a side:")
    print(f"  {'':<24}{'submit':>10}{'3 steps':>10}{'total':>10}")
    for name, figures in sides.items():
        total = figures["submit"] + figures["steps"]
        print(f"  {name:<24}{figures['submit']:10.2f}{figures['steps']:10.2f}{total:10.2f}")
    before, after = sides.values()
    change = {phase: after[phase] / before[phase] - 1 for phase in before}
    print(
        f"this checkout against the reference: submit {change['submit']:+.1%}, "
        f"steps {change['steps']:+.1%}"
    )


if __name__ == "__main__":
    main()
