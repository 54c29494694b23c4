"""The store's connection pool on PostgreSQL: a connection that idled is pinged before use, and
one that the server dropped is replaced rather than handed out."""

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared.store import db
from tests.conftest import postgres_url


def test_an_idle_pooled_connection_that_the_server_dropped_is_replaced(monkeypatch):
    url = postgres_url()
    engine = db.engine_for(url)
    engine.dispose()
    with db.connection_scope(url) as conn:
        first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    # The server drops it while it sits in the pool (a restart, an idle timeout); the kill comes
    # from a connection of another engine, outside this pool.
    outsider = create_engine(url, poolclass=NullPool)
    with outsider.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}).scalar()
    outsider.dispose()
    monkeypatch.setattr(db, "IDLE_PING_AFTER", 0.0)  # every pooled connection counts as idle
    with db.connection_scope(url) as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first_pid
    engine.dispose()
