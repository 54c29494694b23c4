"""The periodic task that sends completion webhooks and notification emails.

Beat publishes it every FLOWBIN_DELIVERY_INTERVAL seconds (workers/app.py); any number of workers
may run it at once, because each delivery is claimed in the store before it is attempted.
"""

from __future__ import annotations

from celery import shared_task

from shared.delivery import notify
from workers.app import worker_settings
from workers.names import DELIVER_DUE


@shared_task(name=DELIVER_DUE, ignore_result=True)
def deliver_due() -> int:
    return notify.deliver_due(worker_settings())
