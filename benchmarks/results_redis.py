"""RESULTS.md's account of the Redis series: what bounds it on this machine, from the run's own
figures, and what a grant costs each server in CPU time and context switches."""

from __future__ import annotations

from mockserver.config import REDIS_THREADS

from .load import LoadResult
from .server_names import GRANT, MOCK, REDIS_1, REDIS_2, REDIS_UNIX_1

Load = dict[str, dict[str, LoadResult]]


def redis_bound(load: Load) -> list[str]:
    """What bounds the Redis series on this machine, from this run's figures."""
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
    lines += _cost_per_grant(load, one, memory)
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
    return lines


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
