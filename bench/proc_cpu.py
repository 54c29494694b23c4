"""CPU time of the processes a benchmark drives, read from /proc (Linux only).

A throughput figure alone does not say which process a change made cheaper; the CPU each one
spent per run does, and it does not move with the machine's other load as much as wall time."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    return (PROC / "self" / "stat").exists()


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, CPU seconds) of a live process, else None."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is the state; utime and stime are the 14th and 15th fields of the whole line.
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _all() -> dict[int, tuple[str, int, float]]:
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def snapshot(
    processes: dict[str, int], children_of: dict[str, int], by_name: dict[str, str]
) -> Counter:
    """CPU seconds per label: ``processes`` maps a label to one pid, ``children_of`` to the
    children of a pid (a worker's pool), ``by_name`` to every process of a command name (the
    database server's backends)."""
    table = _all()
    totals: Counter = Counter()
    for label, pid in processes.items():
        if pid in table:
            totals[label] += table[pid][2]
    for label, root in children_of.items():
        totals[label] += sum(s for _, parent, s in table.values() if parent == root)
    for label, name in by_name.items():
        totals[label] += sum(s for n, _, s in table.values() if n.startswith(name))
    return totals


def machine_ticks() -> tuple[int, int]:
    """(all CPU ticks, ticks stolen by the hypervisor) of the machine so far."""
    fields = [int(value) for value in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    return sum(fields[:8]), steal


def children(pid: int) -> list[int]:
    """The live children of ``pid`` (a worker's pool processes)."""
    return [child for child, (_, parent, _) in _all().items() if parent == pid]
