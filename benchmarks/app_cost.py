"""What one grant request costs the mock's own thread, in process (``python -m benchmarks.app_cost``).

The WSGI app is called directly (no server, no network to the client), one request after
another on one thread, as each of a worker's threads runs it: on the memory store and on a
private Redis, each with its request journal on (the default size) and off. For each, the
thread's CPU time per grant from ``getrusage(RUSAGE_THREAD)``, split into user time (Python
running, the GIL held) and system time (the system calls, Redis' sends and receives, made with
the GIL released). One worker's threads share one GIL, so user time bounds what one worker
can serve however many threads it runs. Prints one JSON object.
"""

from __future__ import annotations

import json
import resource
from typing import Any

from mockserver import create_app
from mockserver.domain.journal import DEFAULT_CAPACITY

from .profile_grant import _call, _environ
from .redis_server import private_redis

GRANTS = 4_000
REPEATS = 4  # the best of these (the machine is shared: noise only ever adds time)


def _thread_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime


def per_grant(store: str, journal_size: int, tag: str) -> dict[str, float]:
    """Microseconds of user and system time this thread spends per grant (fresh keys)."""
    app = create_app({"pool": "100000000", "store": store, "journal_size": journal_size, "store_prefix": f"{tag}:"})
    for i in range(500):  # warm-up: scripts loaded, connections open, caches filled
        _call(app, _environ(f"{tag}-warm-{i}"))
    best: tuple[float, float] | None = None
    for repeat in range(REPEATS):
        environs = [_environ(f"{tag}-{repeat}-{i}") for i in range(GRANTS)]
        user, system = _thread_seconds()
        for environ in environs:
            _call(app, environ)
        after_user, after_system = _thread_seconds()
        figures = ((after_user - user) / GRANTS * 1e6, (after_system - system) / GRANTS * 1e6)
        if best is None or sum(figures) < sum(best):
            best = figures
    assert best is not None
    return {"user_us": best[0], "system_us": best[1]}


def measure() -> dict[str, Any]:
    figures: dict[str, Any] = {"grants": GRANTS, "journal_size": DEFAULT_CAPACITY}
    figures["memory"] = per_grant("memory", DEFAULT_CAPACITY, "m")
    figures["memory_no_journal"] = per_grant("memory", 0, "m0")
    with private_redis() as redis_under_test:
        figures["redis"] = per_grant(redis_under_test.url, DEFAULT_CAPACITY, "r")
        figures["redis_no_journal"] = per_grant(redis_under_test.url, 0, "r0")
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
