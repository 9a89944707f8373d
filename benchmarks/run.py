"""One command for every benchmark: ``python -m benchmarks.run [--seconds N] [--no-prism]``.

In a single run it starts quota-mock (as the ``quota-mock`` command serves it), bare Flask
answering the same JSON under the same server (the framework's ceiling) and Stoplight Prism
serving openapi.yaml (the peer), drives each with wrk, and measures start-up, memory at
scale and the conformance suite's run time. Ratios are taken within the run, since the
machine is shared and absolute numbers drift. Results go to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from statistics import median

from . import servers
from .load import SCENARIOS, LoadResult, run_wrk
from .profile_grant import profile_grants
from .results import Results, write_results
from .tools import ROOT, find_prism, find_wrk, prism_version

STARTUP_RUNS = 5


def measure_startup(name: str, argv_for_port) -> float:
    """Median seconds from spawn to the first good response, over a few cold starts."""
    timings = []
    for _ in range(STARTUP_RUNS):
        port = servers.free_port()
        server = servers.start(name, argv_for_port(port), port)
        timings.append(server.startup_seconds)
        server.stop()
    return median(timings)


def load_all(wrk: str, name: str, argv_for_port, seconds: int) -> dict[str, LoadResult]:
    port = servers.free_port()
    server = servers.start(name, argv_for_port(port), port)
    try:
        run_wrk(wrk, server.base_url, "packages", 1)  # warm-up: imports, caches, connections
        return {scenario: run_wrk(wrk, server.base_url, scenario, seconds) for scenario in SCENARIOS}
    finally:
        server.stop()


def conformance_seconds() -> float:
    """Wall time of a full default ``quota-conformance`` run against a running quota-mock."""
    port = servers.free_port()
    server = servers.start("quota-mock", servers.mock_argv(port), port)
    try:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "conformance.cli",
                "--base-url",
                server.base_url,
                "--api-key",
                "sk-quota-your-api-key",
                "--quiet",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=600,
        )
        return time.perf_counter() - started
    finally:
        server.stop()


def memory_figures() -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory"], cwd=ROOT, check=True, capture_output=True, text=True, timeout=900
    ).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per scenario (default 8)")
    parser.add_argument("--no-prism", action="store_true", help="skip the peer (no npm on this machine)")
    args = parser.parse_args()

    wrk = find_wrk()
    prism = None if args.no_prism else find_prism()
    results = Results(prism_version=prism_version(prism) if prism else None)

    print("load: quota-mock", flush=True)
    results.load["quota-mock"] = load_all(wrk, "quota-mock", servers.mock_argv, args.seconds)
    print("load: bare Flask", flush=True)
    results.load["bare Flask"] = load_all(wrk, "bare Flask", servers.bare_argv, args.seconds)
    print("start-up", flush=True)
    results.startup["quota-mock"] = measure_startup("quota-mock", servers.mock_argv)
    results.startup["bare Flask"] = measure_startup("bare Flask", servers.bare_argv)
    if prism:
        print("load: Prism", flush=True)
        results.load["Prism"] = load_all(wrk, "Prism", lambda port: servers.prism_argv(prism, port), args.seconds)
        results.startup["Prism"] = measure_startup("Prism", lambda port: servers.prism_argv(prism, port))
    print("memory at scale", flush=True)
    results.memory = memory_figures()
    print("conformance run", flush=True)
    results.conformance_seconds = conformance_seconds()
    print("profile of the grant path", flush=True)
    results.grant_profile = profile_grants()

    report = write_results(results)
    print(report)


if __name__ == "__main__":
    main()
