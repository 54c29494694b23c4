"""A column among a list of values a request brings, such as the ids of a page of jobs.

SQLAlchemy writes ``column IN (...)`` with a bind parameter (and, on PostgreSQL, a cast) for
each value, so a page of 1,000 jobs made statements of some 20 KB that SQLAlchemy rendered and
psycopg parsed again on every request (psycopg caches only short statements). On PostgreSQL the
list goes as one array parameter instead: ``column = ANY(%(ids)s)``, the same short statement
for any number of values."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement


def among(store: Session | Connection, column: ColumnElement, values: Iterable) -> ColumnElement:
    """``column`` is one of ``values``, as ``store``'s database reads it best."""
    values = list(values)
    dialect = store.dialect if isinstance(store, Connection) else store.get_bind().dialect
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, value=values, type_=ARRAY(column.type)))
    return column.in_(values)
