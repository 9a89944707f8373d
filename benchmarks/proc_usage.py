"""CPU time and context switches of processes under load, from /proc (Linux only).

A ratio of throughputs says how much faster one server is; what each spends a request says
why: its CPU time (every thread of every process, the Rust threads of granian included) and
how often its threads were switched out (waiting for a socket, for a lock, for the GIL).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    switches: int  # voluntary and involuntary context switches of the threads alive now

    def __sub__(self, earlier: Usage) -> Usage:
        return Usage(self.cpu_seconds - earlier.cpu_seconds, self.switches - earlier.switches)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process under it (granian's workers under its main process)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def usage(pids: Sequence[int]) -> Usage | None:
    """What ``pids`` used so far, or None for none, without /proc, or when one is gone."""
    if not pids:
        return None
    ticks, switches = 0, 0
    try:
        for pid in pids:
            fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime and stime, every thread's
            for task in (_PROC / str(pid) / "task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return Usage(ticks / _TICKS, switches)
