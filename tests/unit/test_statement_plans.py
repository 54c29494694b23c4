"""The statements every step and request runs find their rows by index on both stores.

A statement that scans a table costs more with every job the store keeps: a correlated
subquery in an UPDATE's RETURNING once made SQLite scan all jobs on every step, and the
benchmark slowed round after round. PostgreSQL is asked with sequential scans disabled, so a
``Seq Scan`` in its plan means no index can serve the statement (on tables this small it would
otherwise prefer one anyway).
"""

import pytest
from sqlalchemy import text

from shared.accounts import credentials
from shared.engine import paused_files, snapshot, statements
from shared.jobs import counters, ids, job_status, page_facts, store
from shared.jobs import log as joblog
from shared.states import JobStatus
from shared.store.db import connection_scope
from shared.store.prepared import Prepared

HOT_STATEMENTS = {
    "claim": statements.CLAIM,
    "file outcomes": statements.FILE_OUTCOMES,
    "count finished file": statements.COUNT_FINISHED,
    "count record errors": statements.COUNT_RECORD_ERRORS,
    "error counts of a job": counters._ERROR_COUNTS,
    "set error counts of a job": counters._SET_ERROR_COUNTS,
    "job snapshot": snapshot._SNAPSHOT,
    **{f"advance {key}": statement for key, statement in statements.ADVANCE.items()},
    **{f"transition to {target}": store._transition_statement(target) for target in JobStatus},
    "job id check": ids._JOB_EXISTS,
    "token check": credentials._CREDENTIAL_BY_HASH,
    "job status read": Prepared(job_status._STATUS),
    "job with its totals": Prepared(counters._JOB_WITH_SHARDS),
    "log lines": joblog._insert_lines(3),
    # Run after a step that read its job as paused (shared/engine/paused_files.py).
    "wait for the job's writers": paused_files._WAIT_FOR_JOB_WRITERS,
    "token for a file stopped at a pause": paused_files._GIVE_TOKEN,
}
# Statements only PostgreSQL runs (SQLite has no INSERT or UPDATE inside a WITH).
POSTGRESQL_ONLY = {
    **{
        f"advance and log {key}": statements.advance_and_log(*key, 3)
        for key in ((False, False), (True, True))
    },
    "count a step in a shard": counters.COUNT_STEP["postgresql"],
    "claim that starts a queued job": statements.CLAIM_AND_START,
    "a list page's facts": Prepared(page_facts._FACTS["postgresql"]),
    "claim that starts a queued job and reads its snapshot": statements.CLAIM_START_AND_SNAPSHOT,
    **{
        f"end a file and log it, refill {refill}": statements.end_file_and_log(
            False, False, 3, refill
        )
        for refill in (False, True)
    },
    **{
        f"transition to {target} and log it": store._transition_and_log(target)
        for target in (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.STOPPED_AT_CHECKPOINT)
    },
}


class _AnyValue(dict):
    """Parameters for a plan: the values do not matter, only that every one is given."""

    def __missing__(self, _name):
        return None


def scans(plan: list[str]) -> list[str]:
    """The plan's lines that read a whole table: SQLite's ``SCAN <table>`` (not its scan of a
    constant row) and PostgreSQL's ``Seq Scan``."""
    sqlite_scans = [
        line for line in plan if line.startswith("SCAN ") and "CONSTANT ROW" not in line
    ]
    return sqlite_scans + [line for line in plan if "Seq Scan" in line]


def plan_of(url: str, statement) -> list[str]:
    with connection_scope(url) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))
        return statement.plan(conn, _AnyValue())


@pytest.mark.parametrize("name", sorted(HOT_STATEMENTS))
def test_a_hot_statement_reads_rows_by_index_not_by_scanning_a_table(store_url, name):
    plan = plan_of(store_url, HOT_STATEMENTS[name])
    assert plan or name == "log lines", "the database gave no plan"
    assert scans(plan) == [], "\n".join(plan)


@pytest.mark.parametrize("name", sorted(POSTGRESQL_ONLY))
def test_a_postgresql_statement_reads_rows_by_index(postgresql_store, name):
    plan = plan_of(postgresql_store, POSTGRESQL_ONLY[name])
    assert plan, "the database gave no plan"
    assert scans(plan) == [], "\n".join(plan)
