"""Growth curves (``python -m benchmarks.growth``): what a grant, ``GET /v1/me`` and the
dashboard's live part cost as the ledger grows to 10,000, 100,000 and 1,000,000 entries, on
the memory store and on Redis, and what a user and a ledger entry cost in memory.

Requests go straight into the WSGI app (no server, no network), so the figures are the app's
own cost; the ledger is filled through the store (a grant a user of 1,000, a chat charge
every 100th entry) rather than through HTTP, to keep the run short. Each figure is the
median of a few hundred requests. Prints one JSON object.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from typing import Any

from werkzeug.test import EnvironBuilder

from mockserver import create_app, mock_state
from mockserver.domain import redis_codec as codec
from mockserver.domain.accounts import Developer, ModelPrice, PriceTable, Seed
from mockserver.domain.clock import Clock
from mockserver.domain.ledger import new_ledger_id
from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.records import CHARGE, GRANT
from mockserver.domain.redis_store import RedisStore

from .memory import rss_bytes
from .redis_server import private_redis

SIZES = (0, 10_000, 100_000, 1_000_000)
SAMPLES = 300
AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}
GRANT_BODY = b'{"external_user_id": "bench_user", "amount": 0.01, "description": "benchmark"}'


def _environ(method: str, path: str, body: bytes = b"", key: str | None = None) -> dict[str, Any]:
    headers = dict(AUTH)
    if body:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Idempotency-Key"] = key
    return EnvironBuilder(path=path, method=method, data=body or None, headers=headers).get_environ()


def _microseconds(app: Any, environs: list[dict[str, Any]]) -> float:
    """Median microseconds a request, each environ sent once."""
    timings, statuses = [], []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    for environ in environs:
        started = time.perf_counter()
        for _chunk in app(environ, start_response):
            pass
        timings.append(time.perf_counter() - started)
    assert all(status.startswith("200") for status in statuses), set(statuses)
    return statistics.median(timings) * 1e6


def _fill(store: Any, entries: int, now: float) -> None:
    if isinstance(store, RedisStore):
        _fill_redis(store, entries, now)
        return
    for i in range(entries):
        if i % 100 == 99:
            store.apply_charge(f"user_{(i - 1) % 1000}", 1, "m", 3, 4, now)  # granted just before
        else:
            store.apply_grant(f"user_{i % 1000}", 10, None, now, None)


def _fill_redis(store: RedisStore, entries: int, now: float, batch: int = 2_000) -> None:
    """The same entries through the store's own scripts, a pipeline of them at a time: a
    million one by one would take minutes of round trips this benchmark does not measure."""
    grant, charge = store.script_commands["GRANT"], store.script_commands["CHARGE"]
    at = codec.time_text(now)
    store.ledger_size()  # a first call: the link's connection is open
    for start in range(0, entries, batch):
        commands = []
        for i in range(start, min(entries, start + batch)):
            ledger_id = new_ledger_id()
            if i % 100 == 99:
                user = f"user_{(i - 1) % 1000}"
                tail = codec.tail(ledger_id, CHARGE, user, None, "m", 3, 4)
                commands.append(charge.pack("user", user, 1, at, "m", 3, 4, tail))
            else:
                user = f"user_{i % 1000}"
                tail = codec.tail(ledger_id, GRANT, user, None)
                commands.append(grant.pack("plain", at, "0", user, 10, tail, ledger_id))
        replies = store.link.call_many(commands)
        failed = [reply for reply in replies if isinstance(reply, Exception) or reply[0] != "ok"]
        assert not failed, failed[:3]


def curve(store_url: str | None = None) -> list[dict[str, float]]:
    """Per size: µs of a grant (fresh key), GET /v1/me and GET /_mock/dashboard.json."""
    config: dict[str, Any] = {"pool": "100000000"}
    if store_url:
        config |= {"store": store_url, "store_prefix": "growth:"}
    app = create_app(config)
    state = mock_state(app)
    store = state.service.store
    points = []
    filled = store.ledger_size()
    for size in SIZES:
        _fill(store, max(0, size - filled), state.clock.now())
        filled = store.ledger_size()
        gc.collect()
        tag = f"{size}-{time.time()}"
        grants = [_environ("POST", "/v1/funding/grant", GRANT_BODY, f"g-{tag}-{i}") for i in range(SAMPLES)]
        points.append(
            {
                "entries": filled,
                "grant_us": _microseconds(app, grants),
                "me_us": _microseconds(app, [_environ("GET", "/v1/me") for _ in range(SAMPLES)]),
                "dashboard_us": _microseconds(app, [_environ("GET", "/_mock/dashboard.json") for _ in range(50)]),
            }
        )
        filled = store.ledger_size()
    close = getattr(store, "close", None)
    if close is not None:
        close()
    return points


def memory_per_user(users: int = 1_000_000) -> dict[str, float]:
    """Bytes a user costs: 1,000,000 grants to as many users, against the same number of
    grants to 1,000 users (the difference is the users' own cost)."""
    seed = Seed(Developer(), ("k",), pool=10**15, users={}, prices=PriceTable({}, ModelPrice(1, 1)))
    results = {}
    for label, distinct in (("few", 1_000), ("many", users)):
        store = MemoryStore()
        store.load(seed, Clock().now())
        before = rss_bytes()
        for i in range(users):
            store.apply_grant(f"user_{i % distinct:07d}", 10, None, 0.0, None)
        results[label] = (rss_bytes() - before) / users
        del store
        gc.collect()
    return {
        "bytes_per_entry": results["few"],
        "bytes_per_user": results["many"] - results["few"],
        "users": users,
    }


def main() -> None:
    figures: dict[str, Any] = {"memory": curve()}
    with private_redis() as redis:
        figures["redis"] = curve(redis.url)
    figures["per_user"] = memory_per_user()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
