"""Worker process signals."""

from __future__ import annotations

from celery.signals import worker_process_init

from shared.store.db import forget_connections


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    # A prefork child must not share the parent's pooled database connections.
    forget_connections()
