"""Publishing to the broker: steps and compiles with the priority and limits they need, revokes,
and delivery rounds. ``CeleryPublisher`` is the ``Publisher`` that the API and beat's tasks
apply broker work through (shared/engine/broker_work.py)."""

from __future__ import annotations

import logging

from celery import Celery

from shared.engine.broker_work import BrokerWork
from shared.engine.scheduling import NextStep
from workers.app import HARD_LIMIT_GRACE
from workers.names import COMPILE, DELIVER_DUE, DELIVERY_PRIORITY, RELEASE_JOB, RUN_STEP

log = logging.getLogger(__name__)

# A delivery round asked for now (a redelivery) that no worker took within this long is
# dropped: beat's next tick does the same work.
DELIVER_NOW_EXPIRES = 30.0


def broker_priority(user_priority: int) -> int:
    """Redis pops bucket 0 first, so the user's 9 (highest) is sent as 0."""
    return 9 - max(0, min(9, user_priority))


def step_label(step: NextStep) -> str:
    call = step.call
    return f"job={call.job_id} file={call.file_index} step={call.step_index}"


def publish_step(app: Celery, step: NextStep, producer=None) -> None:
    # send_task ignores task_ignore_result: without ignore_result=True every send would
    # SUBSCRIBE to a result channel that nothing ever reads.
    app.send_task(
        RUN_STEP,
        args=(step.call.job_id, step.call.file_index, step.call.step_index),
        # What Flower and the worker's log show for the task: which job, file and step it is.
        argsrepr=step_label(step),
        task_id=step.call.task_id,
        priority=broker_priority(step.priority),
        soft_time_limit=step.time_limit,
        time_limit=step.time_limit + HARD_LIMIT_GRACE,
        ignore_result=True,
        producer=producer,
    )


def publish_steps(app: Celery, steps: list[NextStep]) -> None:
    if len(steps) == 1:
        publish_step(app, steps[0])
        return
    # One producer (and connection) from the pool for all of them, not one each.
    with app.producer_or_acquire() as producer:
        for step in steps:
            publish_step(app, step, producer)


def publish_release(app: Celery, job_id: str) -> None:
    # At the highest priority, like a compile: the job's first steps wait for its first batch.
    app.send_task(RELEASE_JOB, args=(job_id,), priority=broker_priority(9), ignore_result=True)


def revoke(app: Celery, running: list[str], queued: list[str]) -> None:
    """Stop running steps now (prefork terminates their process) and drop queued ones.

    The revoked set lives in worker memory only; the store's state is what really stops a job,
    since every step checks it before it starts."""
    if running:
        app.control.revoke(running, terminate=True, signal="SIGKILL")
    if queued:
        app.control.revoke(queued)


def publish_compile(app: Celery, job_id: str) -> None:
    # At the highest priority: Instabase's toolkits use a binary about 3 s after asking for it,
    # without polling, so a compile must not wait behind queued run steps of lower priority.
    app.send_task(COMPILE, args=(job_id,), priority=broker_priority(9), ignore_result=True)


def publish_deliver_due(app: Celery, expires: float) -> None:
    """Ask for a delivery round now, instead of waiting for the next tick. Beat is the
    guarantee, so a broker that is down only delays the round."""
    try:
        app.send_task(DELIVER_DUE, priority=DELIVERY_PRIORITY, expires=expires, ignore_result=True)
    except Exception:  # kombu raises a variety of connection errors
        log.warning("could not publish %s; beat will run it", DELIVER_DUE, exc_info=True)


class CeleryPublisher:
    """Applies ``BrokerWork`` to a Celery app's broker."""

    def __init__(self, app: Celery, delivery_interval: float):
        self.app = app
        self.deliver_now_expires = max(delivery_interval, DELIVER_NOW_EXPIRES)

    def apply(self, work: BrokerWork) -> None:
        revoke(self.app, work.terminate, work.drop)
        publish_steps(self.app, work.publish)
        for job_id in work.release:
            publish_release(self.app, job_id)
        for job_id in work.compile:
            publish_compile(self.app, job_id)
        if work.deliver_now:
            publish_deliver_due(self.app, self.deliver_now_expires)
