"""The statements every step runs, in one place: Core statements built once and run as Prepared
statements (shared/store/prepared.py), because SQLAlchemy's per-execution work costs more than the
SQL here. Each passes ``updated_at`` itself (a prepared statement runs no column defaults).

- ``CLAIM``: a step takes its file, if its message carries the token the store expects and the
  job may run; RETURNs the file's name and the job's state. ``CLAIM_AND_START`` (PostgreSQL)
  also moves a queued job to running; ``CLAIM_START_AND_SNAPSHOT`` also reads the job's
  snapshot, for a worker process that has not seen the job yet.
- ``ADVANCE[(failed, stopped_at_checkpoint, file_ends)]``: the compare-and-set that moves a file
  past its step; ``advance_and_log`` is the same with the step's log lines, as one statement.
- ``COUNT_FINISHED``: one more finished file of the job; ``end_file_and_log`` (PostgreSQL) is a
  file's last advance, this count, its log lines and the release of the job's next waiting
  file, as one statement.
- ``COUNT_RECORD_ERRORS``: more records of a job with a maxParseExceptions failed a step
  (shared/engine/budget.py); never run for a job without one.
- ``FILE_OUTCOMES``: how every file of the job ended, with the job's state.
"""

from __future__ import annotations

import functools

from sqlalchemy import Update, bindparam, case, func, or_, select, true, update
from sqlalchemy.sql import ColumnElement

from shared.engine import window
from shared.engine.snapshot import SNAPSHOT_COLUMNS
from shared.jobs.counters import step_counted
from shared.jobs.log import insert_lines_if
from shared.jobs.store import transition_values
from shared.states import RUNNABLE, FileStatus, JobStatus
from shared.store.models import Job, JobFile
from shared.store.prepared import Prepared, one_of

_files = JobFile.__table__
_jobs = Job.__table__
_THIS_FILE = (
    _files.c.job_id == bindparam("b_job_id"),
    _files.c.file_index == bindparam("b_file_index"),
)
# The job's state, read in the same statement that changes one of its files. Keyed by the
# bound job id, not correlated to the file's row: in an UPDATE's RETURNING, SQLite plans a
# correlated subquery as a scan of the whole jobs table, so every step slowed as jobs piled up.
_JOB_STATUS = select(_jobs.c.status).where(_jobs.c.id == bindparam("b_job_id")).scalar_subquery()
_NOW = bindparam("now", type_=_files.c.updated_at.type)
_TOKEN_TYPE = _files.c.next_task_id.type
_CLAIM = (
    update(_files)
    .where(
        *_THIS_FILE,
        _files.c.next_step == bindparam("step"),
        _files.c.status == FileStatus.PENDING,
        or_(
            _files.c.next_task_id == bindparam("task_id"),
            _files.c.claimed_by == bindparam("task_id"),
        ),
        _files.c.attempts < bindparam("max_attempts"),
        select(_jobs.c.id)
        .where(_jobs.c.id == bindparam("b_job_id"), one_of(_jobs.c.status, sorted(RUNNABLE)))
        .exists(),
    )
    .values(
        attempts=_files.c.attempts + 1,
        claimed_by=bindparam("task_id"),
        next_task_id=None,
        claimed_until=bindparam("until", type_=_files.c.claimed_until.type),
        updated_at=_NOW,
    )
    .returning(_files.c.file_name, _JOB_STATUS.label("job_status"))
)
CLAIM = Prepared(_CLAIM)


