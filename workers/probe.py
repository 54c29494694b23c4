"""A no-op task: the raw-Celery baseline that bench/throughput.py measures Flowbin against."""

from __future__ import annotations

import functools

import redis
from celery import shared_task

from workers.app import worker_settings
from workers.names import NOOP


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(worker_settings().redis_url)


@shared_task(name=NOOP)
def noop(run: int, step: int, done_key: str | None = None) -> None:
    """Does nothing; the last task of a chain counts the chain as done in ``done_key``, so the
    caller can tell when all chains finished without a result backend."""
    if done_key:
        _redis().incr(done_key)
