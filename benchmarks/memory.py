"""Memory of the domain at scale, measured in a fresh process (``python -m benchmarks.memory``).

- bytes per ledger entry: resident memory grown by 1,000,000 grants, divided by 1,000,000;
- the idempotency store under 1,000,000 distinct keys: how many it holds (bounded by its
  configuration) and whether its memory stops growing once it is full.
Prints one JSON object.
"""

from __future__ import annotations

import gc
import json
import os
import time

from mockserver.domain.accounts import Developer, ModelPrice, PriceTable, Seed
from mockserver.domain.clock import Clock
from mockserver.domain.idempotency import DEFAULT_MAX_KEYS, IdempotencyTable
from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.records import GrantResult
from mockserver.domain.service import FundingService

N = 1_000_000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def ledger_bytes_per_entry(count: int = N) -> dict[str, float]:
    seed = Seed(Developer(), ("k",), pool=10**15, users={}, prices=PriceTable({}, ModelPrice(1, 1)))
    service = FundingService(MemoryStore(), Clock(), seed)
    users = [f"user_{i}" for i in range(1000)]
    for user in users:  # users exist before measuring: the figure is the ledger's own growth
        service.store.apply_grant(user, 1, None, 0.0, None)
    before = rss_bytes()
    started = time.perf_counter()
    for i in range(count):
        service.grant(
            scope="s",
            idempotency_key=None,
            fingerprint=b"",
            user_id=users[i % 1000],
            amount=10_000 + i % 997,
            description=None,
        )
    elapsed = time.perf_counter() - started
    grown = rss_bytes() - before
    assert service.store.ledger_size() == count + 1 + len(users)
    assert service.conservation().holds
    return {"entries": count, "bytes_per_entry": grown / count, "grants_per_second_in_process": count / elapsed}


def idempotency_bound(count: int = 2 * N, max_keys: int = DEFAULT_MAX_KEYS) -> dict[str, float]:
    """Send ``count`` distinct keys; the table must hold at most ``max_keys`` and its memory
    must stop growing (the figure at 1,000,000 and at the end are compared)."""
    table = IdempotencyTable(max_keys=max_keys)
    result = GrantResult("user_123", 10_000, 5_000_000, 5_010_000, "ledg_0123456789abcdef0123")
    scope = "0123456789abcdef01234567"
    base = rss_bytes()
    marks: dict[int, int] = {}
    largest = 0
    for i in range(1, count + 1):
        key = f"key-{i}"
        table.claim(scope, key, i.to_bytes(32, "big"), now=float(i) / 1000)
        table.complete(scope, key, result)
        largest = max(largest, len(table))
        if i in (max_keys, N, count):
            marks[i] = rss_bytes() - base
    return {
        "keys_sent": count,
        "max_keys": max_keys,
        "largest_count": largest,
        "bytes_at_bound": marks[max_keys],
        "bytes_at_1m": marks[N],
        "bytes_at_end": marks[count],
    }


def main() -> None:
    print(json.dumps({"ledger": ledger_bytes_per_entry(), "idempotency": idempotency_bound()}))


if __name__ == "__main__":
    main()
