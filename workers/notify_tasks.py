"""The periodic task that sends completion webhooks and notification emails.

Beat publishes it every FLOWBIN_DELIVERY_INTERVAL seconds (workers/app.py); any number of workers
may run it at once, because each delivery is claimed in the store before it is attempted.
"""

from __future__ import annotations

import logging

from celery import Celery, shared_task

from shared.delivery import notify
from workers.app import worker_settings
from workers.names import DELIVER_DUE, DELIVERY_PRIORITY

log = logging.getLogger(__name__)


@shared_task(name=DELIVER_DUE, ignore_result=True)
def deliver_due() -> int:
    return notify.deliver_due(worker_settings())


def publish_deliver_due(app: Celery, expires: float) -> None:
    """Ask for a delivery round now (a redelivery), instead of waiting for the next tick. Beat
    is the guarantee, so a broker that is down only delays the round."""
    try:
        app.send_task(DELIVER_DUE, priority=DELIVERY_PRIORITY, expires=expires, ignore_result=True)
    except Exception:  # kombu raises a variety of connection errors
        log.warning("could not publish %s; beat will run it", DELIVER_DUE, exc_info=True)
