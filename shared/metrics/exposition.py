"""One scrape: every series, rendered in Prometheus's text format.

A source that cannot be read (Redis or the store down) costs its own series only: the scrape
still answers, with ``flowbin_metrics_source_up`` 0 for that source and a warning in the log."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from shared.config import Settings
from shared.metrics import api_series, collectors

log = logging.getLogger(__name__)

# prometheus_client's own variable: the folder of the API processes' series under gunicorn.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Scrape:
    """The collectors of one scrape by source, in the one shape generate_latest asks for."""

    def __init__(self, sources: dict[str, list]):
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "flowbin_metrics_source_up",
            "Whether this scrape could read the source of its series (1) or not (0)",
            labels=["source"],
        )
        for source, parts in self.sources.items():
            try:
                # Read whole before any is yielded, so that a source fails all or nothing.
                found = [metric for part in parts for metric in part.collect()]
            except (redis.RedisError, SQLAlchemyError) as error:
                log.warning("metrics: could not read the %s: %s", source, error)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from found
        yield up


def render(settings: Settings) -> bytes:
    folder = os.environ.get(MULTIPROC_DIR)
    # Under gunicorn every API process's values, read from their files; else this process's.
    api = MultiProcessCollector(None, path=folder) if folder else api_series.REGISTRY
    sources = {"api": [api], "store": [collectors.JobStates(settings.sql_url)]}
    if settings.redis_url:
        sources["redis"] = [
            collectors.WorkerSeries(settings.redis_url),
            collectors.QueueDepth(settings.redis_url),
        ]
    return generate_latest(_Scrape(sources))
