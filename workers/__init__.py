"""Flowbin's Celery workers: thin tasks over the flow runtime in ``shared``."""
