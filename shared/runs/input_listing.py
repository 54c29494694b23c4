"""The input files of a run: listed from the drive as a stream, and, for a big folder, recorded
by a worker instead of by the request that submitted the run.

A run on a folder of up to ``FLOWBIN_INPUT_BATCH_FILES`` files (1,000) is recorded whole by
its submit (its files sorted by name), its first steps published by the API if there are only a
few (``DIRECT_FILES``), else released by a worker, as the API has then sent
``flowbin.release_job``. A bigger folder is recorded with no files and ``inputs_pending`` set,
and the API sends ``flowbin.release_job`` too, so submit costs the same whatever the folder
holds. The worker lists the folder once, as a stream (``os.scandir``,
or an object store's pages: a folder of a million entries is never held as a list), and
records its files in batches of that many, in the order the drive lists them; after each
batch it fills the job's window (shared/engine/window.py), so the first steps start after the
first batch. Each batch is one transaction that moves ``num_files``
on with a compare-and-set, so a listing that dies is taken up where it stopped by its message's
redelivery (or, if the API died before sending it, by stalled-step recovery), and two listings
of one job cannot both record a batch. The job cannot end while its listing has not
(``count_finished_file``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import islice

from sqlalchemy import select, update

from shared.config import Settings
from shared.engine import window
from shared.engine.scheduling import NextStep
from shared.runs import record
from shared.states import ENDED, FileStatus
from shared.storage.backend import FILE, StoredFile
from shared.storage.locate import drive_storage
from shared.store.db import connection_scope, statement_scope
from shared.store.models import Job

# Up to this many files, a new job's first steps are published by the request that submits it;
# a bigger job's by a worker (publishing a window of messages takes the API 1-3 ms each).
DIRECT_FILES = 8


def input_names(folder: StoredFile) -> Iterator[str]:
    """The names of the files a run on ``folder`` takes as inputs (no folders, no dot files), in
    the order the drive lists them, one at a time."""
    local = folder.local_path()
    if local is None:  # an object store: its listing, a page at a time, in key order
        for node in folder.storage.children(folder.key):
            if not node.name.startswith(".") and node.type == FILE:
                yield node.name
        return
    with os.scandir(local) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_file():
                yield entry.name


def file_rows(job_id: str, names: list[str], first_index: int) -> list[dict]:
    """The rows of input files ``names``, numbered from ``first_index``, waiting for a place
    in the job's window."""
    return [
        dict(
            job_id=job_id,
            file_index=first_index + number,
            file_name=name,
            status=FileStatus.PENDING,
            next_step=0,
            next_task_id=window.WAITING,
        )
        for number, name in enumerate(names)
    ]


def release_job(settings: Settings, job_id: str, publish: Callable[[list[NextStep]], None]) -> int:
    """Let the first files of a new job into its window, and ``publish`` their steps once that
    has committed: for a big input folder, record its files not recorded yet, batch by batch,
    each batch letting files in. The files this call recorded."""
    with statement_scope(settings.sql_url, read_only=True) as conn:
        job = conn.execute(select(Job.__table__).where(Job.id == job_id)).first()
    if job is None or job.status in ENDED:
        return 0
    if not job.inputs_pending:  # recorded by its submit: only its window to fill
        with connection_scope(settings.sql_url) as conn:
            steps = window.fill(conn, settings, job)
        publish(steps)
        return 0
    listed = job.num_files
    source = input_names(drive_storage(settings).file(job.input_dir))
    try:
        # Those recorded already are skipped: the drive lists an unchanged folder in one order.
        names = islice(source, listed, None)
        batch = list(islice(names, settings.input_batch_files))
        recorded = 0
        while batch:
            following = list(islice(names, settings.input_batch_files))
            steps = _record_batch(settings, job, listed, batch, last=not following)
            if steps is None:
                break  # another listing of the job got ahead, or the job ended
            publish(steps)
            listed += len(batch)
            recorded += len(batch)
            batch = following
    finally:
        source.close()
    return recorded


def _record_batch(
    settings: Settings, job, listed: int, names: list[str], last: bool
) -> list[NextStep] | None:
    """One batch in one transaction: the files, ``num_files`` moved on from ``listed`` (a
    compare-and-set), the listing's end if ``last``, and the window filled; None if the
    compare-and-set failed."""
    with connection_scope(settings.sql_url) as conn:
        moved = conn.execute(
            update(Job)
            .where(
                Job.id == job.id,
                Job.num_files == listed,
                Job.inputs_pending.is_(True),
                Job.status.not_in(sorted(ENDED)),
            )
            .values(num_files=listed + len(names), inputs_pending=not last)
        ).rowcount
        if moved != 1:
            return None
        record.insert_files(conn, file_rows(job.id, names, listed))
        return window.fill(conn, settings, job)
