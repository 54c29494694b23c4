"""The app that `celery -A workers` finds (Celery looks for ``workers.celery:app``)."""

from workers import signals  # noqa: F401 (beat loads no task modules; it needs the signals too)
from workers.app import create_celery_app

app = create_celery_app()
