"""One command for every benchmark: ``python -m benchmarks.run [--seconds N] [--no-prism]``.

In a single run it starts quota-mock (as the ``quota-mock`` command serves it, on the
memory store, and on a private Redis with one and two workers over TCP, one over a unix
socket, and one with its request journal off), bare Flask answering the
same JSON under the same server (the framework's ceiling) and Stoplight Prism serving
openapi.yaml (the peer), drives each with wrk, and measures start-up, memory at scale,
growth curves up to a million ledger entries, what a grant costs on Redis and to the app's
own thread, and the conformance suite's run time. Ratios are taken within the run, since the
machine is shared and absolute numbers drift. Results go to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from statistics import median

from mockserver.server import free_port

from . import cpu_caps, servers
from .bare_app import create_bare_app
from .load import SCENARIOS, LoadResult, run_wrk
from .proc_usage import process_tree
from .profile_grant import app_seconds_per_grant, profile_grants
from .redis_server import private_redis
from .results import Results, write_results
from .server_names import (
    REDIS_1,
    REDIS_1_CAPPED,
    REDIS_1_NO_JOURNAL,
    REDIS_2,
    REDIS_2_CAPPED,
    REDIS_UNIX_1,
    THREADS_8,
    WORKER_SHARE,
)
from .tools import ROOT, find_prism, find_wrk, prism_version

STARTUP_RUNS = 5


def measure_startup(name: str, argv_for_port) -> float:
    """Median seconds from spawn to the first good response, over a few cold starts."""
    timings = []
    for _ in range(STARTUP_RUNS):
        port = free_port()
        server = servers.start(name, argv_for_port(port), port)
        timings.append(server.startup_seconds)
        server.stop()
    return median(timings)


def load_interleaved(
    wrk: str, commands: dict, seconds: int, rounds: int, backing: dict[str, int] | None = None,
    shares: dict[str, float] | None = None,
) -> dict[str, dict[str, list[LoadResult]]]:
    """Run every scenario against every server, alternating servers within each round.

    The machine is shared and noisy: interleaving puts each pair of figures that a ratio
    compares a few seconds apart, and the median over rounds drops a round that a neighbour
    disturbed. ``backing``: the pid of the process a server stands on (its redis-server),
    whose CPU time per request is reported too. ``shares``: servers whose worker processes
    are each held to that share of a core (benchmarks.cpu_caps).
    """
    running, pids = {}, {}
    with contextlib.ExitStack() as quotas:
        try:
            for name, argv_for_port in commands.items():
                port = free_port()
                running[name] = servers.start(name, argv_for_port(port), port)
                run_wrk(wrk, running[name].base_url, "packages", 1)  # warm-up: imports, caches
                pids[name] = process_tree(running[name].process.pid)  # granian's workers are up by now
                if shares and name in shares:  # the workers: every process under the main one
                    quotas.enter_context(cpu_caps.capped(pids[name][1:], shares[name], f"{len(running)}"))
            return _rounds(wrk, running, pids, seconds, rounds, backing)
        finally:
            for server in running.values():
                server.stop()


def _rounds(wrk: str, running: dict, pids: dict, seconds: int, rounds: int,
            backing: dict[str, int] | None) -> dict[str, dict[str, list[LoadResult]]]:
    samples: dict[str, dict[str, list[LoadResult]]] = {n: {s: [] for s in SCENARIOS} for n in running}
    for _ in range(rounds):
        for scenario in SCENARIOS:
            for name, server in running.items():
                backing_pids = [backing[name]] if backing and name in backing else []
                result = run_wrk(wrk, server.base_url, scenario, seconds, server_pids=pids[name],
                                 backing_pids=backing_pids)  # fmt: skip
                samples[name][scenario].append(result)
    return samples


def conformance_seconds() -> float:
    """Wall time of a full default ``quota-conformance`` run against a running quota-mock."""
    port = free_port()
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


def module_figures(module: str) -> dict:
    """What ``python -m benchmarks.<module>`` prints (one JSON object), run in a fresh process."""
    output = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}"], cwd=ROOT, check=True, capture_output=True, text=True,
        timeout=1800,
    ).stdout  # fmt: skip
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per scenario and round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each figure is their median (default 3)")
    parser.add_argument("--no-prism", action="store_true", help="skip the peer (no npm on this machine)")
    args = parser.parse_args()

    wrk = find_wrk()
    prism = None if args.no_prism else find_prism()
    results = Results(prism_version=prism_version(prism) if prism else None, rounds=args.rounds, seconds=args.seconds)
    with private_redis() as tcp, private_redis(unix_socket=True) as unix:
        commands = {
            "quota-mock": servers.mock_argv,
            THREADS_8: servers.mock_threads_argv(8),
            REDIS_1: servers.mock_redis_argv(tcp.url, 1),
            REDIS_2: servers.mock_redis_argv(tcp.url, 2),
            REDIS_UNIX_1: servers.mock_redis_argv(unix.url, 1),
            REDIS_1_NO_JOURNAL: servers.mock_redis_argv(tcp.url, 1, journal=False),
            "bare Flask": servers.bare_argv,
        }
        backing = {REDIS_1: tcp.pid, REDIS_2: tcp.pid, REDIS_UNIX_1: unix.pid, REDIS_1_NO_JOURNAL: tcp.pid}
        shares = {}
        why_not = cpu_caps.unavailable()
        if why_not is None:
            commands[REDIS_1_CAPPED] = servers.mock_redis_argv(tcp.url, 1)
            commands[REDIS_2_CAPPED] = servers.mock_redis_argv(tcp.url, 2)
            backing |= {REDIS_1_CAPPED: tcp.pid, REDIS_2_CAPPED: tcp.pid}
            shares = {REDIS_1_CAPPED: WORKER_SHARE, REDIS_2_CAPPED: WORKER_SHARE}
        else:
            print(f"no workers on equal CPU shares: {why_not}", flush=True)
        if prism:
            commands["Prism"] = lambda port: servers.prism_argv(prism, port)

        print(f"load: {', '.join(commands)} interleaved, {args.rounds} rounds of {args.seconds} s", flush=True)
        results.rounds_load = load_interleaved(wrk, commands, args.seconds, args.rounds, backing, shares)
    print("start-up", flush=True)
    for name, argv_for_port in commands.items():
        if name in ("quota-mock", "bare Flask", "Prism"):  # the others start as quota-mock does
            results.startup[name] = measure_startup(name, argv_for_port)
    print("memory at scale", flush=True)
    results.memory = module_figures("memory")
    print("growth curves", flush=True)
    results.growth = module_figures("growth")
    print("a grant's cost on Redis", flush=True)
    results.redis_cost = module_figures("redis_cost")
    print("a grant's cost to the app's thread", flush=True)
    results.app_cost = module_figures("app_cost")
    print("conformance run", flush=True)
    results.conformance_seconds = conformance_seconds()
    print("profile of the grant path", flush=True)
    results.grant_profile = profile_grants()
    results.app_seconds = {
        "quota-mock": app_seconds_per_grant(),
        "bare Flask": app_seconds_per_grant(create_bare_app()),
    }

    report = write_results(results)
    print(report)


if __name__ == "__main__":
    main()
