"""Each file's state at each step, as the web UI's grid shows it (shared/runs/file_steps.py),
read from a file row as the engine leaves it."""

from datetime import UTC, datetime, timedelta

from shared.runs.file_steps import _cell_state, _errors_at
from shared.states import FileStatus
from shared.store.models import JobFile

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def row(**values) -> JobFile:
    defaults = {
        "status": FileStatus.PENDING,
        "next_step": 0,
        "failed_step": None,
        "checkpoint_step": None,
        "num_checkpoint_failed": 0,
        "claimed_by": None,
        "claimed_until": None,
        "error_counts": {},
    }
    return JobFile(**{**defaults, **values})


def states(file: JobFile, steps: int = 4) -> list[str]:
    return [_cell_state(file, index, NOW) for index in range(steps)]


def test_a_running_step_is_the_claimed_next_one_and_a_lapsed_claim_is_pending():
    live = row(next_step=1, claimed_by="t", claimed_until=NOW + timedelta(seconds=30))
    assert states(live) == ["done", "running", "pending", "pending"]
    lapsed = row(next_step=1, claimed_by="t", claimed_until=NOW - timedelta(seconds=1))
    assert states(lapsed) == ["done", "pending", "pending", "pending"]


def test_a_failed_record_marks_its_step_and_the_file_goes_on():
    file = row(status=FileStatus.COMPLETE, next_step=4, failed_step=3)
    assert states(file) == ["done", "done", "done", "failed"]
    broken = row(status=FileStatus.FAILED, next_step=1)  # the step could not run at all
    assert states(broken) == ["done", "failed", "pending", "pending"]


def test_a_checkpoint_stop_and_a_cancelled_file():
    stopped = row(
        status=FileStatus.STOPPED_AT_CHECKPOINT,
        next_step=3,
        checkpoint_step=2,
        num_checkpoint_failed=1,
    )
    assert states(stopped) == ["done", "done", "stopped_at_checkpoint", "pending"]
    cancelled = row(status=FileStatus.CANCELLED, next_step=1)
    assert states(cancelled) == ["done", "cancelled", "cancelled", "cancelled"]


def test_a_failed_cell_shows_the_errors_of_its_step():
    file = row(
        error_counts={"Error <a> in step enrich": 2, "Error <b> in step read": 1},
    )
    assert _errors_at(file, "enrich") == ["Error <a> in step enrich"]
    # A file that failed outside a step's records: its messages, wherever they came from.
    assert _errors_at(file, "fields") == ["Error <a> in step enrich", "Error <b> in step read"]
