"""Domain fixtures. ``store_factory`` is parametrized over every state-store backend, so the
store and service tests run unchanged against each of them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mockserver.domain.clock import Clock
from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.service import FundingService
from mockserver.domain.store import StateStore

from .seeds import SEED


@pytest.fixture(params=["memory"])
def store_factory(request: pytest.FixtureRequest) -> Callable[..., StateStore]:
    def make(**options: float) -> StateStore:
        return MemoryStore(**options)

    return make


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store_factory: Callable[..., StateStore], clock: Clock) -> FundingService:
    return FundingService(store_factory(), clock, SEED, sleep=lambda seconds: None)
