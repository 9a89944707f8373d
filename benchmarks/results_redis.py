"""RESULTS.md's account of the Redis series: what bounds it on this machine, from the run's own
figures, and what a grant costs each server in CPU time and context switches."""

from __future__ import annotations

from mockserver.config import REDIS_THREADS

from .load import LoadResult
from .server_names import (
    GRANT,
    MOCK,
    REDIS_1,
    REDIS_1_CAPPED,
    REDIS_1_NO_JOURNAL,
    REDIS_2,
    REDIS_2_CAPPED,
    REDIS_UNIX_1,
    WORKER_SHARE,
)

Load = dict[str, dict[str, LoadResult]]


def redis_bound(load: Load, app_cost: dict | None = None, server_share: float | None = None) -> list[str]:
    """What bounds the Redis series on this machine, from this run's figures: the load,
    benchmarks.app_cost's figures, and the server's own share of a request (seconds)."""
    if REDIS_1 not in load or REDIS_2 not in load or MOCK not in load:
        return []
    one, two, memory = (load[name][GRANT] for name in (REDIS_1, REDIS_2, MOCK))
    if one.machine_busy is None or two.machine_busy is None:
        return []
    lines = [
        "",
        "## The Redis series on this machine",
        "",
        f"Grants, fresh keys: the memory store served {memory.rps:,.0f}/s; on Redis one worker served"
        f" {one.rps:,.0f}/s with the machine {one.machine_busy:.0%} busy, and two workers {two.rps:,.0f}/s with"
        f" it {two.machine_busy:.0%} busy (busy: every process's CPU time over both cores, the workers,"
        " redis-server and wrk alike). A grant on Redis waits one round trip, its script's (its journal"
        " record's id rides with it, and the record itself goes out with the thread's next request);"
        " a worker's other threads serve requests meanwhile.",
    ]
    quiet = load.get(REDIS_1_NO_JOURNAL, {}).get(GRANT)
    if quiet is not None and quiet.rps:
        lines += [
            "",
            f"With its request journal off (`--journal-size 0`) one worker on Redis served {quiet.rps:,.0f}/s,"
            f" {quiet.rps / memory.rps:.2f} × the memory store: with it on, the journal shared by every worker"
            f" (its record's JSON, its post to Redis, its id's reservation) took {1 - one.rps / quiet.rps:.0%}"
            " of that worker's grants.",
        ]
    lines += _cost_per_grant(load, one, memory)
    lines += _one_gil(app_cost or {}, server_share, memory, one, quiet)
    unix = load.get(REDIS_UNIX_1, {}).get(GRANT)
    if unix is not None and one.rps:
        lines += [
            "",
            f"Over a unix socket (Redis on the workers' own host) one worker served {unix.rps:,.0f}/s,"
            f" {unix.rps / memory.rps:.2f} × the memory store and {unix.rps / one.rps:.2f} × the same worker over"
            " loopback TCP.",
        ]
    if two.machine_busy >= 0.85:
        lines += [
            "",
            "With two workers the two cores are all but used up by the workers, redis-server and wrk, so"
            " the second worker adds only the CPU the first left idle: here the 2-versus-1 ratio measures"
            " the machine, not the store. The more one worker gets out of a core, the lower that ratio.",
        ]
    return lines + _held(load)


def _held(load: Load) -> list[str]:
    """The series with each worker held to the same share of a core."""
    if REDIS_1_CAPPED not in load or REDIS_2_CAPPED not in load:
        return []
    one, two = load[REDIS_1_CAPPED][GRANT], load[REDIS_2_CAPPED][GRANT]
    if not one.rps:
        return []
    busy = "" if two.machine_busy is None else f", the machine then {two.machine_busy:.0%} busy"
    return [
        "",
        f"With each worker process held to {WORKER_SHARE:g} of a core (a cgroup CPU quota on every thread of"
        f" it), the question the 0.8 × N goal asks can be put on this machine: N workers get N equal shares,"
        f" and redis-server and wrk the rest. One worker served {one.rps:,.0f} grants/s and two"
        f" {two.rps:,.0f}/s{busy}: {two.rps / one.rps:.2f} × one, against an ideal of 2 (the shares are"
        " averages over the kernel's 100 ms periods, so a round may come out above 2).",
    ]


