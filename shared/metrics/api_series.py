"""The API process's own series: requests by endpoint, and its sync runner pool.

They are prometheus_client metrics in this process. Under gunicorn, prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by api/gunicorn_conf.py before anything
imports prometheus_client) keeps each process's values in a file of that folder, and a scrape
answered by any process sums every process's files; the gauges count live processes only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Where the series live when there is no multiprocess folder (Flask's dev server, tests): a
# registry of their own, so that nothing else a process registers globally is exposed.
REGISTRY = CollectorRegistry(auto_describe=False)

REQUESTS = Counter(
    "flowbin_http_requests",
    "HTTP requests answered, by endpoint (the URL rule), method and status",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "flowbin_http_request_duration_seconds",
    "Seconds from a request's arrival to its answer's start, by endpoint, method and status",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
SYNC_RUNNERS = Gauge(
    "flowbin_sync_runners",
    "Sync runner processes of the API processes, busy (running a sync run) or idle",
    ["state"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
SYNC_POOL_SIZE = Gauge(
    "flowbin_sync_runner_pool_size",
    "Sync runner processes the API processes keep (FLOWBIN_SYNC_RUNNERS each, once started)",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
# The endpoint of a request that matched no URL rule (a 404 or 405 of Flask's own).
UNMATCHED = "<unmatched>"


def request_answered(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    labels = (endpoint or UNMATCHED, method, str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_SECONDS.labels(*labels).observe(seconds)


def sync_pool_changed(size: int, idle: int) -> None:
    """This process's pool now has ``size`` runners, ``idle`` of them free."""
    SYNC_POOL_SIZE.set(size)
    SYNC_RUNNERS.labels("idle").set(idle)
    SYNC_RUNNERS.labels("busy").set(size - idle)
