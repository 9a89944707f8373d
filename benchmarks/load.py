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

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(wrk: str, base_url: str, scenario: str, seconds: int, connections: int = 8) -> LoadResult:
    script = (SCRIPTS / SCENARIOS[scenario]).read_text() + "\n" + (SCRIPTS / "report.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
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
    )
