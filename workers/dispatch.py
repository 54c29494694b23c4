"""Publishing steps and compiles to the broker, with the priority and limits they need."""

from __future__ import annotations

from celery import Celery

from shared.engine.runner import NextStep
from workers.app import HARD_LIMIT_GRACE
from workers.names import COMPILE, RUN_STEP


def broker_priority(user_priority: int) -> int:
    """Redis pops bucket 0 first, so the user's 9 (highest) is sent as 0."""
    return 9 - max(0, min(9, user_priority))


def publish_step(app: Celery, step: NextStep) -> None:
    # send_task ignores task_ignore_result: without ignore_result=True every send would
    # SUBSCRIBE to a result channel that nothing ever reads.
    app.send_task(
        RUN_STEP,
        args=(step.call.job_id, step.call.file_index, step.call.step_index),
        task_id=step.call.task_id,
        priority=broker_priority(step.priority),
        soft_time_limit=step.time_limit,
        time_limit=step.time_limit + HARD_LIMIT_GRACE,
        ignore_result=True,
    )


def publish_steps(app: Celery, steps: list[NextStep]) -> None:
    for step in steps:
        publish_step(app, step)


def revoke(app: Celery, running: list[str], queued: list[str]) -> None:
    """Stop running steps now (prefork terminates their process) and drop queued ones.

    The revoked set lives in worker memory only; the store's state is what really stops a job,
    since every step checks it before it starts."""
    if running:
        app.control.revoke(running, terminate=True, signal="SIGKILL")
    if queued:
        app.control.revoke(queued)


def publish_compile(app: Celery, job_id: str) -> None:
    app.send_task(COMPILE, args=(job_id,), priority=broker_priority(5), ignore_result=True)
