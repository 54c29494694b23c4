"""Helpers shared by the test tiers: polling with a deadline, free ports, processes, a
delivery claim to attempt."""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# Every port free_port has given out in this process.
_given_out: set[int] = set()


def free_port() -> int:
    """A port that is free on 127.0.0.1 now and that this process was not given before. The
    probe's socket is closed before the caller's server binds the port, so the kernel may hand
    the same port to the next probe: two servers started one after the other were once both told
    the same one, and the second could not listen."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _given_out:
            _given_out.add(port)
            return port


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc (empty where there is none). honcho starts
    each process in a session of its own, so the process group of `flowbin up` does not tell."""
    children: dict[int, set[int]] = defaultdict(set)
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        children[parent].add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children[todo.pop()] - found:
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not read its status yet


def claim_for(target: str):
    """A claimed delivery to ``target`` (a webhook URL or an email address), for attempting it
    without a store."""
    from shared.delivery.store import Claim

    return Claim(
        delivery_id=1,
        attempt_id=1,
        number=1,
        token="t",
        job_id="j",
        channel="webhook",
        target=target,
        headers={},
        payload={"status": "OK"},
        secret=None,
    )