def _cost_per_grant(load: Load, one: LoadResult, memory: LoadResult) -> list[str]:
    """Each server's CPU time and context switches per grant, and what they say."""
    measured = {name: by_scenario[GRANT] for name, by_scenario in load.items()}
    if one.server_cpu_us is None or memory.server_cpu_us is None or not one.server_switches:
        return []
    lines = [
        "",
        "What a grant (fresh keys, the median round) costs each server: its CPU time, every process and"
        " thread of it included, its threads' context switches, and the CPU time of the redis-server"
        " under it (from /proc).",
        "",
        "| server | req/s | server CPU µs a request | context switches a request | redis-server CPU µs a request |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in measured.items():
        cells = (
            f"{r.rps:,.0f}",
            "n/a" if r.server_cpu_us is None else f"{r.server_cpu_us:,.0f}",
            "n/a" if r.server_switches is None else f"{r.server_switches:.1f}",
            "—" if r.backing_cpu_us is None else f"{r.backing_cpu_us:,.0f}",
        )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ratio = one.server_cpu_us / memory.server_cpu_us
    lines += [
        "",
        f"One worker on Redis spends {one.server_cpu_us:,.0f} µs of CPU a grant, {ratio:.1f} × the memory"
        f" store's {memory.server_cpu_us:,.0f}, and its threads are switched {one.server_switches:.1f} times a"
        f" grant against {memory.server_switches or 0:.1f}. A grant on Redis waits on a socket, so its thread"
        f" gives up the GIL, and with the worker's {REDIS_THREADS} threads busy the GIL changes hands, through"
        " the kernel, at every send and every reply; on the memory store one thread serves every request"
        " and never hands it over.",
    ]
    return lines


def _one_gil(
    cost: dict, share: float | None, memory: LoadResult, one: LoadResult, quiet: LoadResult | None
) -> list[str]:
    """The ceiling one worker's one GIL puts on the Redis series, from the app's own thread time."""
    rows = [("memory", "on", "memory"), ("memory", "off", "memory_no_journal"), ("Redis", "on", "redis"),
            ("Redis", "off", "redis_no_journal")]  # fmt: skip
    if share is None or any(key not in cost for _, _, key in rows):
        return []
    lines = [
        "",
        "### What one worker's one GIL allows",
        "",
        "A grant request's cost to the app's own thread, called directly in process, one request after"
        " another (`python -m benchmarks.app_cost`, from `getrusage`): user time is Python running with"
        " the GIL held, which a worker's threads cannot overlap; system time is the system calls"
        " (Redis' sends and receives), made with the GIL released.",
        "",
        "| store | journal | user µs a grant | system µs a grant |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {store} | {journal} | {cost[key]['user_us']:.0f} | {cost[key]['system_us']:.0f} |"
              for store, journal, key in rows]  # fmt: skip
    ceiling = 1 / (share + cost["redis"]["user_us"] / 1e6)
    quiet_ceiling = 1 / (share + cost["redis_no_journal"]["user_us"] / 1e6)
    journal_us = cost["redis"]["user_us"] - cost["redis_no_journal"]["user_us"]
    memory_journal_us = cost["memory"]["user_us"] - cost["memory_no_journal"]["user_us"]
    lines += [
        "",
        f"With the server's own share of a request ({share * 1e6:.0f} µs, from bare Flask above), one worker"
        f" on Redis can serve at most about {ceiling:,.0f} grants/s however many threads it runs,"
        f" {ceiling / memory.rps:.2f} × the memory store's measured {memory.rps:,.0f}/s, and that only if its"
        f" threads handed the GIL over for free; it measured {one.rps:,.0f}/s ({one.rps / ceiling:.0%} of that"
        f" ceiling). With the journal off the ceiling is {quiet_ceiling:,.0f}/s"
        f" ({quiet_ceiling / memory.rps:.2f} × the memory store)"
        + (f" and it measured {quiet.rps:,.0f}/s." if quiet is not None else ".")
        + f" The journal's record costs {journal_us:.0f} µs of Python a grant on Redis against"
        f" {memory_journal_us:.0f} µs on the memory store, which keeps the tuple and encodes it only when"
        " read: on Redis every record is encoded as JSON and sent, so that any worker can read it.",
    ]
    return lines
