"""Does the schema-driven phase find server errors at least as well as stock Schemathesis?

Each deployment of :mod:`tests.conformance.edge_mutants` answers 500 on one edge input. Both
tools are run against it at the same example count: stock ``st run --checks all -n N`` (every
phase, over HTTP, with the API key in a header) and ``quota-conformance --max-examples N``
(in-process, staging budget, a time budget large enough never to stop it). A tool detects a
mutant when it reports a server error.

    python -m tests.conformance.fuzz_vs_stock                 # every mutant, n = 10, seeds 0-2
    python -m tests.conformance.fuzz_vs_stock -n 25 --seeds 0 integral_float_max_tokens
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance import Options, run
from conformance.options import FUZZ_SOURCES
from conformance.results import Status
from mockserver.server import MockServer

from .edge_mutants import EDGE_MUTANTS, KEY, build

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "openapi.yaml"
SERVER_ERROR = "errors.no_server_error"


@dataclass(frozen=True)
class Detection:
    mutant: str
    tool: str
    examples: int
    seed: int
    detected: bool
    seconds: float


def st_command() -> list[str] | None:
    """The ``st`` console script next to this interpreter, or on the PATH."""
    beside = Path(sys.executable).with_name("st")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("st")
    return [found] if found else None


def stock(mutant: str, examples: int, seed: int, timeout: float = 1800.0,
          operation_ids: Sequence[str] = ()) -> Detection:
    """Stock ``st run --checks all`` against the mutant, served on a free local port (every
    operation, or those named)."""
    command = st_command()
    if command is None:
        raise RuntimeError("the Schemathesis CLI (st) is not installed")
    started = time.monotonic()
    # In a scratch directory: st keeps a cache of its own where it runs.
    with MockServer(build(mutant), host="127.0.0.1", port=0) as server, tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [*command, "run", str(CONTRACT), "--url", server.base_url, "--header", f"Authorization: Bearer {KEY}",
             "--checks", "all", "--max-examples", str(examples), "--seed", str(seed), "--workers", "1",
             "--generation-database", "none", "--no-color",
             *(arg for op in operation_ids for arg in ("--include-operation-id", op))],
            capture_output=True, text=True, timeout=timeout, check=False, cwd=scratch,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )
    return Detection(mutant, "st run", examples, seed, "Server error" in result.stdout,
                     time.monotonic() - started)


def ours(mutant: str, examples: int, seed: int, sources: Sequence[str] = FUZZ_SOURCES) -> Detection:
    """quota-conformance with the staging budget, bounded by the example count alone."""
    started = time.monotonic()
    report = run(Options(api_key=KEY, budget_micros=5_000_000, max_examples=examples, seed=seed,
                         fuzz_seconds=3600.0, fuzz_sources=tuple(sources)), app=build(mutant))
    detected = report.results.records[SERVER_ERROR].status is Status.FAILED
    return Detection(mutant, "quota-conformance", examples, seed, detected, time.monotonic() - started)


def compare(mutants: Sequence[str], examples: int, seeds: Sequence[int]) -> list[Detection]:
    found = []
    for mutant in mutants:
        for seed in seeds:
            found.append(stock(mutant, examples, seed))
            found.append(ours(mutant, examples, seed))
    return found


def table(found: list[Detection]) -> str:
    lines = [f"{'mutant':<28} {'st run':>10} {'quota-conformance':>18}"]
    for mutant in dict.fromkeys(d.mutant for d in found):
        cells = []
        for tool in ("st run", "quota-conformance"):
            runs = [d for d in found if d.mutant == mutant and d.tool == tool]
            cells.append(f"{sum(d.detected for d in runs)}/{len(runs)}")
        lines.append(f"{mutant:<28} {cells[0]:>10} {cells[1]:>18}")
    for tool in ("st run", "quota-conformance"):
        runs = [d for d in found if d.tool == tool]
        seconds = sum(d.seconds for d in runs)
        lines.append(f"{tool}: detected {sum(d.detected for d in runs)} of {len(runs)} runs in {seconds:.0f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mutants", nargs="*", help="default: every edge mutant")
    parser.add_argument("-n", "--max-examples", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    mutants = args.mutants or list(EDGE_MUTANTS)
    found = compare(mutants, args.max_examples, [int(s) for s in args.seeds.split(",")])
    print(table(found))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
