"""What the request journal costs a request: ``python -m benchmarks.journal_cost [--seconds N]``.

Two measures, each with the journal on (the default) and off (``--journal-size 0``):

- inside the app: CPU seconds per grant, the WSGI app called directly (as in
  ``profile_grant``), over interleaved rounds, median and best;
- over sockets: grants per second through ``quota-mock`` under wrk, interleaved as
  ``benchmarks.run`` does, median over rounds.

Process CPU time, not wall time, for the first: the machine is shared, and neighbours'
load inflates wall time far more than it inflates this process' own work.
"""

from __future__ import annotations

import argparse
import random
import time
from statistics import median
from typing import Any

from mockserver import create_app
from mockserver.server import free_port

from . import servers
from .load import run_wrk
from .profile_grant import _call, _environ
from .tools import find_wrk

SCENARIOS = ("grant (fresh keys)", "grant (replays)")


def app_cost(rounds: int = 40, requests: int = 300) -> dict[str, list[float]]:
    """CPU microseconds per grant inside the app, per round, journal on and off."""
    apps: dict[str, Any] = {
        "journal on": create_app({"pool": "100000000"}),
        "journal off": create_app({"pool": "100000000", "journal_size": 0}),
    }
    for name, app in apps.items():  # warm-up: imports, caches, a full ring
        for i in range(6000 if name == "journal on" else 200):
            _call(app, _environ(f"warm-{i}"))
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for round_number in range(rounds):
        names = list(apps)
        random.shuffle(names)
        for name in names:
            environs = [_environ(f"{name}-{round_number}-{i}") for i in range(requests)]
            started = time.process_time()
            for environ in environs:
                _call(apps[name], environ)
            samples[name].append((time.process_time() - started) / requests * 1e6)
    return samples


def served_rps(seconds: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Grants per second through ``quota-mock``, journal on and off, the two alternating
    within each round (as ``benchmarks.run`` interleaves its servers)."""
    wrk = find_wrk()
    argv = {
        "journal on": servers.mock_argv,
        "journal off": lambda port: [*servers.mock_argv(port), "--journal-size", "0"],
    }
    running = {}
    try:
        for name, argv_for_port in argv.items():
            port = free_port()
            running[name] = servers.start(name, argv_for_port(port), port)
            run_wrk(wrk, running[name].base_url, "packages", 1)  # warm-up
        samples: dict[str, dict[str, list[float]]] = {name: {s: [] for s in SCENARIOS} for name in running}
        for _ in range(rounds):
            for scenario in SCENARIOS:
                for name, server in running.items():
                    samples[name][scenario].append(run_wrk(wrk, server.base_url, scenario, seconds).rps)
        return samples
    finally:
        for server in running.values():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="wrk seconds per scenario and round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds (default 3)")
    parser.add_argument("--no-wrk", action="store_true", help="only the in-app measure")
    args = parser.parse_args()
    costs = app_cost()
    on, off = costs["journal on"], costs["journal off"]
    print("CPU µs per grant inside the app (median / best of 40 rounds):")
    for name, values in costs.items():
        print(f"  {name:12s} {median(values):7.1f} / {min(values):7.1f}")
    print(f"  journal cost: {median(on) - median(off):+.1f} µs median ({(median(on) / median(off) - 1) * 100:+.1f} %)")
    if args.no_wrk:
        return
    rps = served_rps(args.seconds, args.rounds)
    print(f"grants/s through quota-mock under wrk (median of {args.rounds} rounds):")
    for scenario in SCENARIOS:
        with_journal, without = median(rps["journal on"][scenario]), median(rps["journal off"][scenario])
        change = (with_journal / without - 1) * 100
        print(f"  {scenario:20s} on {with_journal:8.0f}  off {without:8.0f}  ({change:+.1f} %)")


if __name__ == "__main__":
    main()
