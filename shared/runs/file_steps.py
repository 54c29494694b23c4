"""Each file of a flow job at each of its flow's steps (the web UI's grid): done, running,
failed (with the errors the file's records failed with there), stopped at a checkpoint,
cancelled or pending, read from the file rows the engine keeps (shared/engine/statements.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.accounts.access import JobGrant
from shared.config import Settings
from shared.runs.sharing import step_ids_of
from shared.states import FileStatus
from shared.store.models import Job, JobFile

DONE, RUNNING, FAILED, CHECKPOINT, CANCELLED, PENDING = (
    "done",
    "running",
    "failed",
    "stopped_at_checkpoint",
    "cancelled",
    "pending",
)
CELL_STATES = (DONE, RUNNING, FAILED, CHECKPOINT, CANCELLED, PENDING)


@dataclass(frozen=True)
class FileSteps:
    file_index: int
    file_name: str
    status: str
    cells: list[dict]

    def to_dict(self) -> dict:
        return {
            "file_index": self.file_index,
            "file_name": self.file_name,
            "status": self.status,
            "steps": self.cells,
        }


def _cell_state(row: JobFile, index: int, now: datetime) -> str:
    if row.failed_step == index:
        return FAILED
    if row.checkpoint_step == index and row.num_checkpoint_failed:
        return CHECKPOINT
    if index < row.next_step or row.status == FileStatus.COMPLETE:
        return DONE
    if row.status == FileStatus.FAILED and index == row.next_step:
        return FAILED
    if row.status == FileStatus.CANCELLED:
        return CANCELLED
    claimed = row.claimed_by and row.claimed_until and row.claimed_until > now
    if row.status == FileStatus.PENDING and index == row.next_step and claimed:
        return RUNNING
    return PENDING


def _errors_at(row: JobFile, step_id: str) -> list[str]:
    messages = list((row.error_counts or {}).keys())
    here = [m for m in messages if m.endswith(f" in step {step_id}")]
    return here or messages


def file_steps(
    session: Session,
    settings: Settings,
    job: Job,
    grant: JobGrant,
    offset: int,
    limit: int,
) -> tuple[list[str], list[FileSteps], int]:
    """The flow's step ids, a page of the job's files (by index) with a cell per step, and how
    many files the job has. Errors are shown only at the steps the caller works on."""
    steps = step_ids_of(settings, job)
    total = session.scalar(select(func.count(JobFile.id)).where(JobFile.job_id == job.id)) or 0
    rows = session.scalars(
        select(JobFile)
        .where(JobFile.job_id == job.id)
        .order_by(JobFile.file_index)
        .offset(offset)
        .limit(limit)
    )
    now = datetime.now(UTC)
    found = []
    for row in rows:
        cells = []
        for index, step_id in enumerate(steps):
            state = _cell_state(row, index, now)
            errors = _errors_at(row, step_id) if state == FAILED and grant.covers(step_id) else []
            cells.append({"step_id": step_id, "state": state, "errors": errors})
        found.append(FileSteps(row.file_index, row.file_name, str(row.status), cells))
    return steps, found, total
