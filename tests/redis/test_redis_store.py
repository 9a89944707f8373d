"""What only the Redis store has: namespaces, Redis' own TTL, exact integer range, leases,
the shared clock, and its configuration."""

from __future__ import annotations

import time

import pytest

from mockserver.config import ConfigError, MockConfig
from mockserver.domain.errors import (
    BAD_REQUEST,
    IDEMPOTENCY_KEY_IN_FLIGHT,
    IdempotencyStoreFull,
    QuotaError,
    StoreUnavailable,
)
from mockserver.domain.redis_clock import RedisClock
from mockserver.domain.redis_store import MAX_SAFE_MICRODOLLARS, RedisStore
from mockserver.domain.service import FundingService

from ..unit.seeds import SEED


@pytest.fixture
def make_store(redis_server, prefix):
    stores: list[RedisStore] = []

    def make(**options) -> RedisStore:
        store = RedisStore(redis_server.url, **{"prefix": prefix, **options})
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def grant(service: FundingService, key: str | None = None, user: str = "alice", amount: int = 1_000):
    return service.grant(
        scope="s", idempotency_key=key, fingerprint=b"fp", user_id=user, amount=amount, description=None
    )


def test_namespaces_are_isolated_and_load_wipes_only_its_own(redis_server, make_store):
    one = make_store(prefix="one:")
    two = make_store(prefix="two:")
    first = FundingService(one, RedisClock(one), SEED)
    second = FundingService(two, RedisClock(two), SEED)
    grant(first, key="k", amount=7)
    assert second.user_balance("alice") == 5_000_000
    with redis_server.client() as client:
        client.set("someone-else:key", "untouched")
        second.reset()
        assert client.get("someone-else:key") == "untouched"
        assert all(k.startswith(("one:", "two:", "someone-else:")) for k in client.keys("*"))
    assert first.user_balance("alice") == 5_000_007
    assert one.idempotency_key_count() == 1 and two.idempotency_key_count() == 0


def test_the_first_load_keeps_an_initialised_namespace(make_store):
    service = FundingService(make_store(), RedisClock(make_store()), SEED)
    grant(service, amount=5)
    attached = make_store(keep_existing_state=True)
    FundingService(attached, RedisClock(attached), SEED)  # what a restarted mock does
    assert attached.loaded_seed is False
    assert attached.user_balance("alice") == 5_000_005
    fresh = make_store(prefix="fresh:", keep_existing_state=True)
    FundingService(fresh, RedisClock(fresh), SEED)
    assert fresh.loaded_seed is True and fresh.user_balance("alice") == 5_000_000


def test_idempotency_records_carry_a_redis_ttl(redis_server, make_store, prefix):
    store = make_store(idempotency_ttl=3600, in_flight_lease=30)
    service = FundingService(store, RedisClock(store), SEED)
    assert store.claim_idempotency_key("s", "k", b"fp", time.time()) is None
    with redis_server.client() as client:
        record = prefix + "idem:1:s:k"
        # In flight: only the lease, so a dead worker's claim frees itself.
        assert 0 < client.pttl(record) <= 30_000
        store.apply_grant("alice", 1, None, service.clock.now(), ("s", "k"))
        # Completed: the rest of the key's lifetime.
        assert 3_500_000 < client.pttl(record) <= 3_600_000


def test_an_expired_lease_frees_an_in_flight_key(make_store):
    store = make_store(in_flight_lease=0.05)
    FundingService(store, RedisClock(store), SEED)
    store.claim_idempotency_key("s", "k", b"fp", time.time())
    with pytest.raises(QuotaError) as caught:
        store.claim_idempotency_key("s", "k", b"fp", time.time())
    assert caught.value.code == IDEMPOTENCY_KEY_IN_FLIGHT
    time.sleep(0.1)
    assert store.claim_idempotency_key("s", "k", b"fp", time.time()) is None


def test_records_vanish_through_redis_ttl_and_the_count_follows(make_store):
    store = make_store(idempotency_ttl=0.2)
    service = FundingService(store, RedisClock(store), SEED)
    for key in ("a", "b", "c"):
        grant(service, key=key)
    assert store.idempotency_key_count() == 3
    time.sleep(0.3)
    assert store.idempotency_keys(service.clock.now()) == []
    assert store.idempotency_key_count() == 0


def test_the_key_table_is_bounded_refusing_new_keys_while_full(make_store):
    store = make_store(max_idempotency_keys=3, idempotency_ttl=100)
    service = FundingService(store, RedisClock(store), SEED)
    now = service.clock.now()
    store.claim_idempotency_key("s", "in-flight", b"fp", now)
    for key in ("a", "b"):
        grant(service, key=key)
    with pytest.raises(IdempotencyStoreFull) as caught:  # no live key is dropped, in flight or not
        store.claim_idempotency_key("s", "c", b"fp", now)
    assert 98 <= int(caught.value.headers["Retry-After"]) <= 100
    assert [v.key for v in store.idempotency_keys(now)] == ["in-flight", "a", "b"]
    store.release_idempotency_key("s", "in-flight")
    assert store.claim_idempotency_key("s", "c", b"fp", now) is None


