"""Giving each worker process an equal share of CPU: a cgroup CPU quota per process (Linux).

"Two workers on two cores" needs two cores for the workers alone. This machine has two cores in
all, and redis-server and wrk need some of them too: with two workers the machine runs out
before the workers do, and the 2-versus-1 ratio measures the machine (see RESULTS.md). Held to
a fixed share each (say half a core), one worker has half a core and two have a core, while
redis-server and wrk keep the rest: the ratio then says whether the store lets a second worker
add what its CPU allows, the question the 0.8 × N goal asks.

The quota is the kernel's CFS bandwidth control: at most ``share`` × period of CPU time per
period, for all the threads of the process. cgroup v2 (``cpu.max``) where the machine mounts it
with the cpu controller, else cgroup v1 (``cpu.cfs_quota_us``); root is needed for either.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

# The kernel's default period, as ``docker run --cpus`` uses it (5 ms and 20 ms gave the same
# ratios here).
PERIOD_US = 100_000
_V2 = Path("/sys/fs/cgroup")
_V1 = Path("/sys/fs/cgroup/cpu")


def _root() -> tuple[Path, int] | None:
    """Where new CPU groups can be made, and the cgroup version; None when nowhere."""
    controllers = _V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return _V2, 2
    if (_V1 / "cpu.cfs_quota_us").exists():
        return _V1, 1
    return None


def unavailable() -> str | None:
    """Why per-process CPU quotas cannot be set here, or None when they can."""
    found = _root()
    if found is None:
        return "no cgroup CPU controller is mounted"
    if not os.access(found[0], os.W_OK):
        return f"{found[0]} is not writable (CPU quotas need root)"
    return None


@contextlib.contextmanager
def capped(pids: Sequence[int], share: float, name: str) -> Iterator[None]:
    """Hold each of ``pids`` (and every thread it has or starts) to ``share`` of one core."""
    found = _root()
    if found is None:
        raise RuntimeError(unavailable())
    root, version = found
    quota = max(1000, round(share * PERIOD_US))
    groups = []
    try:
        for pid in pids:
            group = root / f"quota-bench-{name}-{pid}"
            group.mkdir(exist_ok=True)
            groups.append(group)
            if version == 2:
                (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
            (group / "cgroup.procs").write_text(str(pid))  # the whole process, every thread
        yield
    finally:
        for group in groups:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):  # back to the root group, if still running
                        (root / "cgroup.procs").write_text(pid)
                group.rmdir()
