import threading

import pytest

from mockserver.domain.completions import Message
from mockserver.domain.errors import INSUFFICIENT_BALANCE, USER_NOT_FOUND, QuotaError
from mockserver.domain.records import CHARGE, GRANT

from ..raw_balances import add_to_raw_balance
from .seeds import SEED


def grant(service, user="alice", amount=500_000, key=None, fingerprint=b"fp", scope="s"):
    return service.grant(
        scope=scope, idempotency_key=key, fingerprint=fingerprint, user_id=user, amount=amount, description=None
    )


def test_grant_moves_money_from_pool_to_user_exactly(service):
    result = grant(service, amount=500_000)
    assert (result.balance_before, result.balance_after) == (5_000_000, 5_500_000)
    assert service.developer_balance() == SEED.pool - 500_000
    assert service.conservation().holds


def test_first_grant_creates_the_user(service):
    with pytest.raises(QuotaError):
        service.user_balance("newcomer")
    result = grant(service, user="newcomer", amount=10_000)
    assert result.balance_before == 0
    assert service.user_balance("newcomer") == 10_000


def test_pool_too_low_refuses_and_changes_nothing(service):
    before = service.store.ledger()
    with pytest.raises(QuotaError) as caught:
        grant(service, amount=SEED.pool + 1)
    assert caught.value.code == INSUFFICIENT_BALANCE
    assert service.store.ledger() == before
    assert service.user_balance("alice") == 5_000_000


def test_replay_returns_the_original_and_credits_nothing(service):
    first = grant(service, key="k1")
    again = grant(service, key="k1")
    assert again.duplicate and not first.duplicate
    assert (again.ledger_id, again.balance_after) == (first.ledger_id, first.balance_after)
    assert service.user_balance("alice") == 5_500_000
    assert sum(1 for e in service.store.ledger() if e.kind == GRANT) == 1


def test_a_failed_grant_frees_its_idempotency_key(service):
    with pytest.raises(QuotaError):
        grant(service, amount=SEED.pool + 1, key="k")
    service.set_balance(None, SEED.pool * 2)
    assert not grant(service, amount=SEED.pool + 1, key="k").duplicate


def test_concurrent_grants_with_one_key_credit_exactly_once(service):
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(grant(service, key="same"))
        except QuotaError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=attempt) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert service.user_balance("alice") == 5_500_000
    results = [o for o in outcomes if not isinstance(o, str)]
    assert len({r.ledger_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert service.conservation().holds


def test_idempotency_keys_expire_with_the_clock(service, clock):
    first = grant(service, key="k")
    clock.advance(24 * 3600 + 1)
    second = grant(service, key="k")
    assert second.ledger_id != first.ledger_id and not second.duplicate


def test_chat_charges_the_price_table_with_markup(service):
    outcome = service.chat("alice", "m", [Message("user", "hello world")], max_tokens=None)
    completion = outcome.completion
    base = completion.prompt_tokens * 1_000_000 + completion.completion_tokens * 2_000_000
    expected = -(-base * 110 // 100_000_000)
    assert outcome.charge.amount == expected
    assert service.user_balance("alice") == 5_000_000 - expected
    assert service.conservation().holds


def test_chat_never_takes_a_balance_below_zero(service):
    with pytest.raises(QuotaError) as caught:
        service.chat("broke", "m", [Message("user", "hi")], max_tokens=None)
    assert caught.value.code == INSUFFICIENT_BALANCE
    assert service.user_balance("broke") == 0
    assert not [e for e in service.store.ledger() if e.kind == CHARGE]


def test_chat_for_an_unknown_user_is_not_found(service):
    with pytest.raises(QuotaError) as caught:
        service.chat("ghost", "m", [Message("user", "hi")], max_tokens=None)
    assert caught.value.code == USER_NOT_FOUND


def test_draining_a_user_concurrently_never_goes_negative(service):
    service.set_balance("alice", 200)
    errors: list[str] = []

    def spend() -> None:
        try:
            service.chat("alice", "m", [Message("user", "x" * 40)], max_tokens=4)
        except QuotaError as error:
            errors.append(error.code)

    threads = [threading.Thread(target=spend) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert service.user_balance("alice") >= 0
    charges = [e for e in service.store.ledger() if e.kind == CHARGE]
    assert sum(c.amount for c in charges) == 200 - service.user_balance("alice")
    assert errors and set(errors) == {INSUFFICIENT_BALANCE}
    assert service.conservation().holds


def test_usage_covers_the_last_thirty_days_only(service, clock):
    service.chat("alice", "m", [Message("user", "old")], max_tokens=None)
    grant(service)
    clock.advance(31 * 24 * 3600)
    outcome = service.chat("alice", "m", [Message("user", "new")], max_tokens=None)
    usage = service.usage()
    assert usage.requests == 1 and usage.grant_count == 0
    assert usage.spend == outcome.charge.amount
    assert list(usage.by_model) == ["m"]


def test_usage_window_survives_a_clock_moved_back(service, clock):
    clock.advance(3600)
    service.chat("alice", "m", [Message("user", "later")], max_tokens=None)
    clock.advance(-7200)
    service.chat("alice", "m", [Message("user", "earlier")], max_tokens=None)
    clock.advance(7200)
    assert service.usage().requests == 2


def test_conservation_detects_a_balance_changed_behind_the_ledgers_back(service):
    add_to_raw_balance(service.store, "alice", 1)  # simulate a bug: money from nowhere
    assert not service.conservation().holds


def test_api_keys_are_checked_exactly(service):
    assert service.is_api_key("sk-quota-test")
    assert not service.is_api_key("sk-quota-tesT")
    assert not service.is_api_key("")


def test_ledger_tail_is_the_newest_entries_oldest_first(service):
    for amount in (1, 2, 3):
        grant(service, amount=amount)
    tail = service.store.ledger_tail(2)
    assert [e.amount for e in tail] == [2, 3]
    assert tail == service.store.ledger()[-2:]
    assert service.store.ledger_tail(0) == []
    assert len(service.store.ledger_tail(1000)) == service.store.ledger_size()
