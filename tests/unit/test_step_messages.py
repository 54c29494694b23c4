"""A step's message, as it reaches a real Redis broker, names its job, file and step in the
task's ``argsrepr`` (what Flower and the worker's log show), with its fencing token as the task
id and its priority bucket."""

from __future__ import annotations

import json

import redis

from shared.config import Settings
from shared.engine.scheduling import NextStep, StepCall
from workers import broker_transport
from workers.app import celery_config, create_celery_app
from workers.names import RUN_STEP
from workers.publisher import publish_step

DB = 5  # a Redis database no stack uses


def test_a_step_message_says_which_job_file_and_step_it_is(redis_server_url):
    url = f"{redis_server_url}/{DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = create_celery_app(Settings(redis_url=url))
    step = NextStep(StepCall("job-42", 7, 2, task_id="token-1"), priority=9, time_limit=60)
    publish_step(app, step)
    # User priority 9 goes to the first bucket: kombu's queue "celery" itself.
    [raw] = client.lrange("celery", 0, -1)
    message = json.loads(raw)
    headers = message["headers"]
    assert headers["task"] == RUN_STEP and headers["id"] == "token-1"
    assert headers["argsrepr"] == "job=job-42 file=7 step=2"
    app.close()
    client.flushdb()


def test_a_channel_publishes_through_one_redis_client_for_as_long_as_its_pool_lives(
    redis_server_url,
):
    url = f"{redis_server_url}/{DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = create_celery_app(Settings(redis_url=url))
    steps = [NextStep(StepCall("job-7", index, 0, f"t-{index}"), 9, 60) for index in range(4)]
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        assert isinstance(channel, broker_transport.Channel)
        publish_step(app, steps[0], producer)
        first = channel._shared_client
        publish_step(app, steps[1], producer)
        assert channel._shared_client is first and first.connection_pool is channel.pool
        # A channel that lost its connection drops its pool; its client is not used again.
        channel._disconnect_pools()
        publish_step(app, steps[2], producer)
        assert channel._shared_client is not first
        assert channel._shared_client.connection_pool is channel.pool
    publish_step(app, steps[3])
    delivered = [json.loads(raw)["headers"]["id"] for raw in client.lrange("celery", 0, -1)]
    assert sorted(delivered) == ["t-0", "t-1", "t-2", "t-3"]
    app.close()
    client.flushdb()


def test_only_redis_urls_take_flowbins_transport():
    assert (
        broker_transport.transport_for("redis://h:6379/0") == "workers.broker_transport:Transport"
    )
    assert (
        broker_transport.transport_for("rediss://h:6380/0") == "workers.broker_transport:Transport"
    )
    assert broker_transport.transport_for("sentinel://h:26379") is None
    assert celery_config(Settings(redis_url="redis://h:1/2"))["broker_transport"] == (
        "workers.broker_transport:Transport"
    )
