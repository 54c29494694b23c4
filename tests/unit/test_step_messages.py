"""A step's message, as it reaches a real Redis broker, names its job, file and step in the
task's ``argsrepr`` (what Flower and the worker's log show), with its fencing token as the task
id and its priority bucket."""

from __future__ import annotations

import json

import redis

from shared.config import Settings
from shared.engine.scheduling import NextStep, StepCall
from workers.app import create_celery_app
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
