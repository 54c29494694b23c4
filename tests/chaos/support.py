"""What the chaos tests share besides fixtures: the UDFs' notes of every step run and the
checks on them, killing a process safely, and the figures each scenario reports."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.support import wait_for

# Every store connection of this tier carries this application_name, so a test that
# terminates PostgreSQL backends terminates only this tier's.
CHAOS_APPLICATION = "flowbin-chaos"

FIGURES: list[str] = []


def report(scenario: str, backend: str, **figures) -> None:
    """A scenario's figures: printed now (visible with -s) and in the session's summary."""
    line = f"{scenario} [{backend}]: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    FIGURES.append(line)
    print(f"\nCHAOS {line}", flush=True)


def lines(control: Path, name: str) -> list[str]:
    """The lines a control UDF noted in ``control`` (tests/integration/control_udfs.py)."""
    path = control / name
    return path.read_text().splitlines() if path.exists() else []


@dataclass(frozen=True)
class Run:
    """One run of a step on a file, as the work UDF noted it."""

    job_id: str
    step: str
    file: str
    pid: int
    started: float
    ended: float | None


def runs_in(control: Path) -> list[Run]:
    """The runs noted in ``control``: a start without an end is a run that was cut off."""
    path = control / "runs"
    noted = path.read_text() if path.exists() else ""
    # A line still being written is left for the next read.
    lines = noted[: noted.rfind("\n") + 1].splitlines()
    open_runs: dict[tuple, list[float]] = defaultdict(list)
    runs = []
    for line in lines:
        kind, job_id, step, name, pid, at = line.split()
        key = (job_id, step, name, int(pid))
        if kind == "start":
            open_runs[key].append(float(at))
        elif open_runs[key]:
            runs.append(Run(*key, open_runs[key].pop(0), float(at)))
    for key, starts in open_runs.items():
        runs += [Run(*key, started, None) for started in starts]
    return runs


def assert_no_overlap(runs: list[Run], cut_at) -> dict[str, int]:
    """No two runs of one step on one file overlapped. A run that never ended must have been
    cut off (``cut_at(run)`` is when, or None if nothing cut it), and the next run of the same
    step may start only after that. Returns counts for the report."""
    by_step: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        by_step[(run.job_id, run.step, run.file)].append(run)
    cut = reruns = 0
    for key, found in by_step.items():
        found.sort(key=lambda run: run.started)
        assert any(run.ended is not None for run in found), f"{key} never finished a run"
        reruns += len(found) - 1
        for previous, following in zip(found, found[1:], strict=False):
            if previous.ended is None:
                stopped = cut_at(previous)
                assert stopped is not None, f"{previous} never ended and nothing cut it off"
                assert previous.started <= stopped, previous
            else:
                stopped = previous.ended
            assert following.started >= stopped, f"{following} overlapped {previous}"
        if found[-1].ended is None:
            assert cut_at(found[-1]) is not None, f"{found[-1]} never ended"
        cut += sum(1 for run in found if run.ended is None)
    return {"runs": len(runs), "cut": cut, "reruns": reruns}


def kill_process(pid: int, parent: int) -> float | None:
    """SIGKILL ``pid`` if it is still a child of ``parent`` (a pid is reused once reaped);
    when the signal was sent, or None. Waits until the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
        return None
    sent = time.time()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not running(pid), timeout=10, interval=0.01, message=f"{pid} to die")
    return sent


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
