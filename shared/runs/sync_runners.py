"""Runner processes for sync runs: a few pre-started processes that run a binary's steps over
files held in memory, so that a run past its time limit can be stopped for real.

A thread running a UDF that loops forever cannot be stopped; a process can be killed. Starting
a process per run would cost its imports every time, so each API process keeps a small pool,
started on its first sync run from a fork server that has already imported the flow runtime.
A runner keeps its loaded binaries and UDF modules, as a worker process does. A runner that
passes the limit (or dies) is killed, and a fresh one, forked in a few milliseconds, takes its
place when it is next needed.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from shared.errors import FlowbinError, Unavailable
from shared.flow import output_schema, runtime
from shared.flow.binary import load_binary_cached
from shared.url_guard import UrlGuard


class SyncTimeout(FlowbinError):
    """A sync run passed its time limit; its runner was killed."""

    http_status = 504


class RunnerLost(FlowbinError):
    """The runner process ended in the middle of a run (a UDF exited or crashed it)."""

    http_status = 422


@dataclass(frozen=True)
class SyncWork:
    """One sync run, as sent to a runner: the binary's bytes (loaded once per runner and
    digest) and the input files' names and content."""

    job_id: str
    binary_digest: str
    binary_data: bytes
    files: tuple[tuple[str, bytes], ...]
    runtime_config: dict[str, Any]
    # The networks the operator allowed, for the steps that call URLs (the http step).
    url_guard: UrlGuard = field(default_factory=UrlGuard)


@dataclass(frozen=True)
class FileSummary:
    file_index: int
    file_name: str
    num_records: int
    num_errors: int
    num_checkpoint_failed: int
    num_filtered: int
    error_counts: dict[str, int]


@dataclass(frozen=True)
class SyncOutcome:
    """``results`` are the run's final results (records of every file, in input order)."""

    results: list[dict[str, Any]]
    files: list[FileSummary]
    log: list[tuple[str, str]]


def run_in_memory(work: SyncWork) -> SyncOutcome:
    """Every step of the binary over the files, nothing read from or written to the drive."""
    binary = load_binary_cached(work.binary_digest, work.binary_data)
    schema = output_schema.from_runtime_config(work.runtime_config)
    log: list[tuple[str, str]] = []
    context = runtime.StepContext(
        job_id=work.job_id,
        runtime_config=dict(work.runtime_config),
        log=lambda level, message: log.append((level, message)),
        inputs={index: content for index, (_, content) in enumerate(work.files)},
        url_guard=work.url_guard,
    )
    results, files = [], []
    # File by file, so that each file's filtered count is its own.
    for index, (name, _) in enumerate(work.files):
        outcome = runtime.run_steps(binary, [runtime.new_record(name, index, None)], context)
        records = outcome.records
        results.extend(runtime.final_results(records, schema))
        files.append(
            FileSummary(
                file_index=index,
                file_name=name,
                num_records=len(records),
                num_errors=sum(1 for record in records if record.get("error")),
                num_checkpoint_failed=sum(
                    1 for record in records if record.get("checkpoint_failed")
                ),
                num_filtered=outcome.filtered,
                error_counts=dict(Counter(r["error"] for r in records if r.get("error"))),
            )
        )
    return SyncOutcome(results=results, files=files, log=log)


def serve(conn: Connection) -> None:
    """A runner's loop: run each SyncWork received, answer ("ok", SyncOutcome) or ("error",
    reason); return when the API process closes its end."""
    # Ctrl-C on `flowbin up` reaches the whole process group; the API process decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            work = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", run_in_memory(work))
        except Exception as exc:  # a bug, or a binary that does not load: the API says which
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


@functools.cache
def _context() -> multiprocessing.context.BaseContext:
    # The fork server imports the flow runtime once; runners fork from it already warm, and
    # never inherit the API's threads, locks or database connections.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class _Runner:
    def __init__(self) -> None:
        context = _context()
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child,), daemon=True, name="flowbin-sync-runner"
        )
        self.process.start()
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive() and not self.conn.closed

    def call(self, work: SyncWork, limit: float, remaining: float) -> SyncOutcome:
        try:
            self.conn.send(work)
            if not self.conn.poll(remaining):
                self.stop()
                raise SyncTimeout(
                    f"the run took longer than its limit of {limit:g} s and was "
                    "stopped; make the flow faster or use run_binary_async"
                )
            status, value = self.conn.recv()
        except (EOFError, OSError):
            self.stop()
            raise RunnerLost(
                f"the process running the flow ended before it finished (exit code "
                f"{self.process.exitcode}): a UDF may have exited or crashed it"
            ) from None
        if status != "ok":
            raise RuntimeError(f"the sync run failed: {value}")
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class RunnerPool:
    """``size`` runners, started on first use in the process that uses them (a gunicorn
    worker forks after the app is created, so each API process gets its own)."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._idle: queue.LifoQueue[_Runner] = queue.LifoQueue()

    def _ready(self) -> queue.LifoQueue[_Runner]:
        with self._lock:
            if self._owner != os.getpid():
                self._owner = os.getpid()
                self._idle = queue.LifoQueue()
                for _ in range(self.size):
                    self._idle.put(_Runner())
                self._report()
            return self._idle

    def run(self, work: SyncWork, limit: float) -> SyncOutcome:
        """Run ``work`` in a runner, stopped after ``limit`` seconds. Waiting for a free runner
        counts against the same limit."""
        started = time.monotonic()
        idle = self._ready()
        try:
            runner = idle.get(timeout=limit)
            self._report()
        except queue.Empty:
            raise Unavailable(
                f"all {self.size} sync runners stayed busy for {limit:g} s; try "
                "again later, or use run_binary_async"
            ) from None
        try:
            if not runner.alive():
                runner.stop()
                runner = _Runner()
            return runner.call(work, limit, max(limit - (time.monotonic() - started), 0.001))
        finally:
            idle.put(runner)  # a stopped runner is replaced when it is next taken
            self._report()

    def _report(self, size: int | None = None) -> None:
        # Imported here: runner processes import this module too, and keep no pool to report.
        from shared.metrics import api_series

        api_series.sync_pool_changed(self.size if size is None else size, self._idle.qsize())

    def idle_runners(self) -> int:
        return self._idle.qsize()

    def warm(self) -> None:
        """Start the runners now rather than on the first run."""
        self._ready()

    def close(self) -> None:
        with self._lock:
            if self._owner != os.getpid():
                return
            while True:
                try:
                    self._idle.get_nowait().stop()
                except queue.Empty:
                    break
            self._owner = None
            self._report(size=0)
