"""Memory of the domain at scale, measured in a fresh process (``python -m benchmarks.memory``).

- bytes per ledger entry: resident memory grown by 1,000,000 grants, divided by 1,000,000;
- the idempotency store filled to its bound: what a key costs, and that keys past the
  bound are refused (never stored by forgetting a live one) with memory flat.
Prints one JSON object.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
import uuid

from mockserver.domain.accounts import Developer, ModelPrice, PriceTable, Seed
from mockserver.domain.clock import Clock
from mockserver.domain.errors import IdempotencyStoreFull
from mockserver.domain.idempotency import DEFAULT_MAX_KEYS, IdempotencyTable
from mockserver.domain.memory_store import MemoryStore
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


def idempotency_bound(max_keys: int = DEFAULT_MAX_KEYS, extra: int = 200_000) -> dict[str, float]:
    """Fill a table to its bound with UUID keys (what clients usually send), then send
    ``extra`` more: every one must be refused, and memory must not grow. The memory grown
    while filling, divided by the bound, is what a stored key costs (its key string included)."""
    table = IdempotencyTable(max_keys=max_keys)
    scope = "0123456789abcdef01234567"
    base = rss_bytes()
    for i in range(max_keys):
        key = str(uuid.uuid4())
        table.claim(scope, key, hashlib.sha256(key.encode()).digest(), now=i / 1000)
        table.complete(scope, key, i)
    at_bound = rss_bytes() - base
    refused = 0
    for i in range(extra):
        key = str(uuid.uuid4())
        try:
            table.claim(scope, key, hashlib.sha256(key.encode()).digest(), now=max_keys / 1000 + i / 1000)
        except IdempotencyStoreFull:
            refused += 1
    return {
        "max_keys": max_keys,
        "held": len(table),
        "extra_sent": extra,
        "extra_refused": refused,
        "bytes_per_key": at_bound / max_keys,
        "bytes_at_bound": at_bound,
        "bytes_after_extra": rss_bytes() - base,
    }


def main() -> None:
    print(json.dumps({"ledger": ledger_bytes_per_entry(), "idempotency": idempotency_bound()}))


if __name__ == "__main__":
    main()
