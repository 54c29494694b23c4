"""SQLite: the writers of one database file queue for it on a file lock before BEGIN IMMEDIATE.

SQLite lets one writer in at a time. A writer that finds the file locked sleeps in SQLite's busy
handler, 1, 2, 5, 10 ms and longer, however soon the lock is given back: with the API, the
worker processes and beat all writing one file, about one BEGIN in five waited a millisecond or
more that way (bench/throughput.py). Here a writer first takes its turn on an ``flock`` of a
file beside the database, trying again every 50 us for the first 2 ms (then less often), so
that it goes within about a tenth of a millisecond of the turn being given back.

SQLite's own lock still decides who writes: a writer that takes no turn (the sqlite3 shell, a
read-only transaction that writes anyway) is waited for by busy_timeout, as before. A process
that dies gives its turn back with its file descriptors, and a writer that waited
``TURN_TIMEOUT`` goes on without one (a blocking ``flock`` could not time out: a writer stuck
in its transaction would hang the others for good, where SQLite's timeout fails them).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time

log = logging.getLogger(__name__)


class _Turns:
    """One thread's lock files (one open file description each, so threads exclude each other
    too) and which of its connections hold each file's turn: a thread that nests two write
    transactions does not wait for itself here (SQLite's lock then decides, as before). A turn
    may be given back on another thread (a connection collected there), hence the lock."""

    def __init__(self):
        self.pid = os.getpid()
        self.fds: dict[str, int] = {}
        self.holders: dict[str, set[int]] = {}
        self.lock = threading.Lock()

    def _forget_parents(self) -> None:
        """In a forked child, drop what it inherited: the parent's descriptors share the
        parent's lock, and closing them leaves the parent's turn alone (unlocking them would
        not); the parent's holders are not this process's."""
        if self.pid != os.getpid():
            for inherited in self.fds.values():
                os.close(inherited)
            self.pid, self.fds, self.holders = os.getpid(), {}, {}

    def fd(self, path: str) -> int:
        self._forget_parents()
        fd = self.fds.get(path)
        if fd is None:
            fd = self.fds[path] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd

    def take(self, path: str, holder: int) -> bool:
        """Wait for the file's turn; False if its lock file cannot be opened (then SQLite's busy
        handler alone queues this writer, as it did before turns)."""
        with self.lock:
            self._forget_parents()  # before reading holders: a child's start afresh
            holders = self.holders.setdefault(path, set())
            if not holders:
                try:
                    fd = self.fd(path)
                except OSError:
                    log.warning("cannot open %s: SQLite writers wait without turns", path)
                    return False
                if not _wait_for_lock(fd):
                    log.warning("waited %.0f s for %s: going on without a turn", TURN_TIMEOUT, path)
                    return False
            holders.add(holder)
            return True

    def give_back(self, path: str, holder: int) -> None:
        with self.lock:
            self._forget_parents()  # a turn the parent took is the parent's to give back
            holders = self.holders.get(path)
            if not holders or holder not in holders:
                return
            holders.discard(holder)
            if not holders:
                fcntl.flock(self.fds[path], fcntl.LOCK_UN)


class _PerThread(threading.local):
    def __init__(self):
        self.turns = _Turns()


_local = _PerThread()

# SQLite's busy_timeout, seconds (shared/store/db.py sets it on every connection).
BUSY_TIMEOUT = 30
# As long as that: past it, SQLite's lock decides alone.
TURN_TIMEOUT = float(BUSY_TIMEOUT)
# Most turns come within a couple of milliseconds (a step's transaction is shorter): tried again
# every 50 us that long, then less and less often, up to every millisecond.
_SHORT_PAUSE, _SHORT_WAIT, _LONGEST_PAUSE = 50e-6, 2e-3, 1e-3


def _wait_for_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd``; False once ``TURN_TIMEOUT`` passed without it."""
    started = time.monotonic()
    pause = _SHORT_PAUSE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited >= TURN_TIMEOUT:
                return False
        time.sleep(pause)
        if waited > _SHORT_WAIT:
            pause = min(2 * pause, _LONGEST_PAUSE)


def lock_path(database: str) -> str | None:
    """The lock file beside a database file (absolute, as SQLite resolves the file when it opens
    it, so a later change of directory changes neither); None for a memory or URI database."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return f"{os.path.abspath(database)}-writer.lock"


class TurnTakingConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions (``begin_write``) wait for their turn, and
    give it back when they commit, roll back or close."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self._turn_path = lock_path(os.fspath(database))
        # The turns of the thread that took this connection's turn: it may be given back on
        # another thread.
        self._turn_of: _Turns | None = None

    def begin_write(self) -> None:
        if self._turn_path is not None and self._turn_of is None:
            turns = _local.turns
            if turns.take(self._turn_path, id(self)):
                self._turn_of = turns
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._give_back()
            raise

    def _give_back(self) -> None:
        turns, self._turn_of = self._turn_of, None
        if turns is not None:
            turns.give_back(self._turn_path, id(self))

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()

    def __del__(self) -> None:
        # Dropped without a close (garbage collected): SQLite's lock goes with it, so must this.
        if getattr(self, "_turn_of", None) is not None:
            self._give_back()
