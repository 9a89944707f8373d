"""The scale claims, kept honest without timing anything: what ``/v1/me``, the dashboard's live
part and a listing page read does not grow with the books. In memory, count the ledger
entries they read at 100,000 entries against an empty store; on Redis, count the commands
Redis runs for them against an empty namespace (benchmarks/RESULTS.md has the timings)."""

from __future__ import annotations

import pytest

from mockserver import create_app, mock_state
from mockserver.domain.ledger_columns import LedgerColumns
from mockserver.domain.redis_clock import RedisClock
from mockserver.domain.redis_store import RedisStore
from mockserver.domain.service import FundingService

from ..conftest import AUTH
from ..private_redis import shared_redis
from .seeds import SEED

ROWS = 50  # the dashboard's rows per table


@pytest.fixture
def entries_read(monkeypatch) -> list[int]:
    """How many ledger entries have been materialised since the fixture started."""
    count = [0]
    original = LedgerColumns.__getitem__

    def counting(self, index):
        count[0] += 1
        return original(self, index)

    monkeypatch.setattr(LedgerColumns, "__getitem__", counting)
    return count


def fill(service, grants: int) -> None:
    """``grants`` grants to 1,000 users, and a chat charge every 100th."""
    store, now = service.store, service.clock.now()
    for i in range(grants):
        store.apply_grant(f"user_{i % 1000}", 10, None, now, None)
        if i % 100 == 0:
            store.apply_charge(f"user_{i % 1000}", 1, "m", 3, 4, now)


def reads_of_a_client(app, entries_read) -> dict[str, int]:
    client = app.test_client()
    reads = {}
    for path in ("/v1/me", "/_mock/dashboard.json", "/_mock/ledger", "/_mock/users", "/_mock/idempotency-keys"):
        before = entries_read[0]
        assert client.get(path, headers=AUTH).status_code == 200
        reads[path] = entries_read[0] - before
    return reads


def test_reads_at_100k_entries_touch_what_they_show_not_the_books(entries_read):
    empty = create_app({"pool": "100000"})
    full = create_app({"pool": "100000"})
    fill(mock_state(full).service, 100_000)
    assert mock_state(full).service.store.ledger_size() > 100_000
    at_empty, at_full = reads_of_a_client(empty, entries_read), reads_of_a_client(full, entries_read)
    assert at_full["/v1/me"] == at_empty["/v1/me"] == 0
    assert at_full["/_mock/dashboard.json"] <= ROWS  # the newest rows shown, nothing else
    assert at_full["/_mock/ledger"] <= 100
    # And the answers agree with a full recomputation.
    me = full.test_client().get("/v1/me", headers=AUTH).json["usage"]
    assert (me["requests"], me["grants"]["count"]) == (1_000, 100_000)


def _commands(client) -> int:
    return sum(stats["calls"] for stats in client.info("commandstats").values())


def test_redis_reads_run_the_same_commands_at_5k_entries_as_at_100(prefix="scale-test:"):
    # The same kinds of entries (so the same usage series), a hundred times as many.
    server = shared_redis()
    server.flush()
    stores = [RedisStore(server.url, prefix=prefix + name) for name in ("small:", "large:")]
    services = [FundingService(store, RedisClock(store), SEED) for store in stores]
    fill(services[0], 100)
    fill(services[1], 5_000)

    def reads(service):
        service.overview()
        service.store.slices(service.clock, ROWS)
        service.store.ledger_page(None, 100)
        service.store.users_page(None, 100)
        service.store.idempotency_key_page(service.clock.now(), None, 100)

    counts = []
    with server.client() as client:
        for service in services:
            reads(service)  # scripts loaded, connections made
            before = _commands(client)
            reads(service)
            counts.append(_commands(client) - before)
    for store in stores:
        store.close()
    assert counts[0] == counts[1]
