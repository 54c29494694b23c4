"""WSGI entry point for gunicorn: ``gunicorn api.wsgi:app``."""

from api.app import create_app
from shared.ops.startup_heap import freeze_startup_objects

app = create_app()
# Each gunicorn worker imports this module once: what it built lives as long as the worker.
freeze_startup_objects()
