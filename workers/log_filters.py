"""Quiet periodic tasks: beat sends the delivery round every few seconds and recovery every
minute, and at INFO each tick would print three lines (beat's "Sending due task", the worker's
"received" and "succeeded") whether or not it did anything. Those routine lines are logged at
DEBUG instead; a round that did something ("succeeded ...: 3") stays at INFO."""

from __future__ import annotations

import logging

from celery.app import trace

from workers.names import DELIVER_DUE, RECOVER_STALLED

PERIODIC = frozenset({DELIVER_DUE, RECOVER_STALLED})
# A periodic task returns how much it did: nothing to report when that is none.
NOTHING_DONE = frozenset({"0", "None"})
LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class QuietPeriodicTasks(logging.Filter):
    """Moves the routine lines of periodic tasks to DEBUG: dropped unless DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _routine(record: logging.LogRecord) -> bool:
    if record.name == "celery.beat":
        # Scheduler: Sending due task <entry name> (<task name>)
        return (
            record.msg.startswith("Scheduler: Sending due task")
            and isinstance(record.args, tuple)
            and record.args[-1:] != ()
            and record.args[-1] in PERIODIC
        )
    context = record.args if isinstance(record.args, dict) else {}
    if context.get("name") not in PERIODIC:
        return False
    if record.msg == trace.LOG_RECEIVED:
        return True
    return record.msg == trace.LOG_SUCCESS and str(context.get("return_value")) in NOTHING_DONE


def install() -> None:
    """Attach the filter to the loggers that write those lines (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietPeriodicTasks) for f in logger.filters):
            logger.addFilter(QuietPeriodicTasks())
