"""Statements on the workers' hot path, compiled once and run on the DBAPI cursor.

A step runs a handful of small statements; SQLAlchemy's per-execution work (cache lookup,
execution context, result wrapping) cost more than the statements themselves. A ``Prepared``
statement is still written as a Core expression, so it stays portable: it is compiled once per
dialect, its parameters go through the column types' own bind processors (datetimes, JSON), and
it runs in the caller's transaction on the same connection. What it gives up is what the hot path
does not use: runtime defaults (pass every value, ``updated_at`` included) and expanding IN
parameters (use ``one_of``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exc, literal_column
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import Executable


def one_of(column: ColumnElement, values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('a', 'b')`` with the constants written into the SQL: no expanding bind
    parameters to render at every execution. Only for the code's own constants."""
    quoted = ["'" + value.replace("'", "''") + "'" for value in values]
    return column.in_([literal_column(text) for text in quoted])


@contextmanager
def _as_sqlalchemy_errors(conn: Connection, sql: str) -> Iterator[None]:
    """Driver errors as SQLAlchemy raises them (IntegrityError, OperationalError, ...), and a
    lost connection invalidated, so callers and retries see one kind of error everywhere."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as error:
        lost = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(error)
        raise exc.DBAPIError.instance(
            sql, None, error, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from error


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool
    names: tuple[str, ...]
    # One per parameter, in ``names`` order: takes the caller's parameters, gives the value.
    values: tuple[Callable[[dict], Any], ...]
    # The returned columns: a row class with their names, and their types' result processors.
    row: type | None
    results: tuple[Callable | None, ...]


def _value_of(
    name: str, literal: Any, processor: Callable | None, from_caller: bool
) -> Callable[[dict], Any]:
    if not from_caller:
        fixed = processor(literal) if processor else literal
        return lambda params: fixed
    if processor is None:
        return lambda params: params[name]
    return lambda params: processor(params[name])


class Prepared:
    """A Core statement compiled once per dialect. ``execute`` runs it; ``first`` and ``all``
    return what it selects or RETURNs as named tuples; ``plan`` tells how it would run."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(
                "a prepared statement cannot use runtime column defaults: pass a value for "
                + ", ".join(c.name for c in [*compiled.insert_prefetch, *compiled.update_prefetch])
            )
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        if any(bind.expanding for bind in by_name.values()):
            raise ValueError("a prepared statement cannot expand IN parameters: use one_of()")
        if any(bind.callable is not None for bind in by_name.values()):
            raise ValueError("a prepared statement cannot call bind parameter functions")
        positional = dialect.positional
        names = tuple(compiled.positiontup if positional else by_name)
        values = []
        for name in names:
            bind = by_name[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            # A bindparam() without a value is the caller's; the rest are the statement's own
            # constants (the 1 of ``attempts + 1``, a None in ``values()``).
            values.append(_value_of(bind.key, bind.value, processor, bind.required))
        row, results = None, ()
        # What a SELECT selects or a DML statement RETURNs (empty without RETURNING).
        columns = list(getattr(self.statement, "exported_columns", ()))
        if columns:
            row = namedtuple("Row", [column.key for column in columns], rename=True)
            results = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            )
        return _Compiled(compiled.string, positional, names, tuple(values), row, results)

    def _for(self, conn: Connection) -> _Compiled:
        compiled = self._compiled.get(conn.dialect.name)
        if compiled is None:
            compiled = self._compiled[conn.dialect.name] = self._compile(conn.dialect)
        return compiled

    @staticmethod
    def _arguments(compiled: _Compiled, params: dict) -> Any:
        if compiled.positional:
            return [value(params) for value in compiled.values]
        return {
            name: value(params) for name, value in zip(compiled.names, compiled.values, strict=True)
        }

    def execute(self, conn: Connection, params: dict) -> None:
        compiled = self._for(conn)
        cursor = conn.connection.driver_connection.cursor()
        try:
            with _as_sqlalchemy_errors(conn, compiled.sql):
                cursor.execute(compiled.sql, self._arguments(compiled, params))
        finally:
            cursor.close()

    def plan(self, conn: Connection, params: dict) -> list[str]:
        """How the database would run the statement (its EXPLAIN), one line per step; nothing
        is executed. For tests that check the hot statements stay on indexes."""
        compiled = self._for(conn)
        explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        cursor = conn.connection.driver_connection.cursor()
        try:
            with _as_sqlalchemy_errors(conn, compiled.sql):
                cursor.execute(explain + compiled.sql, self._arguments(compiled, params))
                return [str(row[-1]) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, conn: Connection, params: dict) -> tuple | None:
        """The first row the statement returns (a named tuple), or None."""
        rows = self._fetch(conn, params, many=False)
        return rows[0] if rows else None

    def all(self, conn: Connection, params: dict) -> list[tuple]:
        """Every row the statement returns, as named tuples."""
        return self._fetch(conn, params, many=True)

    def _fetch(self, conn: Connection, params: dict, many: bool) -> list[tuple]:
        compiled = self._for(conn)
        cursor = conn.connection.driver_connection.cursor()
        try:
            with _as_sqlalchemy_errors(conn, compiled.sql):
                cursor.execute(compiled.sql, self._arguments(compiled, params))
                if not cursor.description or compiled.row is None:
                    return []
                raw = cursor.fetchall() if many else [cursor.fetchone()]
        finally:
            cursor.close()
        return [
            compiled.row._make(
                value if process is None else process(value)
                for value, process in zip(row, compiled.results, strict=True)
            )
            for row in raw
            if row is not None
        ]
