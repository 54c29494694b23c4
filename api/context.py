"""What a view needs from the app: settings, a store transaction, the broker."""

from __future__ import annotations

from contextlib import AbstractContextManager

from celery import Celery
from flask import current_app
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.store.db import session_scope


def settings() -> Settings:
    return current_app.config["FLOWBIN_SETTINGS"]


def store(read_only: bool = False) -> AbstractContextManager[Session]:
    """A store transaction; ``read_only`` ones must not write (on SQLite they take no lock)."""
    return session_scope(settings().sql_url, read_only=read_only)


def broker() -> Celery:
    return current_app.extensions["flowbin.celery"]
