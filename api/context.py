"""What a view needs from the app: settings, a store transaction, the publisher."""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import current_app
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.engine.broker_work import Publisher
from shared.store.db import session_scope


def settings() -> Settings:
    return current_app.config["FLOWBIN_SETTINGS"]


def store(read_only: bool = False) -> AbstractContextManager[Session]:
    """A store transaction; ``read_only`` ones must not write (on SQLite they take no lock)."""
    return session_scope(settings().sql_url, read_only=read_only)


def publisher() -> Publisher:
    """Applies broker work once the store committed (workers/publisher.py)."""
    return current_app.extensions["flowbin.publisher"]
