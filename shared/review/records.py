"""Checkpoint review: the records a checkpoint stopped, corrections of them, and who reviews.

A record that fails a checkpoint stays in that step's output with ``checkpoint_failed`` set, and
its file stops there (``JobFile.checkpoint_step``). A correction is written into the record as
the checkpoint received it, the previous step's persisted output, because that is what
``jobs/retry?type=checkpoint_failure`` feeds the checkpoint again: the corrected record is
re-validated and, if it passes, goes on through the steps after the checkpoint.

A review belongs to one stop of the job at a checkpoint, named by the job's ``finished_at`` at
that stop (``RecordReview.job_stopped_at``): after a retry, a record that fails again is pending
again. Reviews are written only while the job is stopped, under a lock on its row, so a retry
cannot start between reading a file and writing its correction.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.access import JobGrant
from shared.accounts.principal import Principal
from shared.config import Settings
from shared.drive import write_atomic
from shared.engine.layout import step_output_file
from shared.engine.snapshot import cached_binary
from shared.errors import Conflict, Forbidden, NotFound
from shared.review import access
from shared.states import FileStatus, JobStatus
from shared.storage.backend import StoredFile
from shared.store.models import Job, JobFile, RecordReview, utcnow


def records_awaiting_review(
    session: Session, settings: Settings, job: Job, grant: JobGrant
) -> list[dict]:
    """For each file stopped at a checkpoint the caller's ``grant`` covers, the records that
    checkpoint stopped, in file and record order, each with the review it got in the job's
    current stop (if any)."""
    binary = cached_binary(settings, job.binary_hash)
    reviews = _reviews_of_current_stop(session, job)
    listed = []
    for row in session.scalars(
        select(JobFile)
        .where(
            JobFile.job_id == job.id,
            JobFile.status == FileStatus.STOPPED_AT_CHECKPOINT,
            JobFile.checkpoint_step.is_not(None),
        )
        .order_by(JobFile.file_index)
    ):
        step_id = binary.steps[row.checkpoint_step].id
        if not grant.covers(step_id):
            continue
        output = _read_records(
            step_output_file(settings, job, binary, row.checkpoint_step, row.file_name),
            step_id,
            row.file_name,
        )
        for _, record in stopped_records(output):
            review = reviews.get((row.file_index, record.get("record_index")))
            listed.append(_listed(row, record, step_id, review))
    return listed


def correct_record(
    session: Session,
    settings: Settings,
    principal: Principal,
    job_id: str,
    file_index: int,
    record_index: int,
    fields: dict[str, Any],
) -> dict:
    """Set ``fields`` on a stopped record where its checkpoint will read it again on retry,
    and record the review; no fields marks the record reviewed without change."""
    job, grant = access.get_job_for_review(session, principal, job_id)
    # Held until commit: a retry (which moves the job on) waits for this correction.
    session.refresh(job, with_for_update=True)
    if job.status != JobStatus.STOPPED_AT_CHECKPOINT:
        raise Conflict(
            f"job {job.id!r} is {job.status}, not stopped at a checkpoint: records "
            "can be corrected only while it is"
        )
    row = session.scalar(
        select(JobFile).where(JobFile.job_id == job.id, JobFile.file_index == file_index)
    )
    if row is None:
        raise NotFound(f"job {job.id!r} has no file with file_index {file_index}")
    if row.status != FileStatus.STOPPED_AT_CHECKPOINT or row.checkpoint_step is None:
        raise Conflict(
            f"file {row.file_name} (file_index {file_index}) did not stop at a "
            "checkpoint: none of its records is awaiting review"
        )
    binary = cached_binary(settings, job.binary_hash)
    step_id = binary.steps[row.checkpoint_step].id
    if not grant.covers(step_id):
        raise Forbidden(
            f"job {job.id!r} is shared with you for other steps than checkpoint '{step_id}', "
            "where this record stopped"
        )
    if row.checkpoint_step == 0:
        raise Conflict(
            f"checkpoint '{step_id}' is the flow's first step, so there is no "
            "persisted input to correct: fix the input file and run the flow again"
        )
    output = _read_records(
        step_output_file(settings, job, binary, row.checkpoint_step, row.file_name),
        step_id,
        row.file_name,
    )
    position = stopped_position(output, record_index, row.file_name)
    input_file = step_output_file(settings, job, binary, row.checkpoint_step - 1, row.file_name)
    corrected = corrected_input(
        _read_records(input_file, binary.steps[row.checkpoint_step - 1].id, row.file_name),
        position,
        record_index,
        fields,
    )
    review = _save_review(session, job, row.file_index, record_index, principal.username, fields)
    changes = ", ".join(sorted(fields)) if fields else "no field changed"
    access.review_log(
        job,
        f"Record {record_index} of file {row.file_name} stopped at checkpoint "
        f"'{step_id}' reviewed by {principal.username}: {changes}",
        session,
    )
    session.flush()
    if fields:
        # Written before the commit: if the commit then fails, the correction is on the drive
        # without its review row, and correcting again writes the same values.
        write_atomic(input_file, json.dumps(corrected, ensure_ascii=False).encode("utf-8"))
    return _listed(row, output[position], step_id, review)


# -- pure parts -------------------------------------------------------------------------------


def stopped_records(records: list[dict]) -> list[tuple[int, dict]]:
    """(position, record) of each record a checkpoint stopped, in a step's output."""
    return [
        (position, record)
        for position, record in enumerate(records)
        if record.get("checkpoint_failed")
    ]


