"""The domain's Hypothesis state machine (grants, replays, charges, clock moves) run against
the Redis store: money conserved, no balance negative, no key credited twice."""

from __future__ import annotations

import uuid

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine

from mockserver.domain.redis_clock import RedisClock
from mockserver.domain.redis_store import RedisStore
from mockserver.domain.service import FundingService

from ..private_redis import shared_redis
from ..unit.seeds import SEED
from ..unit.test_invariants import LedgerMachine


class RedisLedgerMachine(LedgerMachine):
    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        # A namespace per example: examples never see each other's state.
        self.store = RedisStore(shared_redis().url, prefix=f"machine-{uuid.uuid4().hex[:8]}:", idempotency_ttl=3600)
        self.clock = RedisClock(self.store)
        self.service = FundingService(self.store, self.clock, SEED, sleep=lambda s: None)
        self.credited_keys: dict[str, str] = {}

    def teardown(self) -> None:
        self.store.close()


TestRedisLedgerMachine = RedisLedgerMachine.TestCase
TestRedisLedgerMachine.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
