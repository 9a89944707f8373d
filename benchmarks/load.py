"""Driving a server with wrk (one thread, 8 connections) and reading its figures."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .proc_usage import Usage, usage

SCRIPTS = Path(__file__).resolve().parent / "wrk"
SCENARIOS = {
    "grant (fresh keys)": "grant_fresh.lua",
    "grant (replays)": "grant_replay.lua",
    "user balance": "balance.lua",
    "packages": "packages.lua",
}
_RESULT = re.compile(r"RESULT (.*)")


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    # Share of the machine's CPU time busy during the run (every process: the server, Redis,
    # wrk, neighbours), from /proc/stat; None where there is no /proc/stat.
    machine_busy: float | None = None
    # Per request, where /proc tells: the server's CPU time (all its processes and threads),
    # its threads' context switches, and the CPU time of what it stands on (its redis-server).
    server_cpu_us: float | None = None
    server_switches: float | None = None
    backing_cpu_us: float | None = None
    # Share of the machine's CPU time the host took (steal, from /proc/stat): the machine is a
    # shared virtual one, and a round the host starved runs slower whatever the server.
    machine_stolen: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    wrk: str,
    base_url: str,
    scenario: str,
    seconds: int,
    connections: int = 8,
    server_pids: Sequence[int] = (),
    backing_pids: Sequence[int] = (),
) -> LoadResult:
    """``server_pids``, ``backing_pids``: the processes whose use per request is reported."""
    script = (SCRIPTS / SCENARIOS[scenario]).read_text() + "\n" + (SCRIPTS / "report.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    before = _cpu_times()
    server_before, backing_before = usage(server_pids), usage(backing_pids)
    try:
        output = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", handle.name, base_url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    after = _cpu_times()
    server_used, backing_used = _since(server_before, server_pids), _since(backing_before, backing_pids)
    match = _RESULT.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    fields = dict(part.split("=") for part in match.group(1).split())
    requests = int(fields["requests"]) or 1
    return LoadResult(
        requests=int(fields["requests"]),
        seconds=int(fields["duration_us"]) / 1e6,
        non_2xx=int(fields["errors_status"]),
        socket_errors=int(fields["errors_connect"]),
        p50_ms=int(fields["p50_us"]) / 1000,
        p99_ms=int(fields["p99_us"]) / 1000,
        machine_busy=_busy_between(before, after),
        machine_stolen=_share_between(before, after, 2),
        server_cpu_us=None if server_used is None else server_used.cpu_seconds / requests * 1e6,
        server_switches=None if server_used is None else server_used.switches / requests,
        backing_cpu_us=None if backing_used is None else backing_used.cpu_seconds / requests * 1e6,
    )


def _since(before: Usage | None, pids: Sequence[int]) -> Usage | None:
    after = usage(pids) if before is not None else None
    return None if after is None or before is None else after - before


def _cpu_times() -> tuple[int, int, int] | None:
    """(all, idle, stolen) jiffies of every CPU since boot (Linux), or None. Stolen: time the
    virtual machine's CPUs were ready to run and the host ran something else."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    stolen = fields[7] if len(fields) > 7 else 0
    return sum(fields), fields[3] + fields[4], stolen  # idle and iowait; steal


def _share_between(before: tuple[int, ...] | None, after: tuple[int, ...] | None, field: int) -> float | None:
    """The share of every CPU's time between two readings that ``field`` took."""
    if before is None or after is None or after[0] == before[0]:
        return None
    return (after[field] - before[field]) / (after[0] - before[0])


def _busy_between(before: tuple[int, ...] | None, after: tuple[int, ...] | None) -> float | None:
    idle = _share_between(before, after, 1)
    return None if idle is None else 1 - idle
