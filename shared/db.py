"""Engines and sessions for the SQL store: the same code on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _tune_sqlite(dbapi_connection, _record) -> None:
    # API, workers and beat write one file from several processes: WAL lets readers go on
    # while one writes, and busy_timeout makes a writer wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


def _begin(conn) -> None:
    # SQLite upgrades a read transaction to a write one lazily and fails with "database is
    # locked" if another process wrote meanwhile; taking the write lock at BEGIN avoids that.
    # Read-only transactions (status polls, token checks) need no lock and must not queue
    # behind the workers' writes.
    if conn.get_execution_options().get("flowbin_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_engines: dict[str, Engine] = {}
_sessionmakers: dict[tuple[str, bool], sessionmaker[Session]] = {}


def engine_for(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})
            event.listen(engine, "connect", _tune_sqlite)
            event.listen(engine, "begin", _begin)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        _engines[url] = engine
    return engine


@contextmanager
def session_scope(url: str, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    ``read_only`` transactions must not write: on SQLite they do not take the write lock."""
    key = (url, read_only)
    maker = _sessionmakers.get(key)
    if maker is None:
        engine = engine_for(url)
        if read_only:
            engine = engine.execution_options(flowbin_read_only=True)
        maker = _sessionmakers[key] = sessionmaker(engine, expire_on_commit=False)
    session = maker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def connection_scope(url: str) -> Iterator[Connection]:
    """One write transaction on a bare connection, for hot paths that need no ORM session."""
    with engine_for(url).begin() as conn:
        yield conn


@contextmanager
def session_on(conn: Connection) -> Iterator[Session]:
    """An ORM session inside ``conn``'s transaction: what it adds is flushed there, and the
    transaction stays the caller's to commit."""
    session = Session(bind=conn)  # joins the transaction without ever committing it
    try:
        yield session
        session.flush()
    finally:
        session.close()


def forget_connections() -> None:
    """Drop pooled connections inherited from a parent process (prefork children)."""
    for engine in _engines.values():
        engine.dispose(close=False)
