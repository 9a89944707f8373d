"""Store failures are defined once (mockserver/domain/errors.py) and both stores raise the
same named types, the Redis store included: its scripts name a failure by the type's tag."""

from __future__ import annotations

import re
import time

import pytest

from mockserver.domain import redis_scripts
from mockserver.domain.errors import (
    SCRIPT_ERRORS,
    DeveloperBalanceTooLow,
    GrantPoolTooLow,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotencyStoreFull,
    StoreError,
    UserBalanceTooLow,
    UserNotFound,
    store_error,
)
from mockserver.domain.service import FundingService

from .seeds import SEED


def _fails_with(action) -> StoreError:
    with pytest.raises(StoreError) as caught:
        action()
    return caught.value


def test_each_store_failure_is_the_same_type_on_every_store(store_factory):
    store = store_factory()
    store.load(SEED, time.time())
    now = time.time()
    cases = {
        GrantPoolTooLow: lambda: store.apply_grant("alice", SEED.pool + 1, None, now, None),
        UserNotFound: lambda: store.apply_charge("nobody", 1, "m", 1, 1, now),
        UserBalanceTooLow: lambda: store.apply_charge("broke", 1, "m", 1, 1, now),
        DeveloperBalanceTooLow: lambda: store.apply_charge(None, SEED.pool + 1, "m", 1, 1, now),
    }
    for expected, action in cases.items():
        error = _fails_with(action)
        assert type(error) is expected
        assert (error.code, error.message) == (expected.code, expected.message)
    assert store.claim_idempotency_key("s", "k", b"fp", now) is None
    assert type(_fails_with(lambda: store.claim_idempotency_key("s", "k", b"fp", now))) is IdempotencyKeyInFlight
    store.apply_grant("alice", 1, None, now, ("s", "k"))
    assert type(_fails_with(lambda: store.claim_idempotency_key("s", "k", b"other", now))) is IdempotencyKeyReused


def test_every_tag_a_script_returns_names_an_error_type():
    tags = {error.reply for error in SCRIPT_ERRORS}
    assert len(tags) == len(SCRIPT_ERRORS)
    used = set()
    for name in dir(redis_scripts):
        text = getattr(redis_scripts, name)
        if isinstance(text, str) and "redis.call" in text:
            used |= set(re.findall(r"\bERR\.(\w+)", text))
            # No failure spelled out by hand: every refusal goes through ERR.
            assert "error_reply" not in text
    assert used and used <= tags
    for error in SCRIPT_ERRORS:
        assert type(store_error([error.reply, 1])) is error


def test_a_full_key_store_refuses_a_new_key_and_replays_the_old_ones(store_factory, clock):
    service = FundingService(store_factory(max_idempotency_keys=2), clock, SEED)
    results = []
    for key in ("k1", "k1", "k2", "k3", "k1"):
        try:
            results.append(
                service.grant(scope="s", idempotency_key=key, fingerprint=b"", user_id="u", amount=1, description=None)
            )
        except IdempotencyStoreFull as full:
            results.append(full)
    first, replay, second, refused, last = results
    assert isinstance(refused, IdempotencyStoreFull)
    assert (replay.duplicate, last.duplicate, second.duplicate) == (True, True, False)
    assert replay.ledger_id == last.ledger_id == first.ledger_id
    assert service.user_balance("u") == 2
