"""What one grant costs on the Redis store (``python -m benchmarks.redis_cost``), in process.

- round trips: requests the store sends Redis per grant, counted on the client;
- Redis commands: every command Redis runs per grant, those inside the Lua script included
  (``INFO commandstats``);
- microseconds: a whole grant through the domain service, against the same grant on the
  memory store, and the part Redis itself spends running the script (its ``usec``);
- memory: what a stored Idempotency-Key and a ledger entry cost inside Redis.
Prints one JSON object.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import redis

from mockserver.domain.accounts import Developer, ModelPrice, PriceTable, Seed
from mockserver.domain.clock import Clock
from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.redis_clock import RedisClock
from mockserver.domain.redis_store import RedisStore
from mockserver.domain.service import FundingService

from .redis_server import private_redis

GRANTS = 20_000
SEED = Seed(Developer(), ("k",), pool=10**15, users={}, prices=PriceTable({}, ModelPrice(1, 1)))


def _grants(service: FundingService, count: int, tag: str) -> float:
    """Seconds per keyed grant (a fresh UUID key each, as clients send)."""
    keys = [str(uuid.uuid4()) for _ in range(count)]
    started = time.perf_counter()
    for key in keys:
        service.grant(
            scope="0123456789abcdef01234567",
            idempotency_key=key,
            fingerprint=hashlib.sha256(key.encode()).digest(),
            user_id=f"{tag}_user",
            amount=10_000,
            description="benchmark",
        )
    return (time.perf_counter() - started) / count


def _command_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    return client.info("commandstats")


def _calls(before: dict, after: dict) -> tuple[int, float, dict[str, int]]:
    calls, usec, by_command = 0, 0.0, {}
    for name, stats in after.items():
        earlier = before.get(name, {"calls": 0, "usec": 0})
        delta = stats["calls"] - earlier["calls"]
        if delta:
            by_command[name.removeprefix("cmdstat_")] = delta
            calls += delta
        if name == "cmdstat_evalsha":
            usec += stats["usec"] - earlier["usec"]
    return calls, usec, by_command


def measure(grants: int = GRANTS) -> dict[str, Any]:
    memory = FundingService(MemoryStore(), Clock(), SEED)
    _grants(memory, 2_000, "warm")
    memory_seconds = _grants(memory, grants, "memory")
    with private_redis() as redis_under_test:
        url = redis_under_test.url
        store = RedisStore(url)
        service = FundingService(store, RedisClock(store), SEED)
        _grants(service, 2_000, "warm")  # scripts loaded, connection open
        round_trips = [0]
        original = store.link.call_many  # every exchange with Redis goes through it

        def counting(*args: Any, **options: Any) -> Any:
            round_trips[0] += 1
            return original(*args, **options)

        store.link.call_many = counting  # type: ignore[method-assign]
        with redis.Redis.from_url(url) as client:
            client.config_resetstat()
            used_before = client.info("memory")["used_memory"]
            before = _command_stats(client)
            redis_seconds = _grants(service, grants, "redis")
            calls, script_usec, by_command = _calls(before, _command_stats(client))
            used_after = client.info("memory")["used_memory"]
            keys_held = store.idempotency_key_count()
        store.close()
    per_grant = {name: count / grants for name, count in sorted(by_command.items())}
    return {
        "grants": grants,
        "round_trips_per_grant": round_trips[0] / grants,
        "redis_commands_per_grant": calls / grants,
        "commands": per_grant,
        "redis_script_microseconds": script_usec / grants,
        "redis_grant_microseconds": redis_seconds * 1e6,
        "memory_grant_microseconds": memory_seconds * 1e6,
        # One grant with a fresh key stores one key record and one ledger entry (and a usage
        # series member): Redis' memory grown, per grant.
        "redis_bytes_per_keyed_grant": (used_after - used_before) / grants,
        "keys_held": keys_held,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
