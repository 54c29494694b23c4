"""How many messages wait in the broker, per priority, read straight from Redis.

kombu's Redis transport keeps one list per priority bucket: the queue's own name for bucket 0,
``<queue><sep><bucket>`` for the others (kombu/transport/redis.py, ``_q_for_pri``). Flowbin
configures ten buckets and the ``:`` separator (workers/app.py) and sends user priority ``p``
to bucket ``9 - p``. Messages a worker has taken but not acknowledged are not in these lists."""

from __future__ import annotations

import redis

# Celery's default queue, which every Flowbin task goes to; the transport options of
# workers/app.py (tests/unit/test_metrics_series.py checks that they agree).
QUEUE = "celery"
SEP = ":"
BUCKETS = range(10)


def bucket_key(bucket: int) -> str:
    return QUEUE if bucket == 0 else f"{QUEUE}{SEP}{bucket}"


def read(client: redis.Redis) -> dict[int, int]:
    """Flowbin priority (0-9) -> messages waiting at it, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for bucket in BUCKETS:
        pipe.llen(bucket_key(bucket))
    return {9 - bucket: depth for bucket, depth in zip(BUCKETS, pipe.execute(), strict=True)}
