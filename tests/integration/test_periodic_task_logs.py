"""Periodic tasks keep quiet at INFO: beat's "Sending due task" and a worker's "received" and
"succeeded: 0" lines of the delivery round and stalled-step recovery are DEBUG lines, while a
round that did something, and every other task, log as before."""

from __future__ import annotations

import logging

import pytest
from celery.app import trace

from shared.config import Settings
from tests.conftest import start_celery
from tests.support import wait_for
from workers import log_filters
from workers.names import DELIVER_DUE, RUN_STEP

pytestmark = pytest.mark.integration
# A database of its own on the session's Redis: nothing consumes what this beat sends.
BEAT_REDIS_DB = 15


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def levels(self) -> list[tuple[str, str]]:
        return [(r.levelname, r.getMessage()) for r in self.records]


@pytest.fixture
def lines():
    """Celery's own loggers, with the filter installed the way the worker does it."""
    log_filters.install()
    handler = Lines()
    loggers = [logging.getLogger(name) for name in log_filters.LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("celery").setLevel(logging.INFO)  # a worker's --loglevel INFO
    yield handler
    logging.getLogger("celery").setLevel(logging.NOTSET)
    for logger in loggers:
        logger.removeHandler(handler)


def succeeded(name: str, returned: str) -> None:
    """What Celery's tracer logs when a task returns (celery.app.trace)."""
    trace.info(
        trace.LOG_SUCCESS,
        {
            "id": "t1",
            "name": name,
            "return_value": returned,
            "runtime": 0.01,
            "args": "",
            "kwargs": "",
        },
    )


def test_routine_lines_are_dropped_at_info(lines):
    trace.info(trace.LOG_RECEIVED, {"id": "t1", "name": DELIVER_DUE, "args": "", "kwargs": ""})
    succeeded(DELIVER_DUE, "0")
    logging.getLogger("celery.beat").info(
        "Scheduler: Sending due task %s (%s)", "deliver-notifications", DELIVER_DUE
    )
    succeeded(DELIVER_DUE, "3")  # this round sent three deliveries
    succeeded(RUN_STEP, "None")
    assert lines.levels() == [
        ("INFO", f"Task {DELIVER_DUE}[t1] succeeded in 0.01s: 3"),
        ("INFO", f"Task {RUN_STEP}[t1] succeeded in 0.01s: None"),
    ]


def test_routine_lines_are_debug_lines_when_debug_is_on(lines):
    logging.getLogger("celery").setLevel(logging.DEBUG)
    succeeded(DELIVER_DUE, "0")
    assert lines.levels() == [("DEBUG", f"Task {DELIVER_DUE}[t1] succeeded in 0.01s: 0")]


def test_a_real_beat_sends_its_ticks_as_debug_lines(redis_server_url, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "var",
        redis_url=f"{redis_server_url}/{BEAT_REDIS_DB}",
        delivery_interval=0.2,
    )
    log = tmp_path / "beat.log"
    arguments = ["beat", "--loglevel", "DEBUG", "--schedule", str(tmp_path / "schedule")]
    beat = start_celery(settings, arguments, log)
    try:
        tick = wait_for(
            lambda: next(
                (
                    line
                    for line in log.read_text().splitlines()
                    if "Sending due task deliver-notifications" in line
                ),
                None,
            ),
            timeout=60,
            message="beat to send the delivery round",
        )
        assert ": DEBUG/" in tick, tick
    finally:
        beat.terminate()
        beat.wait(timeout=30)
