"""Histogram buckets kept as plain counters, so that any process can add to them in Redis: one
counter per bucket a value falls in (not cumulative), plus the sum; the exposition makes them
cumulative."""

from __future__ import annotations

import bisect

# Upper bounds, in seconds, of a step's duration: steps run from milliseconds (a refine) to
# minutes (an http step, a slow UDF).
STEP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def bucket_of(bounds: tuple[float, ...], value: float) -> int:
    """The index of the first bound ``value`` is at most; ``len(bounds)`` means +Inf."""
    return bisect.bisect_left(bounds, value)


def cumulative(bounds: tuple[float, ...], counts: dict[int, int]) -> list[tuple[str, float]]:
    """Prometheus's ``le`` buckets from per-bucket counts, +Inf last."""
    buckets, running = [], 0
    for index, bound in enumerate(bounds):
        running += counts.get(index, 0)
        buckets.append((_bound(bound), running))
    running += counts.get(len(bounds), 0)
    buckets.append(("+Inf", running))
    return buckets


def _bound(value: float) -> str:
    return repr(float(value))