def _claim_and_start(with_snapshot: bool) -> Prepared:
    """PostgreSQL: ``CLAIM``, and in the same statement the move of a queued job to running
    that its first step makes (``transition_job``'s, without a round trip of its own). The
    job's row is taken only if no one holds it (SKIP LOCKED): this statement then holds its
    file's row and never waits for the job's, so it cannot close a cycle with a transaction
    that takes the job's row and then the file's. Skipped so, or raced, the job is still
    queued: ``started`` is false and the caller makes the move itself, as on SQLite.
    ``with_snapshot`` also selects the job's SNAPSHOT_COLUMNS (a plain read of its row, which
    takes no lock), instead of a statement of their own before the claim."""
    claimed = _CLAIM.cte("claimed")
    free_queued_job = (
        select(_jobs.c.id)
        .where(_jobs.c.id == bindparam("b_job_id"), one_of(_jobs.c.status, [JobStatus.QUEUED]))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    started = (
        update(_jobs)
        .where(_jobs.c.id == free_queued_job, select(claimed.c.file_name).exists())
        .values(**transition_values(JobStatus.RUNNING))
        .returning(_jobs.c.id)
        .cte("started")
    )
    outcome = select(
        claimed.c.file_name,
        claimed.c.job_status,
        select(started.c.id).exists().label("started"),
    ).add_cte(started)
    if with_snapshot:
        outcome = outcome.add_columns(*SNAPSHOT_COLUMNS).select_from(
            claimed.join(_jobs, _jobs.c.id == bindparam("b_job_id"))
        )
    return Prepared(outcome)


CLAIM_AND_START = _claim_and_start(with_snapshot=False)
CLAIM_START_AND_SNAPSHOT = _claim_and_start(with_snapshot=True)
# Every file's outcome, each row with the job's state (one read decides whether the job ends).
FILE_OUTCOMES = Prepared(
    select(
        _files.c.file_name,
        _files.c.status,
        _files.c.num_records,
        _files.c.num_errors,
        _JOB_STATUS.label("job_status"),
        # True while a big input folder is still being listed: more files are to come.
        select(_jobs.c.inputs_pending)
        .where(_jobs.c.id == bindparam("b_job_id"))
        .scalar_subquery()
        .label("inputs_pending"),
    )
    .where(_files.c.job_id == bindparam("b_job_id"))
    .order_by(_files.c.file_index)
)


def _advance_statement(failed: bool, stopped_at_checkpoint: bool, file_ends: bool) -> Update:
    """The compare-and-set that moves a file past its step, and remembers where records first
    failed or stopped (where a retry starts); at the file's last step it also records how the
    file ended. It RETURNs the job's state. The next step's token is stored only while the job
    may run: a pause or cancel committed first stops the file here, with no message expected."""
    values = {
        "next_step": _files.c.next_step + 1,
        "attempts": 0,
        "claimed_by": None,
        "claimed_until": None,
        "advanced_by": bindparam("task_id"),
        "next_task_id": None,
        "num_filtered": _files.c.num_filtered + bindparam("filtered"),
        "updated_at": _NOW,
    }
    if not file_ends:
        values["next_task_id"] = case(
            (one_of(_JOB_STATUS, sorted(RUNNABLE)), bindparam("next_token", type_=_TOKEN_TYPE)),
            else_=None,
        )
    if failed:
        values["failed_step"] = func.coalesce(_files.c.failed_step, bindparam("step"))
    if stopped_at_checkpoint:
        values["checkpoint_step"] = func.coalesce(_files.c.checkpoint_step, bindparam("step"))
    if file_ends:
        for column in (
            "status",
            "num_records",
            "num_errors",
            "num_checkpoint_failed",
            "num_warnings",
            "error_counts",
        ):
            values[column] = bindparam(f"end_{column}", type_=_files.c[column].type)
    return (
        update(_files)
        .where(
            *_THIS_FILE,
            _files.c.next_step == bindparam("step"),
            _files.c.status == FileStatus.PENDING,
            _files.c.claimed_by == bindparam("task_id"),
        )
        .values(**values)
        .returning(_JOB_STATUS.label("job_status"))
    )


ADVANCE = {
    (failed, stopped, ends): Prepared(_advance_statement(failed, stopped, ends))
    for failed in (False, True)
    for stopped in (False, True)
    for ends in (False, True)
}


@functools.cache
def advance_and_log(failed: bool, stopped_at_checkpoint: bool, lines: int) -> Prepared:
    """PostgreSQL: a file's advance past a step that is not its last, and the step's ``lines``
    log lines, as one statement. The INSERT runs only if the UPDATE moved the file, and one
    statement is atomic, so it runs in autocommit: one round trip instead of four (BEGIN,
    UPDATE, INSERT, COMMIT) on every step but a file's last."""
    moved = _advance_statement(failed, stopped_at_checkpoint, file_ends=False).cte("moved")
    logged = insert_lines_if(lines, select(moved.c.job_status).exists()).cte("logged")
    # The step counted in the job's totals (a shard of them: shared/jobs/counters.py), in the
    # same statement.
    counted = step_counted(select(moved.c.job_status).exists()).cte("counted")
    return Prepared(select(moved.c.job_status).add_cte(logged).add_cte(counted))


def _ended(name: str):
    return bindparam(f"end_{name}", type_=_files.c[name].type)


def _count_finished(condition: ColumnElement[bool] | None = None) -> Update:
    """One more finished file, and what it ended with added to the job's kept totals
    (shared/jobs/counters.py): its steps up to the last (it had done ``step`` of them). With
    ``condition``, only if it holds."""
    conditions = [] if condition is None else [condition]
    return (
        update(_jobs)
        .where(_jobs.c.id == bindparam("b_job_id"), *conditions)
        .values(
            files_done=_jobs.c.files_done + 1,
            steps_done=_jobs.c.steps_done + _jobs.c.num_steps - bindparam("step"),
            total_records=_jobs.c.total_records + _ended("num_records"),
            total_errors=_jobs.c.total_errors + _ended("num_errors"),
            total_checkpoint_failed=_jobs.c.total_checkpoint_failed
            + _ended("num_checkpoint_failed"),
            total_warnings=_jobs.c.total_warnings + _ended("num_warnings"),
            total_filtered=_jobs.c.total_filtered + bindparam("filtered"),
        )
        # inputs_pending: a big input folder is still being listed, more files are to come.
        # The state is the job's latest, its row now held by this transaction.
        .returning(
            _jobs.c.files_done,
            _jobs.c.num_files,
            _jobs.c.inputs_pending,
            _jobs.c.status.label("counted_status"),
        )
    )


COUNT_FINISHED = Prepared(_count_finished())


@functools.cache
def end_file_and_log(
    failed: bool, stopped_at_checkpoint: bool, lines: int, refill: bool
) -> Prepared:
    """PostgreSQL: a file's advance past its last step (``ADVANCE``'s), its count in the job's
    totals (``COUNT_FINISHED``'s) and the step's ``lines`` log lines, as one statement; with
    ``refill``, also the release of the job's next waiting file into the place it leaves
    (``window.refill``'s, with ``places`` 1 and its ``prefix``). Each part runs only if the
    file moved, and the parts take the file's row, then the job's, then the released file's
    (skipped if another transaction holds it), as the separate statements did. It RETURNs
    the job's state (as the advance saw it, and ``counted_status`` as the count left it), its
    count of files done and whether more are to be listed, and the released file's
    ``released_index``, ``released_step`` and ``released_token`` (None when none was). The
    caller runs it in the transaction that ends the job if the file was its last. Not for a
    file with failed records: their messages are merged into the job's in Python
    (counters.add_error_counts)."""
    moved = _advance_statement(failed, stopped_at_checkpoint, file_ends=True).cte("moved")
    file_moved = select(moved.c.job_status).exists()
    counted = _count_finished(file_moved).cte("counted")
    logged = insert_lines_if(lines, file_moved).cte("logged")
    outcome = (
        select(
            moved.c.job_status,
            counted.c.files_done,
            counted.c.num_files,
            counted.c.inputs_pending,
            counted.c.counted_status,
        )
        .select_from(moved.join(counted, true()))
        .add_cte(logged)
    )
    if refill:
        # After the count: the job's row before the released file's, whatever order the
        # planner runs the WITH's parts in.
        counted_file = select(counted.c.files_done).exists()
        released = window.release_statement(counted_file).cte("released")
        outcome = outcome.add_columns(
            *[
                select(released.c[name]).scalar_subquery().label(f"released_{label}")
                for name, label in (
                    ("file_index", "index"),
                    ("next_step", "step"),
                    ("next_task_id", "token"),
                )
            ]
        )
    return Prepared(outcome)


COUNT_RECORD_ERRORS = Prepared(
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_job_id"))
    .values(num_record_errors=_jobs.c.num_record_errors + bindparam("errors"))
    .returning(_jobs.c.num_record_errors, _jobs.c.status)
)
