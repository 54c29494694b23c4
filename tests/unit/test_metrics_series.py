"""The pieces of /metrics that need no stack: histogram buckets, and the broker's list names."""

from shared.config import Settings
from shared.metrics import histogram, queue_depth
from workers.app import celery_config


def test_a_value_counts_in_the_first_bucket_it_fits_and_buckets_add_up():
    bounds = (0.1, 1.0)
    assert [histogram.bucket_of(bounds, v) for v in (0.05, 0.1, 0.5, 1.0, 7.0)] == [0, 0, 1, 1, 2]
    assert histogram.cumulative(bounds, {0: 2, 2: 1}) == [("0.1", 2), ("1.0", 2), ("+Inf", 3)]


def test_queue_depth_reads_the_lists_kombu_keeps_for_workers_app_priority_buckets():
    config = celery_config(Settings(redis_url="redis://x"))
    assert config.get("task_default_queue", "celery") == queue_depth.QUEUE
    transport = config["broker_transport_options"]
    assert transport["sep"] == queue_depth.SEP
    assert transport["priority_steps"] == list(queue_depth.BUCKETS)
    assert queue_depth.bucket_key(0) == "celery" and queue_depth.bucket_key(9) == "celery:9"
