"""What a view needs from the app: settings, a store transaction, the guarded drive, the
publisher."""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import current_app
from sqlalchemy.orm import Session

from shared.accounts.access import drive_for
from shared.config import Settings
from shared.drive import Drive
from shared.engine.broker_work import Publisher
from shared.store.db import session_scope, statement_session


def settings() -> Settings:
    return current_app.config["FLOWBIN_SETTINGS"]


def store(read_only: bool = False) -> AbstractContextManager[Session]:
    """A store transaction; ``read_only`` ones must not write (on SQLite they take no lock)."""
    return session_scope(settings().sql_url, read_only=read_only)


def store_statements() -> AbstractContextManager[Session]:
    """A session for reads that are each one statement: no transaction's round trips on
    PostgreSQL. It must not write."""
    return statement_session(settings().sql_url)


def guarded_drive() -> Drive:
    """The drive as callers see it: every path they give is checked (shared/accounts/access)."""
    return drive_for(settings())


def publisher() -> Publisher:
    """Applies broker work once the store committed (workers/publisher.py)."""
    return current_app.extensions["flowbin.publisher"]