def test_amounts_stay_exact_integers_below_two_to_the_53(make_store):
    store = make_store()
    service = FundingService(store, RedisClock(store), SEED)
    service.set_balance(None, MAX_SAFE_MICRODOLLARS)
    service.set_balance("alice", MAX_SAFE_MICRODOLLARS - 10)
    assert grant(service, amount=10).balance_after == MAX_SAFE_MICRODOLLARS
    with pytest.raises(QuotaError) as caught:
        grant(service, amount=1)
    assert caught.value.code == BAD_REQUEST
    with pytest.raises(QuotaError):
        service.set_balance("bob", MAX_SAFE_MICRODOLLARS + 1)
    assert store.user_balance("alice") == MAX_SAFE_MICRODOLLARS
    assert store.user_balance("bob") is None
    assert service.conservation().holds


def test_odd_user_ids_and_descriptions_round_trip(make_store):
    store = make_store()
    service = FundingService(store, RedisClock(store), SEED)
    odd = 'ü/../a%2Fb "quoted",\\ \x01 [] 😀'
    result = service.grant(
        scope=odd, idempotency_key=odd, fingerprint=b"\x00\xff", user_id=odd, amount=3, description=odd
    )
    entry = store.ledger()[-1]
    assert (entry.user_id, entry.description, entry.id) == (odd, odd, result.ledger_id)
    assert store.users()[odd] == 3
    assert store.idempotency_keys(service.clock.now())[0].key == odd


def test_the_clock_offset_is_shared_by_every_clock_on_the_namespace(make_store):
    one, two = RedisClock(make_store()), RedisClock(make_store())
    one.advance(86_400)
    assert 86_399 < two.now() - time.time() <= 86_401
    assert two.offset == pytest.approx(86_400)
    two.reset()
    assert one.offset == 0


def test_a_reset_returns_the_shared_clock_in_the_same_step_as_the_seed(make_store, monkeypatch):
    """One script loads the seed and clears the clock's offset: no separate write can reach
    Redis without the other (a clock at real time over the old balances, or the reverse)."""
    store = make_store()
    service = FundingService(store, RedisClock(store), SEED)
    other = RedisClock(make_store())  # another worker's clock on the namespace
    service.clock.advance(86_400)
    monkeypatch.setattr(RedisClock, "reset", lambda self: pytest.fail("the clock was reset apart from the load"))
    service.reset()
    assert other.offset == 0 and service.clock.offset == 0
    assert store.ledger()[0].at == pytest.approx(time.time(), abs=5)  # the deposits, at real time


def test_a_load_redis_refuses_leaves_the_shared_clock_where_it_was(make_store, monkeypatch):
    store = make_store()
    service = FundingService(store, RedisClock(store), SEED)
    service.clock.advance(86_400)
    monkeypatch.setattr(store, "_run", lambda name, args: (_ for _ in ()).throw(StoreUnavailable()))
    with pytest.raises(QuotaError):
        service.reset()
    monkeypatch.undo()
    assert RedisClock(make_store()).offset == pytest.approx(86_400)


def test_a_release_lost_in_an_outage_is_sent_when_redis_answers_again(make_store):
    store = make_store()
    FundingService(store, RedisClock(store), SEED)
    store.claim_idempotency_key("s", "k", b"fp", time.time())
    store.claim_idempotency_key("s", "other", b"fp", time.time())
    # As if both releases had met a dead Redis; the second names a claim that is not ours.
    store._pending_releases.add(("s", "k", store._owners.pop(("s", "k"))))
    store._pending_releases.add(("s", "other", "not-the-owner"))
    assert store.claim_idempotency_key("s", "k", b"fp", time.time()) is None
    with pytest.raises(QuotaError) as caught:
        store.claim_idempotency_key("s", "other", b"fp", time.time())
    assert caught.value.code == IDEMPOTENCY_KEY_IN_FLIGHT
    assert not store._pending_releases


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("memcached://x", "unknown kind"),
        ("redis://", "names no host"),
        ("redis://h:6379/zero", "database must be a number"),
        ("redis://h:70000/0", "cannot parse"),
    ],
)
def test_store_urls_are_checked_with_clear_messages(store, message):
    with pytest.raises(ConfigError, match=message):
        MockConfig.from_mapping({"store": store})


def test_a_valid_store_url_is_accepted():
    assert MockConfig.from_mapping({"store": "redis://127.0.0.1:6379/0"}).uses_redis
    assert not MockConfig.from_mapping({}).uses_redis


def test_scripts_lost_by_a_redis_restart_are_sent_again(redis_server, make_store):
    store = make_store()
    service = FundingService(store, RedisClock(store), SEED)
    grant(service, key="before")
    with redis_server.client() as client:
        client.script_flush()  # what a restarted Redis has: no scripts
    assert grant(service, key="after").duplicate is False
    with redis_server.client() as client:
        client.script_flush()
    assert store.slices(service.clock, 10).key_count == 2


def test_usage_totals_stay_exact_past_two_to_the_53(make_store):
    store = make_store()
    service = FundingService(store, RedisClock(store), SEED)
    for _ in range(3):
        service.set_balance(None, MAX_SAFE_MICRODOLLARS)
        service.set_balance("alice", 0)
        grant(service, amount=MAX_SAFE_MICRODOLLARS)
    assert service.usage().grant_total == 3 * MAX_SAFE_MICRODOLLARS
