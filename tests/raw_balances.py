"""Writing a stored balance behind the ledger's back, on either store: how tests simulate a
bug (money from nowhere, a balance below zero) that the conservation check or a conformance
check must catch.

Production code offers no such write on purpose; this is the one place in the kit that
knows where each store keeps its balances.
"""

from __future__ import annotations

import redis

from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.redis_store import RedisStore
from mockserver.domain.store import StateStore


def write_raw_balance(store: StateStore, user_id: str, balance: int) -> None:
    """Set ``user_id``'s stored balance to ``balance`` without a ledger entry."""
    if isinstance(store, MemoryStore):
        store._balances[user_id] = balance
    elif isinstance(store, RedisStore):
        # The hash named in redis_scripts' key layout, written through a connection of our own.
        with redis.Redis.from_url(store.url) as client:
            client.hset(store.prefix + "users", user_id, str(balance))
    else:
        raise TypeError(f"no raw balance access for {type(store).__name__}")


def add_to_raw_balance(store: StateStore, user_id: str, delta: int) -> None:
    """Add ``delta`` to ``user_id``'s stored balance without a ledger entry."""
    write_raw_balance(store, user_id, (store.user_balance(user_id) or 0) + delta)
