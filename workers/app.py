"""The Celery application and its configuration: the one place Celery is configured."""

from __future__ import annotations

import functools

from celery import Celery

from shared import url_guard
from shared.config import Settings
from workers import broker_transport
from workers.names import (
    DELIVER_DUE,
    DELIVERY_PRIORITY,
    EXPIRE_JOBS,
    RECOVER_STALLED,
    RECOVERY_PRIORITY,
    RETENTION_PRIORITY,
)

# A step killed by its hard limit is given this long past its soft limit to record the failure.
HARD_LIMIT_GRACE = 30


def celery_config(settings: Settings) -> dict:
    url_guard.check_networks(settings.allowed_networks, settings.webhook_allowed_networks)
    if not settings.redis_url:
        raise RuntimeError(
            "FLOWBIN_REDIS_URL is not set: workers and the API need a Redis URL "
            "(`flowbin up` starts an embedded Redis and sets it)"
        )
    transport = {
        # Ten real priority buckets; Redis pops bucket 0 first, so user priority 9 is sent as 0.
        "priority_steps": list(range(10)),
        "sep": ":",
        "queue_order_strategy": "priority",
        # An unacked step comes back after this long: it must exceed the longest step.
        "visibility_timeout": settings.visibility_timeout,
    }
    return {
        "broker_url": settings.redis_url,
        "broker_transport": broker_transport.transport_for(settings.redis_url),
        "result_backend": settings.redis_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_ignore_result": True,
        # Ack after the step ran, requeue it if its worker dies, and fetch only when a slot is
        # free, so no step is lost and a late high-priority step is not stuck behind prefetch.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # A message without priority would land in the highest bucket; every send passes one,
        # and this is the lowest as a safety net.
        "task_default_priority": 9,
        "task_inherit_parent_priority": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "imports": ("workers.tasks", "workers.signals", "workers.probe", "workers.notify_tasks"),
        "beat_schedule": {
            # Sends due webhooks and emails; a tick nobody took within its interval is dropped,
            # the next one does the same work.
            "deliver-notifications": {
                "task": DELIVER_DUE,
                "schedule": settings.delivery_interval,
                "options": {"expires": settings.delivery_interval, "priority": DELIVERY_PRIORITY},
            },
            # Restarts steps whose claim lapsed (dead worker, hard time limit) without waiting
            # for the broker's visibility timeout.
            "recover-stalled-steps": {
                "task": RECOVER_STALLED,
                "schedule": settings.recovery_interval,
                "options": {"expires": settings.recovery_interval, "priority": RECOVERY_PRIORITY},
            },
            # Deletes the store's rows of jobs ended more than FLOWBIN_RETENTION_DAYS ago.
            **(
                {
                    "expire-old-jobs": {
                        "task": EXPIRE_JOBS,
                        "schedule": settings.retention_interval,
                        "options": {
                            "expires": settings.retention_interval,
                            "priority": RETENTION_PRIORITY,
                        },
                    }
                }
                if settings.retention_days > 0
                else {}
            ),
        },
    }


@functools.cache
def worker_settings() -> Settings:
    """The settings of this worker process, read from its environment once."""
    return Settings.from_env()


def create_celery_app(settings: Settings | None = None) -> Celery:
    """A Celery app; without ``settings`` it reads the environment when first configured."""
    app = Celery("flowbin", set_as_current=settings is None)
    app.add_defaults(lambda: celery_config(settings or Settings.from_env()))
    return app
