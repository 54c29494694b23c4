"""What publishing a step costs: Flowbin's Redis transport against kombu's own.

A step's publish is the task message and its task-sent event, as the engine sends them
(workers/publisher.py) with the same Celery configuration as the workers (workers/app.py). kombu's
own Redis transport builds a new Redis client for each of those two commands;
workers/broker_transport.py keeps one a channel. Both publish against one embedded Redis, in
alternating rounds so a slow spell of the host falls on both; the figure is CPU time of this
process per publish (it does not count the time Redis takes), then wall time. Each round checks
that every message reached its queue.

    .venv/bin/python bench/broker_publish.py [--publishes 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from shared.config import Settings
from shared.engine.scheduling import NextStep, StepCall
from shared.ops.embedded_redis import EmbeddedRedis
from workers.app import create_celery_app
from workers.broker_transport import transport_for
from workers.publisher import publish_step


def celery_app(redis_url: str, transport: str | None):
    app = create_celery_app(Settings(redis_url=redis_url))
    app.conf.broker_transport = transport
    return app


def queued(client: redis.Redis) -> int:
    """Messages waiting in the default queue's priority lists."""
    return sum(
        client.llen(key) for key in client.scan_iter("celery*") if client.type(key) == b"list"
    )


def one_round(app, client: redis.Redis, publishes: int) -> tuple[float, float]:
    """CPU and wall microseconds per publish of ``publishes`` steps."""
    client.flushdb()
    steps = [
        NextStep(StepCall(f"bench-{index}", 0, 0, uuid.uuid4().hex), 0, 300)
        for index in range(publishes)
    ]
    cpu, wall = time.process_time(), time.perf_counter()
    for step in steps:
        publish_step(app, step)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert queued(client) == publishes, f"{queued(client)} of {publishes} steps were queued"
    return cpu / publishes * 1e6, wall / publishes * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=3000, help="steps a side a round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="flowbin-bench-publish-") as folder,
        EmbeddedRedis(Path(folder)) as server,
    ):
        redis_url = server.base_url.rstrip("/") + "/14"
        client = redis.Redis.from_url(redis_url)
        sides = {
            "kombu's Redis transport": celery_app(redis_url, None),
            "Flowbin's (one client a channel)": celery_app(redis_url, transport_for(redis_url)),
        }
        for app in sides.values():
            one_round(app, client, 100)  # warm-up: connections, imports
        figures = {label: [] for label in sides}
        for _ in range(args.rounds):
            for label, app in sides.items():
                figures[label].append(one_round(app, client, args.publishes))
    print(f"{args.publishes} step publishes a side a round, {args.rounds} rounds, medians:")
    for label, rounds in figures.items():
        cpu = statistics.median(cpu for cpu, _ in rounds)
        wall = statistics.median(wall for _, wall in rounds)
        print(f"  {label:34s} CPU {cpu:6.1f} us a publish, wall {wall:6.1f} us")


if __name__ == "__main__":
    main()
