"""A process's metric increments, added up in memory and sent to Redis in one pipeline at most
every ``FLUSH_INTERVAL`` seconds, so that recording a step usually costs no round trip.

A flush happens when a step ends an interval or more after the last flush; from the buffer's own
thread, an interval after the last flush, once the buffer holds something (so a worker that goes
idle still sends its last steps' numbers); and at the process's exit (``flush_this_process``:
``atexit``, and the workers' ``worker_process_shutdown``, since a prefork child leaves by
``os._exit``). A process killed outright (SIGKILL, a hard time limit) loses what it had not sent,
at most an interval's worth.

The buffer belongs to the process that made it (keyed by pid): a forked child starts with an
empty one, so it never sends again what its parent had buffered before the fork."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0

# Per Redis URL, the amount to add to each (hash key, field): an int for HINCRBY, a float for
# HINCRBYFLOAT.
Amounts = dict[tuple[str, str], float]
Send = Callable[[str, Amounts], None]


class CounterBuffer:
    def __init__(self, send: Send, interval: float | None = None):
        self.pid = os.getpid()
        self.interval = FLUSH_INTERVAL if interval is None else interval
        self._send = send
        self._lock = threading.Lock()
        self._pending: dict[str, Amounts] = {}
        self._flushed_at = time.monotonic()
        # Set when the buffer starts holding something: wakes the flusher thread, which sends
        # it an interval after the last flush (one thread a process, started on first use: a
        # thread started per flush cost a few hundred microseconds each time).
        self._holding = threading.Event()
        self._flusher: threading.Thread | None = None

    def add(
        self, url: str, increments: Iterable[tuple[str, str, float]], flush_when_due: bool
    ) -> None:
        """Add to the buffered amounts. If the last flush is an interval old and
        ``flush_when_due`` (a step's end), flush now; else the flusher thread will."""
        with self._lock:
            was_empty = not self._pending
            amounts = self._pending.setdefault(url, defaultdict(int))
            for key, field, amount in increments:
                amounts[(key, field)] += amount
            flush_now = flush_when_due and time.monotonic() >= self._flushed_at + self.interval
            if self._flusher is None:
                flusher = threading.Thread(
                    target=self._flush_when_due, name="flowbin-metrics-flush", daemon=True
                )  # a daemon: the exit's own flush sends what it would have
                flusher.start()
                self._flusher = flusher
        if flush_now:
            self.flush()
        elif was_empty:
            self._holding.set()

    def flush(self) -> None:
        """Send everything buffered, one pipeline per Redis URL. The amounts leave the buffer
        first: a Redis that cannot take them costs them (a warning), never the caller."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed_at = time.monotonic()
        for url, amounts in pending.items():
            try:
                self._send(url, amounts)
            except Exception as error:  # a metric is never worth an error in a step
                log.warning("could not record %d metric(s) in Redis: %s", len(amounts), error)

    def pending(self) -> int:
        """How many (key, field) amounts wait to be sent."""
        with self._lock:
            return sum(len(amounts) for amounts in self._pending.values())

    def _flush_when_due(self) -> None:
        while True:
            self._holding.wait()
            self._holding.clear()
            # An inline flush meanwhile moves the due time on: the wait follows it.
            while (wait := self._flushed_at + self.interval - time.monotonic()) > 0:
                time.sleep(wait)
            self.flush()


_current: CounterBuffer | None = None
_creating = threading.Lock()
_exit_flush_registered = False


def of_this_process(send: Send) -> CounterBuffer:
    """This process's buffer, made on first use (and afresh in a forked child)."""
    global _current, _exit_flush_registered
    current = _current
    if current is not None and current.pid == os.getpid():
        return current
    with _creating:
        if _current is None or _current.pid != os.getpid():
            _current = CounterBuffer(send)
        if not _exit_flush_registered:  # a forked child inherits the registration
            atexit.register(flush_this_process)
            _exit_flush_registered = True
        return _current


def flush_this_process() -> None:
    """Send what this process has buffered (a parent's buffer, inherited by a fork, is left to
    the parent)."""
    current = _current
    if current is not None and current.pid == os.getpid():
        current.flush()
