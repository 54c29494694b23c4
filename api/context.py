"""What a view needs from the app: settings, a store transaction, the broker."""

from __future__ import annotations

from contextlib import AbstractContextManager

from celery import Celery
from flask import current_app
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import session_scope


def settings() -> Settings:
    return current_app.config["FLOWBIN_SETTINGS"]


def store() -> AbstractContextManager[Session]:
    return session_scope(settings().sql_url)


def broker() -> Celery:
    return current_app.extensions["flowbin.celery"]
