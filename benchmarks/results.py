"""Rendering one benchmark run as benchmarks/RESULTS.md: figures, ratios, targets."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from . import figures
from .load import SCENARIOS, LoadResult
from .results_redis import redis_bound
from .results_scale import growth_section, redis_section
from .server_names import (
    BARE,
    GRANT,
    MOCK,
    PRISM,
    REDIS_1,
    REDIS_1_CAPPED,
    REDIS_1_NO_JOURNAL,
    REDIS_2,
    REDIS_2_CAPPED,
    REDIS_UNIX_1,
    THREADS_8,
    WORKER_SHARE,
)

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
SCALE_LIMIT = 3.0  # a read at 1,000,000 entries may cost at most this many times an empty one


@dataclass
class Results:
    prism_version: str | None = None
    rounds: int = 1
    seconds: int = 0
    # Every round's figures per server and scenario, in the order they were measured.
    rounds_load: dict[str, dict[str, list[LoadResult]]] = field(default_factory=dict)
    startup: dict[str, float] = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    conformance_seconds: float = 0.0
    grant_profile: str = ""
    # Seconds one grant costs inside each app, called directly (no server).
    app_seconds: dict[str, float] = field(default_factory=dict)
    # benchmarks.growth and benchmarks.redis_cost, as they print them.
    growth: dict = field(default_factory=dict)
    redis_cost: dict = field(default_factory=dict)
    # benchmarks.app_cost: a grant's user and system time on the app's own thread.
    app_cost: dict = field(default_factory=dict)

    @property
    def load(self) -> dict[str, dict[str, LoadResult]]:
        """The median round of each server and scenario."""
        return {
            name: {
                scenario: sorted(runs, key=lambda run: run.rps)[len(runs) // 2]
                for scenario, runs in by_scenario.items()
            }
            for name, by_scenario in self.rounds_load.items()
        }

    def round_ratios(self, scenario: str, server: str, other: str) -> list[float]:
        """The ratio of two servers in each round: servers alternate, so each pair is seconds apart."""
        ours, theirs = self.rounds_load[server][scenario], self.rounds_load[other][scenario]
        return [mine.rps / peer.rps for mine, peer in zip(ours, theirs, strict=True) if peer.rps]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _ratio(results: Results, scenario: str, other: str, mine: str = MOCK) -> float | None:
    if other not in results.load or mine not in results.load:
        return None
    theirs = results.load[other][scenario].rps
    return results.load[mine][scenario].rps / theirs if theirs else None


def _growth_ratio(results: Results, store: str, measure: str) -> float | None:
    """The cost at the largest size over the cost at the smallest (an empty mock)."""
    points = results.growth.get(store)
    if not points:
        return None
    return points[-1][measure] / points[0][measure]


def _targets(results: Results) -> list[tuple[str, str, str, bool | None]]:
    mock_grant = results.load[MOCK][GRANT]
    vs_prism = _ratio(results, GRANT, PRISM)
    vs_bare = _ratio(results, GRANT, BARE)

    def spread(other: str, mine: str = MOCK) -> str:
        return _spread(results, mine, other)

    def at_least(name: str, goal: float, ratio: float | None, mine: str, other: str) -> tuple:
        measured = "n/a" if ratio is None else f"{ratio:.2f} ×" + spread(other, mine)
        return (name, f"≥ {goal:g} ×", measured, None if ratio is None else ratio >= goal)

    def flat(name: str, store: str, measure: str) -> tuple:
        ratio = _growth_ratio(results, store, measure)
        points = results.growth.get(store) or [{}]
        entries = points[-1].get("entries", 0)
        measured = "n/a" if ratio is None else f"{ratio:.2f} × at {entries:,} entries"
        return (name, f"≤ {SCALE_LIMIT:g} × empty", measured, None if ratio is None else ratio <= SCALE_LIMIT)

    ledger = results.memory["ledger"]
    keys = results.memory["idempotency"]
    plateau = keys["bytes_after_extra"] <= keys["bytes_at_bound"] * 1.02 + 1_000_000
    rows = [
        at_least("grant throughput vs Prism", 3, vs_prism, MOCK, PRISM),
        at_least("grants, Redis 1 worker vs memory store", 0.5, _ratio(results, GRANT, MOCK, REDIS_1), REDIS_1, MOCK),
        *worker_scaling(results),
        flat("`GET /v1/me`, memory store (in-process)", "memory", "me_us"),
        flat("`GET /_mock/dashboard.json`, memory store (in-process)", "memory", "dashboard_us"),
        flat("`GET /v1/me`, Redis store (in-process)", "redis", "me_us"),
        (
            "Redis round trips per grant",
            "1",
            f"{results.redis_cost.get('round_trips_per_grant', 0):.2f}",
            round(results.redis_cost.get("round_trips_per_grant", 0), 2) == 1 if results.redis_cost else None,
        ),
        ("grant throughput vs bare Flask, same server", "≥ 0.7 ×", f"{vs_bare:.2f} ×" + spread(BARE), vs_bare >= 0.7),
        ("p99 latency, grants, 8 connections", "≤ 20 ms", f"{mock_grant.p99_ms:.1f} ms", mock_grant.p99_ms <= 20),
        ("start to first response", "≤ 0.5 s", f"{results.startup[MOCK]:.2f} s", results.startup[MOCK] <= 0.5),
        (
            "memory per ledger entry (1,000,000 grants)",
            "≤ 300 B",
            f"{ledger['bytes_per_entry']:.0f} B",
            ledger["bytes_per_entry"] <= 300,
        ),
        (
            f"idempotency store full ({keys['max_keys']:,} keys), {keys['extra_sent']:,} more sent",
            "all refused, none forgotten, flat memory",
            f"{keys['extra_refused']:,} refused, {keys['held']:,} kept; {keys['bytes_at_bound'] / 1e6:.0f} MB"
            f" → {keys['bytes_after_extra'] / 1e6:.0f} MB",
            keys["extra_refused"] == keys["extra_sent"] and keys["held"] == keys["max_keys"] and plateau,
        ),
        (
            "conformance default run against the mock",
            "≤ 30 s",
            f"{results.conformance_seconds:.1f} s",
            results.conformance_seconds <= 30,
        ),
    ]
    return rows


def _spread(results: Results, mine: str, other: str) -> str:
    """The lowest and highest ratio of the rounds, where there were several."""
    ratios = results.round_ratios(GRANT, mine, other)
    return f" (rounds: {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""


def worker_scaling(results: Results) -> list[tuple[str, str, str, bool | None]]:
    """Two Redis workers against one: the goal (0.8 × N) on the series where each worker is held
    to the same share of a core; the unheld ratio has none, since on two cores the workers
    share the machine with redis-server and wrk (RESULTS.md says what that leaves)."""
    held = _ratio(results, GRANT, REDIS_1_CAPPED, REDIS_2_CAPPED)
    unheld = _ratio(results, GRANT, REDIS_1, REDIS_2)
    return [
        (f"grants, Redis 2 workers vs 1, each worker on {WORKER_SHARE:g} of a core (0.8 × N on N shares)",
         "≥ 1.6 ×", "n/a" if held is None else f"{held:.2f} ×" + _spread(results, REDIS_2_CAPPED, REDIS_1_CAPPED),
         None if held is None else held >= 1.6),
        ("grants, Redis 2 workers vs 1, unheld", "none: bound by this machine's 2 cores",
         "n/a" if unheld is None else f"{unheld:.2f} ×" + _spread(results, REDIS_2, REDIS_1), None),
    ]


def _stolen_shares(results: Results) -> list[float]:
    """The share of the machine the host took during each load run (steal, /proc/stat)."""
    return [run.machine_stolen for by_scenario in results.rounds_load.values() for runs in by_scenario.values()
            for run in runs if run.machine_stolen is not None]  # fmt: skip


def _host_share(results: Results) -> list[str]:
    """How much of the machine the host took during the load, from every run's /proc/stat."""
    shares = _stolen_shares(results)
    if not shares:
        return []
    return [
        "",
        f"This machine is a virtual one on a shared host, which took {sum(shares) / len(shares):.0%} of its CPU"
        f" time over the load runs (steal, from /proc/stat; {min(shares):.0%} to {max(shares):.0%} in one run)."
        " A run the host starved is slower whatever the server, so compare servers by the ratios within"
        " a round, not absolute figures across runs.",
    ]


