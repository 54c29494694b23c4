"""Statements per run on PostgreSQL: ``--runs`` runs of throughput.py's 3-step flow over
``--files`` input files each (one by default), submitted through the API's views (in this
process) and run by a real worker, with the server
logging every statement of the bench's own database (``log_statement = all``, set on that
database alone, then reset), counted by kind from the server's log.

Wall-clock throughput on a shared 2-core host moves by more than a statement or two per run is
worth; the count does not move. Each statement (one in autocommit, one in a transaction, or
a BEGIN, COMMIT or ROLLBACK) is one round trip to the server. Needs a superuser (to set
``log_statement``) and the server's log file (``--log-file``; Debian's is the default).

    .venv/bin/python bench/statements.py [--runs 50] [--files 1]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/flowbin_bench_statements]
        [--log-file /var/log/postgresql/postgresql-15-main.log]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api.app import create_app  # noqa: E402
from bench.list_latency import ensure_database  # noqa: E402
from bench.throughput import (  # noqa: E402
    INVOICE,
    WARMUP_RUNS,
    FlowbinSide,
    bench_user,
    start_worker,
    wait_until,
)
from shared.config import Settings  # noqa: E402
from shared.ops.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.states import REPORTED_DONE  # noqa: E402
from shared.store import migrate  # noqa: E402

# A statement the server logged: "LOG:  statement: BEGIN" or "LOG:  execute <name>: SELECT ...".
_LOGGED = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)")


def kind_of(sql: str) -> str:
    """A statement's kind: its first three words, or the name of its first CTE for a WITH."""
    words = sql.split()
    if not words:
        return "(empty: a pooled connection's ping)"
    if words[0] == "WITH":
        return f"WITH {words[1]}"
    return " ".join(words[:3])


def logged_statements(log: Path, offset: int, database: str) -> Counter:
    """The statements of ``database`` the server logged past ``offset`` bytes, by kind."""
    marker = f"@{database} "
    kinds: Counter = Counter()
    with log.open("rb") as lines:
        lines.seek(offset)
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            found = _LOGGED.search(line) if marker in line else None
            if found:
                kinds[kind_of(found.group(1))] += 1
    return kinds


def set_logging(url: str, value: str | None) -> None:
    database = make_url(url).database
    server = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        setting = "RESET log_statement" if value is None else f"SET log_statement = '{value}'"
        conn.execute(text(f'ALTER DATABASE "{database}" {setting}'))
    server.dispose()


def measure(args: argparse.Namespace, data_dir: Path, redis_url: str) -> Counter:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(data_dir=data_dir, database_url=args.database_url, redis_url=redis_url)
    user = f"bench-{tag}"
    token = bench_user(settings, user)
    app = create_app(settings)
    worker = start_worker(settings, f"bench-{tag}", 2, data_dir / "worker.log")
    try:
        celery_app = app.extensions["flowbin.celery"]
        wait_until(lambda: celery_app.control.ping(timeout=0.5), 60, "the worker")
        flowbin = FlowbinSide(settings, app.test_client(), token, user)
        flowbin.prepare()
        for index in range(1, args.files):  # beside the invoice prepare() uploads
            flowbin.upload(f"data/input/invoice-{index}.txt", INVOICE)
        flowbin.run(f"{tag}-warm", WARMUP_RUNS)  # processes import, connect, load the binary
        offset = args.log_file.stat().st_size
        since = datetime.now(UTC)
        flowbin.run(f"{tag}-counted", args.runs)
        wait_until(lambda: flowbin.count(REPORTED_DONE, since) >= args.runs, 60, "the runs")
        return logged_statements(args.log_file, offset, make_url(args.database_url).database)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--files",
        type=int,
        default=1,
        help="input files per run; past the job window (64) files wait for a place",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/flowbin_bench_statements",
    )
    parser.add_argument(
        "--log-file", type=Path, default=Path("/var/log/postgresql/postgresql-15-main.log")
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url: a PostgreSQL database (SQLite has no round trips)")
    if not args.log_file.is_file():
        raise SystemExit(f"--log-file: no server log at {args.log_file}")
    ensure_database(args.database_url)
    # Read at a connection's start: every connection the bench's processes open from here on
    # logs, the pooled one the migration opens (which the API's views then use) included.
    set_logging(args.database_url, "all")
    try:
        migrate.upgrade(args.database_url)
        with tempfile.TemporaryDirectory(prefix="flowbin-bench-") as tmp:
            data_dir = Path(tmp) / "var"
            data_dir.mkdir()
            with EmbeddedRedis(Path(tmp) / "redis") as server:
                kinds = measure(args, data_dir, server.url)
    finally:
        set_logging(args.database_url, None)
    # The bench's own polls of the store (throughput.py's count) are not Flowbin's.
    polls = kinds.pop("SELECT count(*) AS", 0)
    total = sum(kinds.values())
    files = args.runs * args.files
    print(
        f"{args.runs} runs of {args.files} file(s), 3 steps each, on PostgreSQL "
        f"(the bench's {polls} polls left out)"
    )
    for kind, count in kinds.most_common():
        print(f"  {count / args.runs:8.2f} per run {count / files:6.2f} per file  {kind}")
    print(
        f"statements per run: {total / args.runs:.2f}, per file: {total / files:.2f} "
        "(raw Celery: 0)"
    )


if __name__ == "__main__":
    main()
