import pytest

from mockserver.domain.errors import (
    IDEMPOTENCY_KEY_IN_FLIGHT,
    IDEMPOTENCY_KEY_REUSED,
    SERVICE_UNAVAILABLE,
    IdempotencyStoreFull,
    QuotaError,
)
from mockserver.domain.idempotency import IdempotencyTable

RESULT = 41  # what the store keeps for a completed key (the memory store: a ledger position)


def keys(table: IdempotencyTable, now: float) -> list[str]:
    return [row.key for row in table.rows(now)[0]]


def test_first_claim_is_new_and_a_completed_key_replays():
    table = IdempotencyTable()
    assert table.claim("scope", "k", b"fp", now=0) is None
    table.complete("scope", "k", RESULT)
    assert table.claim("scope", "k", b"fp", now=1) == RESULT


def test_same_key_with_another_body_is_refused():
    table = IdempotencyTable()
    table.claim("scope", "k", b"fp", now=0)
    table.complete("scope", "k", RESULT)
    with pytest.raises(QuotaError) as caught:
        table.claim("scope", "k", b"other", now=1)
    assert caught.value.code == IDEMPOTENCY_KEY_REUSED


def test_key_in_flight_is_refused_until_released():
    table = IdempotencyTable()
    table.claim("scope", "k", b"fp", now=0)
    with pytest.raises(QuotaError) as caught:
        table.claim("scope", "k", b"fp", now=0)
    assert caught.value.code == IDEMPOTENCY_KEY_IN_FLIGHT
    table.release("scope", "k")
    assert table.claim("scope", "k", b"fp", now=0) is None


def test_keys_are_scoped_per_api_key():
    table = IdempotencyTable()
    table.claim("a", "k", b"fp", now=0)
    table.complete("a", "k", RESULT)
    assert table.claim("b", "k", b"other", now=0) is None


def test_keys_expire_after_the_ttl():
    table = IdempotencyTable(ttl_seconds=100)
    table.claim("s", "k", b"fp", now=0)
    table.complete("s", "k", RESULT)
    assert table.claim("s", "k", b"fp", now=99.9) == RESULT
    assert table.claim("s", "k", b"different body is fine now", now=100) is None


def test_a_full_table_refuses_new_keys_and_forgets_none_before_its_time():
    table = IdempotencyTable(ttl_seconds=100, max_keys=3)
    for i in range(3):
        table.claim("s", f"k{i}", b"fp", now=i)
        table.complete("s", f"k{i}", i)
    with pytest.raises(IdempotencyStoreFull) as caught:
        table.claim("s", "new", b"fp", now=10)
    assert caught.value.code == SERVICE_UNAVAILABLE
    assert caught.value.headers == {"Retry-After": "90"}  # when k0 expires
    assert keys(table, now=10) == ["k0", "k1", "k2"]
    assert [table.claim("s", f"k{i}", b"fp", now=10) for i in range(3)] == [0, 1, 2]  # still replayed
    assert table.claim("s", "new", b"fp", now=100) is None  # k0's time is up: room for one
    assert keys(table, now=100) == ["k1", "k2", "new"]


def test_in_flight_claims_count_and_are_never_dropped():
    table = IdempotencyTable(max_keys=2)
    table.claim("s", "a", b"fp", now=0)
    table.claim("s", "b", b"fp", now=0)
    with pytest.raises(IdempotencyStoreFull):
        table.claim("s", "c", b"fp", now=0)
    assert keys(table, now=0) == ["a", "b"]
    table.release("s", "a")
    assert table.claim("s", "c", b"fp", now=0) is None


def test_rows_page_through_live_keys_in_first_use_order():
    table = IdempotencyTable(ttl_seconds=1000)
    for i in range(10):
        table.claim("s", f"k{i}", b"fp", now=i)
        if i != 4:
            table.complete("s", f"k{i}", i)
    table.release("s", "k4")
    seen, cursor = [], None
    while True:
        rows, cursor = table.rows(now=10, cursor=cursor, limit=3)
        assert len(rows) <= 3
        seen += [(row.key, row.result) for row in rows]
        if cursor is None:
            break
    assert seen == [(f"k{i}", i) for i in range(10) if i != 4]


def test_a_long_run_keeps_memory_bounded_by_dropping_the_expired_prefix():
    table = IdempotencyTable(ttl_seconds=10, max_keys=100)
    for i in range(20_000):
        table.claim("s", f"k{i}", b"fp", now=i / 10)
        table.complete("s", f"k{i}", i)
    assert len(table) == 100
    assert len(table._keys) < 2_200  # the dead prefix was compacted away
    assert table.claim("s", "k19999", b"fp", now=1999.95) == 19_999
