"""Domain fixtures. ``store_factory`` is parametrized over every state-store backend, so the
store and service tests run unchanged against each of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mockserver.domain.clock import Clock
from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.service import FundingService
from mockserver.domain.store import StateStore

from ..private_redis import shared_redis
from .seeds import SEED


@pytest.fixture(params=["memory", "redis"])
def store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., StateStore]]:
    if request.param == "memory":
        yield lambda **options: MemoryStore(**options)
        return

    from mockserver.domain.redis_store import RedisStore

    server = shared_redis()  # skips (fails in CI) when redis-server is not installed
    server.flush()
    stores: list[RedisStore] = []

    def make(**options: float) -> StateStore:
        store = RedisStore(server.url, **options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store_factory: Callable[..., StateStore], clock: Clock) -> FundingService:
    return FundingService(store_factory(), clock, SEED, sleep=lambda seconds: None)
