"""Driving a server with wrk (one thread, 8 connections) and reading its figures."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(wrk: str, base_url: str, scenario: str, seconds: int, connections: int = 8) -> LoadResult:
    script = (SCRIPTS / SCENARIOS[scenario]).read_text() + "\n" + (SCRIPTS / "report.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    before = _cpu_times()
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
    match = _RESULT.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    fields = dict(part.split("=") for part in match.group(1).split())
    return LoadResult(
        requests=int(fields["requests"]),
        seconds=int(fields["duration_us"]) / 1e6,
        non_2xx=int(fields["errors_status"]),
        socket_errors=int(fields["errors_connect"]),
        p50_ms=int(fields["p50_us"]) / 1000,
        p99_ms=int(fields["p99_us"]) / 1000,
        machine_busy=_busy_between(before, after),
    )


def _cpu_times() -> tuple[int, int] | None:
    """(all, idle) jiffies of every CPU since boot (Linux), or None."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + fields[4]  # idle and iowait


def _busy_between(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[0] == before[0]:
        return None
    return 1 - (after[1] - before[1]) / (after[0] - before[0])
