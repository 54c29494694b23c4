"""Whether the broker has been told: the mark on a job whose step tokens are stored but whose
messages may not have been sent yet (``jobs.unpublished_since``).

Steps are published only after the transaction that stored their tokens has committed. A
process that dies in between (an API killed after recording a run, a recovery round killed
before it published) leaves pending files that hold a token and no claim, which is also how a
file looks whose message is waiting its turn behind a long backlog: nothing in the store tells
the two apart, and republishing a token that may already be queued would let two messages run
one step at once (a claim also matches ``claimed_by``). So whoever stores such tokens marks the
job in the same transaction and clears the mark, with one UPDATE, once every message is sent.
A mark older than ``PUBLISH_GRACE`` means the sender died: stalled-step recovery gives every
unclaimed pending file of the job a fresh token, which retires whatever was sent, and sends them.
A job whose messages were confirmed sent is never touched, however long it waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, update

from shared.store.db import statement_scope
from shared.store.models import Job
from shared.store.prepared import Prepared

# Longer than any sender takes between its commit and its last publish (a publish that cannot
# reach the broker fails within seconds). Misjudging it costs a job its place in the queue,
# never a double run: recovery mints fresh tokens.
PUBLISH_GRACE = timedelta(seconds=60)

_jobs = Job.__table__
# Compare-and-set on the mark: a later sender that marked the job again (recovery, after the
# grace) clears its own mark, once its own messages are out.
_CONFIRM = Prepared(
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("b_job_id"),
        _jobs.c.unpublished_since == bindparam("mark", type_=_jobs.c.unpublished_since.type),
    )
    .values(unpublished_since=None)
)


def confirm_published(url: str, marks: dict[str, datetime]) -> None:
    """Clear each job's mark, if it is still the one given: call once every step the marking
    transaction stored has been published."""
    if not marks:
        return
    with statement_scope(url) as conn:
        for job_id, mark in marks.items():
            _CONFIRM.execute(conn, {"b_job_id": job_id, "mark": mark})
