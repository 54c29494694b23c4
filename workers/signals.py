"""Worker and beat process signals."""

from __future__ import annotations

from celery.signals import after_setup_logger, worker_process_init, worker_process_shutdown

from shared.metrics import recorder
from shared.ops.startup_heap import freeze_startup_objects
from shared.store.db import forget_connections
from workers import log_filters


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    # A prefork child must not share the parent's pooled database connections.
    forget_connections()


@worker_process_init.connect
def _freeze_inherited_objects(**_kwargs) -> None:
    # What a prefork child inherited (the imported tasks, the Celery app) lives as long as it
    # does: its steps do not wait for a full collection to walk it.
    freeze_startup_objects()


@worker_process_shutdown.connect
def _send_buffered_metrics(**_kwargs) -> None:
    # A prefork child leaves by os._exit, without atexit: what it buffered is sent here.
    recorder.flush()


@after_setup_logger.connect
def _quiet_periodic_tasks(**_kwargs) -> None:
    # Pool children inherit the filters installed here, in the worker's main process.
    log_filters.install()
