"""The reaper of `flowbin up`: a small process that outlives it and stops what it started.

`flowbin up` stops its children itself on Ctrl-C or SIGTERM, but a SIGKILL (or an OOM kill)
gives it no chance to, and every process of the stack runs in a session of its own (honcho
starts each one so), where nothing else would stop it. So `flowbin up` tells the reaper, over a
pipe, the session of each process it starts (gunicorn, the workers, beat, Flower, the embedded
Redis); a session holds the process and everything it starts in turn, a gunicorn worker or a
Celery pool process. When the pipe closes, `flowbin up` is gone, however it went: the reaper
sends SIGTERM to every process left in those sessions, and SIGKILL to what is still there after a
grace period.

Linux only (a session's processes are read from /proc); elsewhere `flowbin up` runs without one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")
# Long enough for a warm shutdown of the worker and for Redis to flush its AOF.
GRACE_SECONDS = 10.0
LOOK_EVERY = 0.25


def available() -> bool:
    return (PROC / "self" / "stat").exists()


class Reaper:
    """The end of the pipe that `flowbin up` keeps: what it writes, the reaper stops."""

    def __init__(self, process: subprocess.Popen, pipe: int):
        self.process = process
        self.pipe = pipe

    @classmethod
    def start(cls) -> Reaper:
        """Start a reaper in a session of its own, so a Ctrl-C at the terminal does not reach
        it. The pipe's end stays with this process alone: the programs it starts do not inherit
        it (Python's descriptors are not inheritable), and forked helpers close it
        (``forget``)."""
        read_end, write_end = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "shared.ops.reaper"],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(read_end)
        return cls(process, write_end)

    def watch(self, session: int) -> None:
        """Stop the processes of ``session`` once `flowbin up` is gone."""
        # One small write is atomic on a pipe, so helpers writing at once do not mix lines.
        os.write(self.pipe, f"{session}\n".encode())

    def forget(self) -> None:
        """In a forked copy of `flowbin up`: let go of the pipe, so that only `flowbin up`
        itself holds it open."""
        with contextlib.suppress(OSError):
            os.close(self.pipe)


def session_members(sessions: set[int]) -> set[int]:
    """The live processes (but this one) of ``sessions``, from /proc."""
    members = set()
    for entry in PROC.glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        pid, state, session = int(entry.name), fields[0], int(fields[3])
        if session in sessions and state != "Z" and pid != os.getpid():
            members.add(pid)
    return members


def stop(sessions: set[int], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every process of ``sessions``, SIGKILL what is left after ``grace`` seconds."""
    _signal_all(session_members(sessions), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and session_members(sessions):
        time.sleep(LOOK_EVERY)
    _signal_all(session_members(sessions), signal.SIGKILL)


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            os.kill(pid, signum)


def main() -> int:
    # A Ctrl-C is for `flowbin up`, which then stops the stack itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sessions = set()
    # Until the pipe closes, each line is the session of a process `flowbin up` started.
    for line in sys.stdin.buffer:
        with contextlib.suppress(ValueError):
            sessions.add(int(line))
    stop(sessions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