def stopped_position(output: list[dict], record_index: int, file_name: str) -> int:
    """Where in a checkpoint's output the record ``record_index`` is, if it awaits review."""
    for position, record in enumerate(output):
        if record.get("record_index") == record_index:
            if not record.get("checkpoint_failed"):
                raise Conflict(
                    f"record {record_index} of file {file_name} passed the "
                    "checkpoint: it is not awaiting review"
                )
            return position
    raise NotFound(f"file {file_name} has no record {record_index} at its checkpoint")


def corrected_input(
    inputs: list[dict], position: int, record_index: int, fields: dict[str, Any]
) -> list[dict]:
    """The checkpoint's input records with ``fields`` set on the record at ``position``.

    A checkpoint turns each input record into exactly one output record, in order, so the
    stopped record's position in the output is its position in the input."""
    if position >= len(inputs) or inputs[position].get("record_index") != record_index:
        raise Conflict(
            f"the persisted input of record {record_index} no longer matches the "
            "checkpoint's output (was the output folder changed?); run the flow "
            "again instead"
        )
    record = inputs[position]
    changed = {**record, "fields": {**(record.get("fields") or {}), **fields}}
    return [*inputs[:position], changed, *inputs[position + 1 :]]


# -- helpers ----------------------------------------------------------------------------------


def _read_records(path: StoredFile, step_id: str, file_name: str) -> list[dict]:
    try:
        records = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise Conflict(
            f"the output of step '{step_id}' for file {file_name} is missing from "
            "the run's output folder; run the flow again"
        ) from None
    except ValueError as error:
        raise Conflict(
            f"the output of step '{step_id}' for file {file_name} is not valid "
            f"JSON ({error}); run the flow again"
        ) from None
    if not isinstance(records, list):
        raise Conflict(
            f"the output of step '{step_id}' for file {file_name} is not a list "
            "of records; run the flow again"
        )
    return records


def _reviews_of_current_stop(session: Session, job: Job) -> dict[tuple[int, int], RecordReview]:
    if job.status != JobStatus.STOPPED_AT_CHECKPOINT or job.finished_at is None:
        return {}
    rows = session.scalars(select(RecordReview).where(RecordReview.job_id == job.id))
    return {
        (row.file_index, row.record_index): row
        for row in rows
        if row.job_stopped_at == job.finished_at
    }


def _save_review(
    session: Session,
    job: Job,
    file_index: int,
    record_index: int,
    username: str,
    fields: dict[str, Any],
) -> RecordReview:
    """Insert or update the record's review (the job row lock keeps this free of races)."""
    review = session.scalar(
        select(RecordReview).where(
            RecordReview.job_id == job.id,
            RecordReview.file_index == file_index,
            RecordReview.record_index == record_index,
        )
    )
    if review is None:
        review = RecordReview(
            job_id=job.id, file_index=file_index, record_index=record_index, corrected_fields={}
        )
        session.add(review)
    # Corrections accumulate in the record's data, so they do here too.
    review.corrected_fields = {**(review.corrected_fields or {}), **fields}
    review.reviewer = username
    review.job_stopped_at = job.finished_at
    review.reviewed_at = utcnow()
    return review


def _listed(row: JobFile, record: dict, step_id: str, review: RecordReview | None) -> dict:
    return {
        "file_name": row.file_name,
        "file_index": row.file_index,
        "record_index": record.get("record_index"),
        "text": record.get("text") or "",
        "fields": record.get("fields") or {},
        "checkpoint_failed": list(record.get("checkpoint_failed") or []),
        "checkpoint_step": step_id,
        "reviewed": review is not None,
        "reviewer": review.reviewer if review else None,
        "reviewed_at": round(review.reviewed_at.timestamp(), 3) if review else None,
        "corrected_fields": dict(review.corrected_fields) if review else None,
    }
