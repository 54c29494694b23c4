"""A job's contents (``/api/v2/jobs/<id>/contents``, seed 002): what a caller may read of its
input and output, each named by a stable id:

- ``input:<file>``: each input file of a flow run (the files it was submitted with);
- ``results`` (results.json), ``ibflowresults`` (batch.ibflowresults), ``results:<file>`` (one
  file's results), once written (shared/engine/layout.py);
- ``step:<NN>:<file>``: step NN's output records for one file (``steps/NN_<step id>/``);
- ``review``: the records stopped at a checkpoint, awaiting review;
- ``binary``: a completed compile's flow binary.

Each has a ``uri``, its drive path (none for ``review``, which is read from the steps'
outputs). Who reads what is the job's grant (shared/accounts/access.py): a collaborator on some
steps reads those steps' outputs and the records stopped at them, nothing else; everyone else
who sees the job reads all of it. A content the caller may not read is missing, like an id that
names none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.accounts.access import JobGrant
from shared.config import Settings
from shared.engine import layout
from shared.engine.snapshot import cached_binary
from shared.errors import Conflict, NotFound
from shared.flow.binary import CompiledBinary
from shared.review.records import records_awaiting_review
from shared.states import JobKind, JobStatus
from shared.storage.backend import StoredFile
from shared.storage.locate import drive_storage
from shared.store.models import Job, JobFile

INPUT_FILE = "input-file"
FLOW_RESULTS = "flow-results"
IBFLOWRESULTS = "ibflowresults"
FILE_RESULTS = "file-results"
STEP_OUTPUT = "step-output"
REVIEW_RECORDS = "review-records"
FLOW_BINARY = "flow-binary"
REVIEW = "review"
RESULTS = "results"


@dataclass(frozen=True)
class JobContent:
    id: str
    type: str
    uri: str | None  # the drive path; None: not one file (the review records)
    name: str | None = None
    step_id: str | None = None
    file: StoredFile | None = None  # the file, in the drive's storage
    records_key: str | None = None  # the list of records in the file's JSON object, if not all
    paged: bool = True  # JSON records; False: bytes

    def size(self) -> int | None:
        if self.file is None:
            return None
        try:
            node = self.file.storage.stat(self.file.key)
        except OSError:
            return None
        return node.size if node is not None else None


def _binary(settings: Settings, job: Job) -> CompiledBinary | None:
    if not job.binary_hash:
        return None
    try:
        return cached_binary(settings, job.binary_hash)
    except (OSError, ValueError):
        return None


def _in_drive(settings: Settings, file: StoredFile) -> StoredFile | None:
    """``file`` if it is a file inside the drive (no link leads it elsewhere), else None."""
    path = file.local_path()
    if path is None:  # an object store: no links
        return file if file.is_file() else None
    try:
        real = path.resolve()
    except OSError:
        return None
    root = settings.drive_root.resolve()
    return file if root in real.parents and real.is_file() else None


def _candidates(
    session: Session, settings: Settings, job: Job, grant: JobGrant
) -> list[JobContent]:
    """Every content the job may have and the caller may read, whether written yet or not."""
    everything = grant.steps is None
    if job.kind == JobKind.COMPILE:
        if everything and job.status == JobStatus.COMPLETE and job.output_dir:
            return [_file(settings, "binary", FLOW_BINARY, job.output_dir, paged=False)]
        return []
    if job.kind != JobKind.FLOW or not job.output_dir:
        return []
    names = list(
        session.scalars(
            select(JobFile.file_name).where(JobFile.job_id == job.id).order_by(JobFile.file_index)
        )
    )
    found = []
    if everything:
        found += [
            _file(settings, f"input:{name}", INPUT_FILE, f"{job.input_dir}/{name}", paged=False)
            for name in names
        ]
        out = job.output_dir
        found.append(_file(settings, RESULTS, FLOW_RESULTS, f"{out}/results.json"))
        batch = _file(settings, "ibflowresults", IBFLOWRESULTS, f"{out}/{layout.IBFLOWRESULTS}")
        found.append(replace(batch, records_key="records"))
        found += [
            _file(settings, f"results:{name}", FILE_RESULTS, f"{out}/results/{name}.json")
            for name in names
        ]
    binary = _binary(settings, job)
    for index, step in enumerate(binary.steps if binary else ()):
        if not grant.covers(step.id):
            continue
        folder = f"{job.output_dir}/steps/{index:02d}_{step.id}"
        found += [
            _file(
                settings,
                f"step:{index:02d}:{name}",
                STEP_OUTPUT,
                f"{folder}/{name}.json",
                step_id=step.id,
            )
            for name in names
        ]
    return found


def _file(
    settings: Settings, content_id: str, kind: str, uri: str, paged: bool = True, step_id=None
) -> JobContent:
    file = drive_storage(settings).file(uri)
    return JobContent(content_id, kind, uri, file.name, step_id, file, paged=paged)


def _written(settings: Settings, content: JobContent) -> JobContent | None:
    file = _in_drive(settings, content.file) if content.file is not None else None
    return replace(content, file=file) if file is not None else None


REVIEW_CONTENT = JobContent(REVIEW, REVIEW_RECORDS, None)


def review_records(session: Session, settings: Settings, job: Job, grant: JobGrant) -> list[dict]:
    """The records awaiting review at the steps the caller's grant covers."""
    if job.kind != JobKind.FLOW or _binary(settings, job) is None:
        return []
    return records_awaiting_review(session, settings, job, grant)


def contents_of(
    session: Session, settings: Settings, job: Job, grant: JobGrant
) -> list[JobContent]:
    """The contents the caller may read that exist now: files written, the review records if
    any record awaits review at a step the caller has."""
    listed = [
        written
        for content in _candidates(session, settings, job, grant)
        if (written := _written(settings, content)) is not None
    ]
    try:
        awaiting = review_records(session, settings, job, grant)
    except Conflict:  # a step's output was changed in the drive: serving it says how
        awaiting = [REVIEW]
    if awaiting:
        listed.append(REVIEW_CONTENT)
    return listed


def content_of(
    session: Session, settings: Settings, job: Job, grant: JobGrant, content_id: str
) -> JobContent:
    """One content, or a 404 that does not say whether it exists for someone else."""
    missing = NotFound(
        f"job {job.id!r} has no content {content_id!r}: GET /api/v2/jobs/{job.id}/contents "
        "lists those you may read"
    )
    if content_id == REVIEW:
        if not review_records(session, settings, job, grant):
            raise missing
        return REVIEW_CONTENT
    for content in _candidates(session, settings, job, grant):
        if content.id == content_id:
            written = _written(settings, content)
            if written is None:
                raise missing
            return written
    raise missing
