import pytest

from mockserver.domain.errors import IDEMPOTENCY_KEY_IN_FLIGHT, IDEMPOTENCY_KEY_REUSED, QuotaError
from mockserver.domain.idempotency import IdempotencyTable
from mockserver.domain.records import GrantResult

RESULT = GrantResult("user_123", 500_000, 5_000_000, 5_500_000, "ledg_1")


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


def test_store_is_bounded_and_evicts_the_oldest_completed_key():
    table = IdempotencyTable(max_keys=3)
    for i in range(10):
        table.claim("s", f"k{i}", b"fp", now=i)
        table.complete("s", f"k{i}", RESULT)
        assert len(table) <= 3
    assert [v.key for v in table.views(now=10)] == ["k7", "k8", "k9"]


def test_in_flight_claims_are_never_evicted():
    table = IdempotencyTable(max_keys=2)
    table.claim("s", "a", b"fp", now=0)
    table.claim("s", "b", b"fp", now=0)
    with pytest.raises(QuotaError):
        table.claim("s", "c", b"fp", now=0)
    assert {v.key for v in table.views(now=0)} == {"a", "b"}
