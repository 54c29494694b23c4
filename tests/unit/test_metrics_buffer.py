"""The workers' metric buffer (shared/metrics/buffer.py) against a real Redis: a step's numbers
wait in the process until a flush, the buffer's own thread sends them from an idle process, a
forked child never sends its parent's numbers, and a Redis that is down costs only the
numbers."""

from __future__ import annotations

import os

import pytest

from shared.config import Settings
from shared.metrics import buffer, recorder
from tests.support import free_port, wait_for

DB = 0  # a Redis database no stack uses


@pytest.fixture
def redis_url(redis_server_url):
    url = f"{redis_server_url}/{DB}"
    recorder.client(url).flushdb()
    yield url
    recorder.client(url).flushdb()


@pytest.fixture
def fresh_buffer(monkeypatch):
    """This process's buffer made afresh, with an interval no test waits out."""
    monkeypatch.setattr(buffer, "FLUSH_INTERVAL", 3600.0)
    monkeypatch.setattr(buffer, "_current", None)


def steps(url: str) -> dict[str, int]:
    found = recorder.client(url).hgetall(recorder.STEPS)
    return {field.decode(): int(value) for field, value in found.items()}


def test_steps_wait_in_the_process_until_a_flush_sends_them_in_one_go(redis_url, fresh_buffer):
    settings = Settings(redis_url=redis_url)
    for _ in range(50):
        recorder.StepTimer(settings, "refine").finished(None)
    recorder.StepTimer(settings, "udf").failed()
    assert steps(redis_url) == {}  # no step made a round trip
    assert (
        buffer.of_this_process(recorder.send).pending() == 8
    )  # per type: two counters, a bucket, the sum

    recorder.flush()
    assert steps(redis_url) == {
        "started|refine": 50,
        "finished|refine": 50,
        "started|udf": 1,
        "failed|udf": 1,
    }
    seconds = recorder.client(redis_url).hgetall(recorder.STEP_SECONDS)
    buckets = sum(
        int(v) for k, v in seconds.items() if k.startswith(b"refine|") and b"sum" not in k
    )
    assert buckets == 50 and float(seconds[b"refine|sum"]) > 0
    recorder.flush()  # nothing left: nothing sent twice
    assert steps(redis_url)["finished|refine"] == 50


def test_a_step_end_past_the_interval_flushes_at_once(redis_url):
    due = buffer.CounterBuffer(recorder.send, interval=0.0)
    due.add(redis_url, [(recorder.STEPS, "started|refine", 1)], flush_when_due=False)
    due.add(redis_url, [(recorder.STEPS, "finished|refine", 1)], flush_when_due=True)
    # Sent before add returned (the start went with it, or before it from the buffer's thread).
    assert steps(redis_url)["finished|refine"] == 1
    wait_for(lambda: steps(redis_url).get("started|refine") == 1, timeout=5, message="the start")
    assert due.pending() == 0


def test_an_idle_process_still_sends_its_last_steps(redis_url):
    idle = buffer.CounterBuffer(recorder.send, interval=0.5)
    idle.add(redis_url, [(recorder.STEPS, "finished|udf", 1)], flush_when_due=True)
    assert steps(redis_url) == {}
    # No other step comes: the buffer's own thread sends it, an interval after it was made.
    wait_for(
        lambda: steps(redis_url) == {"finished|udf": 1}, timeout=5, message="the buffer's thread"
    )


def test_a_forked_child_never_sends_what_its_parent_buffered(redis_url, fresh_buffer):
    settings = Settings(redis_url=redis_url)
    recorder.StepTimer(settings, "refine").finished(None)  # buffered in the parent
    pid = os.fork()
    if pid == 0:  # the child: its own step, its own flush, then out without the parent's atexit
        code = 1
        try:
            recorder.StepTimer(settings, "udf").finished(None)
            recorder.flush()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert steps(redis_url) == {"started|udf": 1, "finished|udf": 1}

    recorder.flush()
    assert steps(redis_url) == {
        "started|udf": 1,
        "finished|udf": 1,
        "started|refine": 1,
        "finished|refine": 1,
    }


def test_a_redis_that_is_down_costs_the_numbers_never_the_step(fresh_buffer, monkeypatch, caplog):
    monkeypatch.setattr(buffer, "FLUSH_INTERVAL", 0.0)  # every step end flushes, and fails
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert recorder.StepTimer(settings, "refine").finished("records") == "records"
    recorder.StepTimer(settings, "refine").failed()
    recorder.delivery_attempted(settings, "webhook", "delivered")
    assert "could not record" in caplog.text
    assert buffer.of_this_process(recorder.send).pending() == 0  # dropped, not piled up