def render(results: Results) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"Measured {now} on {os.cpu_count()} cores ({_cpu_model()}), {platform.system()} {platform.release()},",
        f"Python {platform.python_version()}, Flask {_version('flask')}, granian {_version('granian')},"
        f" Prism {results.prism_version or 'not run'}. Produced by `python -m benchmarks.run`;"
        " every figure below comes from that one run.",
        "",
        f"Load: wrk, one thread, 8 connections, {results.seconds} s per scenario and server, in {results.rounds}"
        " rounds that alternate the servers; each figure is the median round. quota-mock runs as"
        " the `quota-mock --quiet` command serves it (one process, full validation and state; the"
        " Redis series on a private redis-server on the same machine, with `--workers 1` and `2`"
        " over loopback TCP and `--workers 1` over a unix socket, each worker on the default 3 threads;"
        f" and `--workers 1` and `2` again with each worker process held to {WORKER_SHARE:g} of a core by a"
        " cgroup CPU quota, `benchmarks/cpu_caps.py`);"
        " bare Flask answers the same JSON with nothing else, under the same server; Prism mocks"
        " openapi.yaml from its examples (no state).",
        *_host_share(results),
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for name, goal, measured, met in _targets(results):
        lines.append(f"| {name} | {goal} | {measured} | {'n/a' if met is None else ('yes' if met else '**no**')} |")
    lines += [
        "",
        "## Throughput and latency",
        "",
        "| scenario | server | req/s | p50 ms | p99 ms | non-2xx | machine busy | taken by the host |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        for server, by_scenario in results.load.items():
            r = by_scenario[scenario]
            busy = "n/a" if r.machine_busy is None else f"{r.machine_busy:.0%}"
            stolen = "n/a" if r.machine_stolen is None else f"{r.machine_stolen:.0%}"
            lines.append(f"| {scenario} | {server} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.non_2xx} "
                         f"| {busy} | {stolen} |")
    lines += [
        "",
        "## Ratios (same run)",
        "",
        "| scenario | quota-mock / Prism | quota-mock / bare Flask | Redis 1 worker / memory | Redis 2 / 1 worker"
        f" | Redis 2 / 1 worker, {WORKER_SHARE:g} core each |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        ratios = (
            _ratio(results, scenario, PRISM),
            _ratio(results, scenario, BARE),
            _ratio(results, scenario, MOCK, REDIS_1),
            _ratio(results, scenario, REDIS_1, REDIS_2),
            _ratio(results, scenario, REDIS_1_CAPPED, REDIS_2_CAPPED),
        )
        lines.append(f"| {scenario} | " + " | ".join("n/a" if r is None else f"{r:.2f}" for r in ratios) + " |")
    lines += redis_bound(results.load, results.app_cost, server_share(results))
    lines += ["", "## Start to first response (median of 5 cold starts)", "", "| server | seconds |", "| --- | --- |"]
    lines += [f"| {server} | {seconds:.2f} |" for server, seconds in results.startup.items()]
    ledger, keys = results.memory["ledger"], results.memory["idempotency"]
    lines += [
        "",
        "## Memory at scale",
        "",
        f"- 1,000,000 grants: {ledger['bytes_per_entry']:.0f} bytes of resident memory per ledger entry"
        f" ({ledger['grants_per_second_in_process']:,.0f} grants/s through the domain service in-process).",
        f"- Idempotency keys: {keys['bytes_per_key']:.0f} bytes of resident memory per stored key (a 36-character"
        f" UUID key included), so the default bound of {keys['max_keys']:,} keys costs"
        f" {keys['bytes_at_bound'] / 1e6:.0f} MB when full; {keys['extra_sent']:,} more keys sent to the full"
        f" store were all refused ({keys['extra_refused']:,}) and memory stayed at"
        f" {keys['bytes_after_extra'] / 1e6:.0f} MB.",
        "",
        *growth_section(results.growth),
        *redis_section(results.redis_cost),
        f"## Conformance\n\nA full default `quota-conformance` run against a running quota-mock took"
        f" {results.conformance_seconds:.1f} s.",
        "",
        *_bounds(results),
        "## Where a grant's time goes",
        "",
        "cProfile of 5,000 grant requests into the mock's WSGI app (no server, no network), by own time:",
        "",
        "```",
        results.grant_profile.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def server_share(results: Results) -> float | None:
    """Seconds of a request the server itself takes on a worker's Python thread: bare Flask's
    time per request under the server, less the time its app takes called directly."""
    bare_app = results.app_seconds.get(BARE)
    if not bare_app or BARE not in results.load or not results.load[BARE][GRANT].rps:
        return None
    return max(1 / results.load[BARE][GRANT].rps - bare_app, 0.0)


def _bounds(results: Results) -> list[str]:
    """What bounds grant throughput, computed from this run's own measurements.

    One granian worker runs Python on one thread, so a request costs the server's own share
    plus the app's. The bare app's figures give the server's share; the mock's app cost then
    predicts its ceiling on this server, which the measured throughput can be held against.
    """
    mock_app, bare_app, share = results.app_seconds.get(MOCK), results.app_seconds.get(BARE), server_share(results)
    if not mock_app or not bare_app or share is None:
        return []
    bare_rps = results.load[BARE][GRANT].rps
    ceiling = 1 / (share + mock_app)
    lines = [
        "## What bounds grant throughput",
        "",
        "Measured in this run: one grant costs the mock's Flask app"
        f" {mock_app * 1e6:.0f} µs called directly (no server; best of 5 runs of 2,000), against"
        f" {bare_app * 1e6:.0f} µs for bare Flask. Bare Flask's {bare_rps:,.0f} req/s under the same server"
        f" leaves the server's own share at {share * 1e6:.0f} µs a request, so this server can give"
        f" the mock at most about {ceiling:,.0f} grants/s on its one Python thread"
        f" (measured: {results.load[MOCK][GRANT].rps:,.0f}). The gap to bare Flask is the mock's own work:"
        " auth, contract validation, exact JSON parsing, the idempotency claim, the ledger, the response",
        "and the envelope hooks, in the order the profile below shows; threads do not help (they contend"
        " for the GIL: see the README), more worker processes do, with the Redis store.",
        "",
    ]
    if PRISM in results.load:
        prism_rps = results.load[PRISM][GRANT].rps
        lines += [
            f"Against Prism ({prism_rps:,.0f} req/s here) that ceiling is {ceiling / prism_rps:.2f} ×;"
            f" against bare Flask it is {ceiling / bare_rps:.2f} ×.",
            "",
        ]
    return lines


def headline(results: Results) -> dict:
    """The figures the README quotes (benchmarks/figures.py), from this run."""
    load, growth, cost = results.load, results.growth, results.redis_cost
    memory, per_user = results.memory, growth.get("per_user", {})
    return {
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "host_stolen": (sum(shares) / len(shares)) if (shares := _stolen_shares(results)) else None,
        "grant_rps": load[MOCK][GRANT].rps,
        "grant_p99_ms": load[MOCK][GRANT].p99_ms,
        "vs_prism": _ratio(results, GRANT, PRISM) or 0.0,
        "vs_bare": _ratio(results, GRANT, BARE) or 0.0,
        "threads8_rps": load[THREADS_8][GRANT].rps,
        "threads8_p99_ms": load[THREADS_8][GRANT].p99_ms,
        "redis1_rps": load[REDIS_1][GRANT].rps,
        "redis2_rps": load[REDIS_2][GRANT].rps,
        "redis1_vs_memory": _ratio(results, GRANT, MOCK, REDIS_1) or 0.0,
        "redis2_vs_redis1": _ratio(results, GRANT, REDIS_1, REDIS_2) or 0.0,
        "redis2_vs_redis1_held": _ratio(results, GRANT, REDIS_1_CAPPED, REDIS_2_CAPPED),
        "worker_share": WORKER_SHARE,
        "redis2_machine_busy": load[REDIS_2][GRANT].machine_busy,
        "redis_unix1_rps": load[REDIS_UNIX_1][GRANT].rps if REDIS_UNIX_1 in load else None,
        "redis_unix1_vs_memory": _ratio(results, GRANT, MOCK, REDIS_UNIX_1),
        "redis_no_journal1_rps": load[REDIS_1_NO_JOURNAL][GRANT].rps if REDIS_1_NO_JOURNAL in load else None,
        "redis_no_journal1_vs_memory": _ratio(results, GRANT, MOCK, REDIS_1_NO_JOURNAL),
        "redis_round_trips": cost["round_trips_per_grant"],
        "redis_commands": cost["redis_commands_per_grant"],
        "me_us_empty": growth["memory"][0]["me_us"],
        "me_us_large": growth["memory"][-1]["me_us"],
        "large_entries": growth["memory"][-1]["entries"],
        "bytes_per_entry": per_user.get("bytes_per_entry", memory["ledger"]["bytes_per_entry"]),
        "bytes_per_user": per_user.get("bytes_per_user", 0.0),
        "bytes_per_key": memory["idempotency"]["bytes_per_key"],
        "max_keys": memory["idempotency"]["max_keys"],
    }


def write_results(results: Results) -> str:
    text = render(results)
    RESULTS_PATH.write_text(text, encoding="utf-8")
    figures.write(headline(results))
    return text
