"""What workers record for ``/metrics``: counters and histogram buckets in Redis hashes, so that
the API renders every worker's numbers from one place, whichever host they ran on.

Each process adds its numbers up in memory and sends them in one pipeline (HINCRBY /
HINCRBYFLOAT, no transaction) at most every ``buffer.FLUSH_INTERVAL`` seconds (buffer.py), so a
step usually costs no round trip and Redis shows its numbers up to that interval later. A Redis
that cannot take them costs the metrics, never the step or the delivery: the error is logged."""

from __future__ import annotations

import functools
import logging
import time
from typing import TypeVar

import redis

from shared.config import Settings
from shared.metrics import buffer, histogram

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "flowbin:metrics:"
# Fields "started|<type>", "finished|<type>", "failed|<type>".
STEPS = PREFIX + "steps"
# Fields "<type>|<bucket index>" (see histogram.py) and "<type>|sum".
STEP_SECONDS = PREFIX + "step_seconds"
# Fields "<channel>|<outcome>".
DELIVERIES = PREFIX + "deliveries"
SEP = "|"

STEP_OUTCOMES = ("started", "finished", "failed")


@functools.cache
def client(url: str) -> redis.Redis:
    """One client per Redis URL and process (redis-py's pool starts afresh after a fork)."""
    # Short timeouts: a metric is not worth holding a step or a scrape for.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def step_started(settings: Settings, step_type: str) -> None:
    _record(settings, [(STEPS, f"started{SEP}{step_type}", 1)], flush_when_due=False)


def step_ended(settings: Settings, step_type: str, failed: bool, seconds: float) -> None:
    """A step that ran to its end (``failed``: it failed as a whole, not record by record)."""
    bucket = histogram.bucket_of(histogram.STEP_SECONDS, seconds)
    increments = [
        (STEPS, f"{'failed' if failed else 'finished'}{SEP}{step_type}", 1),
        (STEP_SECONDS, f"{step_type}{SEP}{bucket}", 1),
        (STEP_SECONDS, f"{step_type}{SEP}sum", float(seconds)),
    ]
    _record(settings, increments, flush_when_due=True)


def delivery_attempted(settings: Settings, channel: str, outcome: str) -> None:
    """An attempt of a webhook or an email and what followed: delivered, retrying, failed."""
    _record(settings, [(DELIVERIES, f"{channel}{SEP}{outcome}", 1)], flush_when_due=True)


def flush() -> None:
    """Send what this process has buffered now (a worker process's shutdown, a bench)."""
    buffer.flush_this_process()


def _record(settings: Settings, increments, flush_when_due: bool) -> None:
    if not settings.redis_url:
        return  # no broker configured (a unit test's settings): nothing to count into
    try:
        buffer.of_this_process(send).add(settings.redis_url, increments, flush_when_due)
    except Exception:  # a metric is never worth an error in a step or a delivery
        log.exception("could not record a metric")


def send(url: str, amounts: buffer.Amounts) -> None:
    """Add ``amounts`` to their hashes in one pipeline (no transaction: the increments commute)."""
    pipe = client(url).pipeline(transaction=False)
    for (key, field), amount in amounts.items():
        if isinstance(amount, float):
            pipe.hincrbyfloat(key, field, amount)
        else:
            pipe.hincrby(key, field, amount)
    pipe.execute()


class StepTimer:
    """One step as the metrics see it: counted as started when made, then as finished or
    failed with its duration (into this process's buffer: no round trip of its own)."""

    def __init__(self, settings: Settings, step_type: str):
        self.settings = settings
        self.step_type = step_type
        step_started(settings, step_type)
        self.started = time.perf_counter()

    def finished(self, value: T) -> T:
        """Count the step as finished and hand back what it returned."""
        step_ended(self.settings, self.step_type, False, time.perf_counter() - self.started)
        return value

    def failed(self) -> None:
        step_ended(self.settings, self.step_type, True, time.perf_counter() - self.started)
