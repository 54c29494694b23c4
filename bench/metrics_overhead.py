"""What the metrics cost: a step's counters in Redis, a request's series in the API process.

Each step records its start and its end (shared/metrics/recorder.py) into its process's buffer
(shared/metrics/buffer.py), which sends them to Redis in one pipeline at most once a second,
mostly from a thread of its own: a step usually makes no round trip. This times, against an
embedded Redis (loopback, like a worker next to its Redis): a step as the engine records it (its
process's flushes, from the buffer's thread, fall inside some of the samples); one step and a
flush of its numbers, what a process pays at most once a second; the previous path (two round
trips a step: one HINCRBY, then a pipeline of HINCRBY / HINCRBY / HINCRBYFLOAT); a bare PING, the
floor of any round trip; and a request's counter and histogram observation in the API process
(prometheus_client, no I/O; multiprocess mode writes to an mmap'd file instead).

    .venv/bin/python bench/metrics_overhead.py [--repeat 5000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from shared.config import Settings
from shared.metrics import api_series, recorder
from shared.ops.embedded_redis import EmbeddedRedis


def timed(call, repeat: int) -> tuple[float, float, float]:
    """p50, p99 and mean, in microseconds, of ``repeat`` calls (after a warm-up)."""
    for _ in range(min(repeat, 300)):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    return statistics.median(samples), p99, statistics.fmean(samples)


def two_round_trips(client) -> None:
    """A step's numbers as the recorder sent them before the buffer: start, then end."""
    client.hincrby(recorder.STEPS, "started|refine", 1)
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(recorder.STEPS, "finished|refine", 1)
    pipe.hincrby(recorder.STEP_SECONDS, "refine|0", 1)
    pipe.hincrbyfloat(recorder.STEP_SECONDS, "refine|sum", 0.001)
    pipe.execute()


def one_flush(settings: Settings) -> None:
    """One step's numbers and the flush that sends them (what a process pays once a second)."""
    recorder.StepTimer(settings, "refine").finished(None)
    recorder.flush()


def check_all_sent(client, steps: int) -> None:
    """The buffered steps all reached Redis, none twice (a timer's flush may still be on its
    way)."""
    recorder.flush()
    deadline = time.monotonic() + 10
    while (sent := int(client.hget(recorder.STEPS, "started|refine") or 0)) < steps:
        assert time.monotonic() < deadline, f"{sent} of {steps} steps reached Redis"
        time.sleep(0.01)
    assert sent == steps, f"{sent} steps reached Redis, of {steps}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="flowbin-bench-metrics-"))
    server = EmbeddedRedis(folder)
    server.start()
    try:
        settings = Settings(redis_url=server.base_url.rstrip("/") + "/15")
        client = recorder.client(settings.redis_url)
        client.flushdb()

        def step() -> None:
            recorder.StepTimer(settings, "refine").finished(None)

        cases = {
            "Redis PING (one round trip)": client.ping,
            "a step's start and end (buffered)": step,
            "a step and a flush (one pipeline)": lambda: one_flush(settings),
            "before: a step's two round trips": lambda: two_round_trips(client),
            "a request's series (in process)": lambda: api_series.request_answered(
                "/bench", "GET", 200, 0.001
            ),
        }
        for label, call in cases.items():
            client.flushdb()
            p50, p99, mean = timed(call, args.repeat)
            print(f"{label:45s} p50 {p50:7.1f} us   p99 {p99:7.1f} us   mean {mean:7.1f} us")
            if call is step:
                check_all_sent(client, min(args.repeat, 300) + args.repeat)
        client.flushdb()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
