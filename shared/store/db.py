"""Engines and sessions for the SQL store: the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from shared.store.sqlite_turns import BUSY_TIMEOUT, TurnTakingConnection


def _tune_sqlite(dbapi_connection, _record) -> None:
    # API, workers and beat write one file from several processes: WAL lets readers go on
    # while one writes, and busy_timeout makes a writer wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin(conn) -> None:
    # SQLite upgrades a read transaction to a write one lazily and fails with "database is
    # locked" if another process wrote meanwhile; taking the write lock at BEGIN avoids that.
    # Read-only transactions (status polls, token checks) need no lock and must not queue
    # behind the workers' writes. The BEGIN goes straight to the driver: every transaction
    # starts here, and a full SQLAlchemy execution costs more than the BEGIN itself.
    driver = conn.connection.driver_connection
    if conn.get_execution_options().get("flowbin_read_only"):
        driver.execute("BEGIN")
    else:
        driver.begin_write()  # BEGIN IMMEDIATE, in this file's writers' queue


# A pooled connection idle longer than this is pinged before use; one used more recently is
# trusted. Pinging on every checkout (pool_pre_ping) would cost a round trip per transaction on
# the workers' hot path; a connection lost while in use raises OperationalError, which the step
# task retries (workers/tasks.py).
IDLE_PING_AFTER = 5.0


def _note_checkin(_dbapi_connection, record) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _pinger(dialect):
    def ping_if_idle(dbapi_connection, record, _proxy) -> None:
        if time.monotonic() - record.info.get("checked_in_at", 0.0) <= IDLE_PING_AFTER:
            return
        try:
            dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()  # end the transaction the ping opened
        except dialect.loaded_dbapi.Error as error:
            # The pool drops this connection and checks out a new one.
            raise exc.DisconnectionError(f"the pooled connection is gone: {error}") from error

    return ping_if_idle


_engines: dict[str, Engine] = {}
_engine_variants: dict[tuple[str, str], Engine] = {}
_sessionmakers: dict[tuple[str, bool | str], sessionmaker[Session]] = {}


def engine_for(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(
                url,
                connect_args={
                    "timeout": BUSY_TIMEOUT,
                    "isolation_level": None,
                    "factory": TurnTakingConnection,
                },
            )
            event.listen(engine, "connect", _tune_sqlite)
            event.listen(engine, "begin", _begin)
        else:
            engine = create_engine(url, pool_size=5, max_overflow=10)
            event.listen(engine, "connect", _note_checkin)  # a new connection needs no ping
            event.listen(engine, "checkin", _note_checkin)
            event.listen(engine, "checkout", _pinger(engine.dialect))
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


def _variant(url: str, name: str, **options) -> Engine:
    """The store's engine with execution options (sharing its pool), built once."""
    key = (url, name)
    engine = _engine_variants.get(key)
    if engine is None:
        engine = _engine_variants[key] = engine_for(url).execution_options(**options)
    return engine


@contextmanager
def connection_scope(url: str, *, read_only: bool = False) -> Iterator[Connection]:
    """One transaction on a bare connection, for hot paths that need no ORM session;
    ``read_only`` ones must not write (on SQLite they do not take the write lock)."""
    engine = _variant(url, "read_only", flowbin_read_only=True) if read_only else engine_for(url)
    with engine.begin() as conn:
        yield conn


@contextmanager
def statement_scope(url: str, *, read_only: bool = False) -> Iterator[Connection]:
    """A bare connection for statements that each stand on their own (each one atomic, none
    needing another's snapshot). On PostgreSQL they run in autocommit: no BEGIN and COMMIT
    round trips. SQLite has no round trips to save and a lone write statement could fail to
    upgrade its read snapshot, so there it is ``connection_scope``'s transaction."""
    if url.startswith("sqlite"):
        with connection_scope(url, read_only=read_only) as conn:
            yield conn
        return
    with _variant(url, "autocommit", isolation_level="AUTOCOMMIT").connect() as conn:
        yield conn


@contextmanager
def statement_session(url: str) -> Iterator[Session]:
    """An ORM session for reads whose statements each stand on their own, as
    ``statement_scope``'s: in autocommit on PostgreSQL (no BEGIN and COMMIT round trips), in a
    read-only transaction on SQLite. It must not write."""
    if url.startswith("sqlite"):
        with session_scope(url, read_only=True) as session:
            yield session
        return
    key = (url, "autocommit")
    maker = _sessionmakers.get(key)
    if maker is None:
        engine = _variant(url, "autocommit", isolation_level="AUTOCOMMIT")
        maker = _sessionmakers[key] = sessionmaker(engine, expire_on_commit=False)
    with maker() as session:
        yield session


def custom_plans(store: Session | Connection) -> None:
    """PostgreSQL: plan this transaction's statements for their own parameters. The driver
    prepares a statement after a few runs, and PostgreSQL may then serve it a generic plan: one
    that, for a listing, suits no offset or filter well (a first page once took 382 ms instead of
    11 ms after ten deep pages on the same connection). For read transactions whose best plan
    depends on their parameters; the hot path keeps its cached plans."""
    conn = connection_of(store)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def connection_of(store: Session | Connection) -> Connection:
    """The connection of an ORM session's transaction, or the connection itself."""
    return store.connection() if isinstance(store, Session) else store


def forget_connections() -> None:
    """Drop pooled connections inherited from a parent process (prefork children)."""
    for engine in _engines.values():
        engine.dispose(close=False)
