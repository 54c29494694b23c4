"""The series read at scrape time, as prometheus_client collectors: what workers recorded in
Redis (recorder.py), jobs by state from the store, and queue depth from the broker's lists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select

from shared.metrics import histogram, queue_depth, recorder
from shared.states import JobStatus
from shared.store.db import statement_scope
from shared.store.models import Job


class WorkerSeries:
    """Steps by type and deliveries by outcome, summed over every worker (one round trip)."""

    def __init__(self, redis_url: str):
        self.redis_url = redis_url

    def collect(self) -> Iterator[Metric]:
        pipe = recorder.client(self.redis_url).pipeline(transaction=False)
        for key in (recorder.STEPS, recorder.STEP_SECONDS, recorder.DELIVERIES):
            pipe.hgetall(key)
        steps, seconds, deliveries = (_decoded(found) for found in pipe.execute())
        yield from _step_counters(steps)
        yield _step_durations(seconds)
        yield _deliveries(deliveries)


def _decoded(found: dict[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in found.items()}


def _step_counters(steps: dict[str, str]) -> Iterator[Metric]:
    families = {
        outcome: CounterMetricFamily(
            f"flowbin_steps_{outcome}",
            f"Steps {outcome} by the workers, by step type"
            + (" (failed as a whole: an error outside a record, or the time limit)")
            * (outcome == "failed"),
            labels=["step_type"],
        )
        for outcome in recorder.STEP_OUTCOMES
    }
    for field, value in sorted(steps.items()):
        outcome, _, step_type = field.partition(recorder.SEP)
        if outcome in families:
            families[outcome].add_metric([step_type], int(value))
    yield from families.values()


def _step_durations(seconds: dict[str, str]) -> Metric:
    family = HistogramMetricFamily(
        "flowbin_step_duration_seconds",
        "How long steps took to run, from claim to their records written, by step type",
        labels=["step_type"],
    )
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    sums: dict[str, float] = defaultdict(float)
    for field, value in seconds.items():
        step_type, _, bucket = field.rpartition(recorder.SEP)
        if bucket == "sum":
            sums[step_type] = float(value)
        else:
            counts[step_type][int(bucket)] = int(value)
    for step_type in sorted(counts):
        family.add_metric(
            [step_type],
            histogram.cumulative(histogram.STEP_SECONDS, counts[step_type]),
            sum_value=sums[step_type],
        )
    return family


def _deliveries(deliveries: dict[str, str]) -> Metric:
    family = CounterMetricFamily(
        "flowbin_deliveries",
        "Webhook and email delivery attempts, by channel and what followed "
        "(delivered; retrying: failed, another attempt is due; failed: the last attempt failed)",
        labels=["channel", "outcome"],
    )
    for field, value in sorted(deliveries.items()):
        channel, _, outcome = field.partition(recorder.SEP)
        family.add_metric([channel, outcome], int(value))
    return family


class JobStates:
    """Jobs by state, in one grouped query (over ix_jobs_status_created_id, which leads with
    status)."""

    def __init__(self, sql_url: str):
        self.sql_url = sql_url

    def collect(self) -> Iterator[Metric]:
        with statement_scope(self.sql_url, read_only=True) as conn:
            found = dict(conn.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        family = GaugeMetricFamily("flowbin_jobs", "Jobs in the store, by state", labels=["state"])
        for status in JobStatus:
            family.add_metric([status.value], found.get(status, 0))
        yield family


class QueueDepth:
    """Step and task messages waiting in the broker, by Flowbin priority (9 highest)."""

    def __init__(self, redis_url: str):
        self.redis_url = redis_url

    def collect(self) -> Iterator[Metric]:
        depths = queue_depth.read(recorder.client(self.redis_url))
        family = GaugeMetricFamily(
            "flowbin_queue_depth",
            "Messages waiting in the broker for a worker, by priority (9 highest; recovery "
            "rounds wait at 9, delivery rounds at 5)",
            labels=["priority"],
        )
        for priority, depth in sorted(depths.items(), reverse=True):
            family.add_metric([str(priority)], depth)
        yield family
