"""SQLite writers queue for the database file on its lock file (shared/store/sqlite_turns.py):
a write transaction holds the turn until it commits, rolls back or closes; reads take none; a
forked child queues on its own; a thread nesting two writes does not wait for itself."""

from __future__ import annotations

import fcntl
import os
import threading

import pytest
from sqlalchemy import text

from shared.store import db, sqlite_turns
from shared.store.sqlite_turns import _Turns, lock_path


def turn_is_free(path: str) -> bool:
    """Whether another writer could take the turn now: a lock file opened anew conflicts with
    any turn held, in this process too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also gives back the probe's own lock
    return True


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with db.engine_for(url).begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield url, lock_path(str(tmp_path / "store.db"))
    db.engine_for(url).dispose()


def test_a_write_transaction_holds_the_turn_until_it_commits(store):
    url, lock = store
    with db.connection_scope(url) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not turn_is_free(lock)
    assert turn_is_free(lock)


def test_a_rolled_back_write_gives_the_turn_back(store):
    url, lock = store
    with pytest.raises(RuntimeError), db.connection_scope(url) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("the transaction fails")
    assert turn_is_free(lock)
    with db.connection_scope(url, read_only=True) as conn:
        assert conn.scalar(text("SELECT count(*) FROM t")) == 0


def test_a_closed_connection_gives_the_turn_back(store):
    url, lock = store
    raw = db.engine_for(url).raw_connection()
    raw.driver_connection.begin_write()
    assert not turn_is_free(lock)
    raw.invalidate()  # closes the driver's connection mid-transaction
    assert turn_is_free(lock)


def test_reads_take_no_turn_and_do_not_wait_for_a_writer(store):
    url, lock = store
    with db.connection_scope(url) as writer:
        writer.execute(text("INSERT INTO t VALUES (1)"))
        read = []
        reader = threading.Thread(
            target=lambda: read.append(_count(url)),
            name="reader",
        )
        reader.start()
        reader.join(timeout=10)
        assert read == [0]  # the writer has not committed yet, and the reader did not wait
        assert not turn_is_free(lock)


def test_a_second_writer_waits_for_the_turn_then_goes(store):
    url, lock = store
    started, finished = threading.Event(), threading.Event()

    def second_writer():
        started.set()
        with db.connection_scope(url) as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        finished.set()

    with db.connection_scope(url) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=second_writer)
        thread.start()
        assert started.wait(10)
        # Still queued while this transaction is open: it cannot have written.
        assert not finished.wait(0.2)
    assert finished.wait(10)
    thread.join(10)
    assert _count(url) == 2


def test_a_writer_goes_on_without_a_turn_held_too_long(store, monkeypatch):
    url, lock = store
    monkeypatch.setattr(sqlite_turns, "TURN_TIMEOUT", 0.2)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a writer stuck with its turn, outside any transaction
    try:
        with db.connection_scope(url) as conn:  # waits 0.2 s, then SQLite's lock decides
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        os.close(holder)
    assert _count(url) == 1


def test_a_forked_child_queues_on_its_own_turn(store):
    url, lock = store
    with db.connection_scope(url) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        pid = os.fork()
        if pid == 0:  # the child: its inherited lock file must not pass for a turn of its own
            fd = sqlite_turns._local.turns.fd(lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os._exit(1)  # it got the turn the parent holds
            except BlockingIOError:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_a_forked_child_gives_back_the_turns_it_takes(store):
    url, lock = store
    with db.connection_scope(url) as conn:  # the parent has taken and given back a turn
        conn.execute(text("INSERT INTO t VALUES (1)"))
    pid = os.fork()
    if pid == 0:  # the child writes, then its turn must be free for others
        code = 1
        try:
            db.forget_connections()
            with db.connection_scope(url) as conn:
                conn.execute(text("INSERT INTO t VALUES (2)"))
            code = 0 if turn_is_free(lock) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert turn_is_free(lock)
    assert _count(url) == 2


def test_a_turn_taken_on_one_thread_is_given_back_on_another(store):
    url, lock = store
    raw = db.engine_for(url).raw_connection()
    raw.driver_connection.begin_write()
    assert not turn_is_free(lock)
    ended = threading.Thread(target=raw.driver_connection.rollback)
    ended.start()
    ended.join(10)
    assert turn_is_free(lock)
    raw.close()


def test_a_thread_nesting_two_writes_does_not_wait_for_itself(tmp_path):
    lock = str(tmp_path / "nested.lock")
    turns = _Turns()
    turns.take(lock, holder=1)
    turns.take(lock, holder=2)  # returns at once: the thread already holds the turn
    turns.give_back(lock, holder=1)
    assert not turn_is_free(lock)  # the inner holder still has it
    turns.give_back(lock, holder=2)
    assert turn_is_free(lock)


def test_memory_and_uri_databases_take_no_turns():
    assert lock_path(":memory:") is None
    assert lock_path("") is None
    assert lock_path("file:store.db?mode=ro") is None
    assert lock_path("/var/flowbin/flowbin.db") == "/var/flowbin/flowbin.db-writer.lock"


def test_a_relative_database_path_locks_beside_the_file_it_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lock_path("var/flowbin.db") == f"{tmp_path}/var/flowbin.db-writer.lock"


def test_a_writer_that_cannot_open_the_lock_file_still_writes(tmp_path):
    # The lock file's folder is gone: SQLite's own lock (busy_timeout) still queues the writer.
    database = tmp_path / "store.db"
    conn = sqlite_turns.TurnTakingConnection(str(database), isolation_level=None)
    conn._turn_path = str(tmp_path / "missing" / "store.db-writer.lock")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.begin_write()
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    conn.close()


def _count(url: str) -> int:
    with db.connection_scope(url, read_only=True) as conn:
        return conn.scalar(text("SELECT count(*) FROM t"))
