"""Hypothesis state machine: any sequence of grants, replays, charges and clock moves keeps
money conserved, never makes a balance negative, and never credits a key twice."""

import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mockserver.domain.clock import Clock
from mockserver.domain.completions import Message
from mockserver.domain.errors import QuotaError
from mockserver.domain.memory_store import MemoryStore
from mockserver.domain.records import GRANT
from mockserver.domain.service import FundingService

from .seeds import SEED

users = st.sampled_from(["alice", "bob", "broke", "carol"])
keys = st.sampled_from(["k1", "k2", "k3", None])
amounts = st.integers(min_value=1, max_value=40_000_000)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.service = FundingService(MemoryStore(idempotency_ttl=3600), self.clock, SEED, sleep=lambda s: None)
        self.credited_keys: dict[str, str] = {}

    @rule(user=users, amount=amounts, key=keys)
    def grant(self, user: str, amount: int, key: str | None) -> None:
        fingerprint = f"{user}:{amount}".encode()
        try:
            result = self.service.grant(
                scope="s", idempotency_key=key, fingerprint=fingerprint, user_id=user, amount=amount, description=None
            )
        except QuotaError:
            return
        if key is not None:
            if result.duplicate:
                assert self.credited_keys[key] == result.ledger_id
            else:
                self.credited_keys[key] = result.ledger_id

    @rule(user=users, words=st.integers(min_value=1, max_value=400))
    def chat(self, user: str, words: int) -> None:
        with contextlib.suppress(QuotaError):
            self.service.chat(user, "m", [Message("user", "word " * words)], max_tokens=None)

    @rule(seconds=st.sampled_from([60, 1800, 3600]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        # Keys older than the TTL are forgotten, so a new request may credit them again.
        live = {v.key for v in self.service.store.idempotency_keys(self.clock.now())}
        self.credited_keys = {k: v for k, v in self.credited_keys.items() if k in live}

    @invariant()
    def money_is_conserved(self) -> None:
        assert self.service.conservation().holds

    @invariant()
    def no_balance_is_negative(self) -> None:
        assert self.service.developer_balance() >= 0
        assert all(balance >= 0 for balance in self.service.store.users().values())

    @invariant()
    def each_credited_key_has_exactly_one_grant(self) -> None:
        grant_ids = [e.id for e in self.service.store.ledger() if e.kind == GRANT]
        for ledger_id in self.credited_keys.values():
            assert grant_ids.count(ledger_id) == 1


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
