"""Every listing is paged with a cursor and a bounded page size, on both stores: following the
cursors visits every item once, in the listing's order, however the pages are cut."""

from __future__ import annotations

import pytest

from mockserver.domain.records import MAX_PAGE_SIZE, GrantRequest
from mockserver.domain.usage import USAGE_WINDOW_SECONDS, Overview

from .seeds import SEED


def walk(fetch, limit):
    """Every item, following next_cursor from the first page; no page over ``limit``."""
    items, cursor, pages = [], None, 0
    while True:
        page = fetch(cursor, limit)
        assert len(page.items) <= min(limit, MAX_PAGE_SIZE)
        items += page.items
        pages += 1
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor


def grant(service, user, amount=1, key=None):
    request = GrantRequest("scope", key, (key or "").encode(), user, amount, None)
    return service.store.grant(request, service.clock)


@pytest.mark.parametrize("limit", [1, 3, 7, 1000])
def test_ledger_pages_go_newest_first_through_every_entry(service, limit):
    for i in range(10):
        grant(service, f"u{i % 3}", amount=i + 1)
    entries, pages = walk(service.store.ledger_page, limit)
    assert entries == service.store.ledger()[::-1]
    assert pages == max(1, -(-len(entries) // limit))


@pytest.mark.parametrize("limit", [1, 2, 5, 1000])
def test_user_pages_list_users_in_the_order_they_appeared(service, limit):
    for user in ("zed", "alice", "amy"):
        grant(service, user)
    service.set_balance("bea", 7)
    users, _ = walk(service.store.users_page, limit)
    assert [name for name, _ in users] == [*SEED.users, "zed", "amy", "bea"]
    assert dict(users) == service.store.users()
    assert service.store.user_count() == len(users)


@pytest.mark.parametrize("limit", [1, 4, 1000])
def test_idempotency_key_pages_list_live_keys_in_first_use_order(service, limit):
    for i in range(9):
        grant(service, "alice", key=f"k{i}")
    now = service.clock.now()
    views, _ = walk(lambda cursor, size: service.store.idempotency_key_page(now, cursor, size), limit)
    assert [v.key for v in views] == [f"k{i}" for i in range(9)]
    assert [v.key for v in views] == [v.key for v in service.store.idempotency_keys(now)]
    assert all(v.state == "completed" and v.ledger_id for v in views)


def test_pages_are_bounded_whatever_is_asked(service):
    for i in range(3):
        grant(service, f"u{i}", key=f"k{i}")
    assert len(service.store.ledger_page(None, 10**9).items) == service.store.ledger_size()
    assert len(service.store.ledger_page(None, 0).items) == 1
    assert len(service.store.users_page(None, -5).items) == 1
    assert service.store.ledger_page(None, 1).next_cursor is not None


def test_a_grant_through_the_store_replays_with_duplicate_set(service):
    first = grant(service, "alice", amount=5, key="once")
    again = grant(service, "alice", amount=5, key="once")
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.ledger_id == first.ledger_id and again.balance_after == first.balance_after
    assert service.user_balance("alice") == SEED.users["alice"] + 5


def test_slices_are_the_first_pages_and_counts_read_together(service):
    for i in range(5):
        grant(service, f"new{i}", key=f"k{i}")
    slices = service.store.slices(service.clock, 3)
    assert slices.users == service.store.users_page(None, 3)
    assert slices.user_count == len(service.store.users())
    assert slices.ledger == service.store.ledger_page(None, 3)
    assert slices.ledger_size == service.store.ledger_size()
    assert slices.keys == service.store.idempotency_key_page(slices.now, None, 3)
    assert slices.key_count == 5
    since = slices.now - USAGE_WINDOW_SECONDS
    assert slices.overview == Overview(service.store.pool_balance(), service.store.usage(since, slices.now))
