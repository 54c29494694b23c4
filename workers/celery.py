"""The app that `celery -A workers` finds (Celery looks for ``workers.celery:app``)."""

from workers.app import create_celery_app

app = create_celery_app()
