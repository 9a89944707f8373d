"""The default state store: plain Python objects behind one lock, for one process."""

from __future__ import annotations

import threading

from .accounts import Seed
from .errors import DeveloperBalanceTooLow, GrantPoolTooLow, UserBalanceTooLow, UserNotFound
from .idempotency import DEFAULT_MAX_KEYS, DEFAULT_TTL_SECONDS, IdempotencyTable
from .ledger import check_conservation
from .ledger_columns import LedgerColumns
from .records import (
    ADJUSTMENT,
    CHARGE,
    DEPOSIT,
    GRANT,
    ChargeResult,
    Conservation,
    GrantResult,
    IdempotencyView,
    LedgerEntry,
)


class MemoryStore:
    """Every public method holds the lock for its whole step, which makes each atomic."""

    def __init__(
        self, idempotency_ttl: float = DEFAULT_TTL_SECONDS, max_idempotency_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        self._lock = threading.RLock()
        self._pool = 0
        self._balances: dict[str, int] = {}
        self._ledger = LedgerColumns()
        self._idempotency = IdempotencyTable(idempotency_ttl, max_idempotency_keys)

    def load(self, seed: Seed, now: float) -> None:
        with self._lock:
            self._pool = 0
            self._balances = {}
            self._ledger = LedgerColumns()
            self._idempotency.clear()
            self._deposit(None, seed.pool, now, "seed: grant pool")
            for user_id, balance in seed.users.items():
                self._balances[user_id] = 0
                self._deposit(user_id, balance, now, "seed: user balance")

    def pool_balance(self) -> int:
        return self._pool

    def user_balance(self, user_id: str) -> int | None:
        return self._balances.get(user_id)

    def users(self) -> dict[str, int]:
        with self._lock:
            return dict(self._balances)

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: bytes, now: float) -> GrantResult | None:
        with self._lock:
            index = self._idempotency.claim(scope, key, fingerprint, now)
            return None if index is None else self._grant_result(index)

    def release_idempotency_key(self, scope: str, key: str) -> None:
        with self._lock:
            self._idempotency.release(scope, key)

    def apply_grant(
        self,
        user_id: str,
        amount: int,
        description: str | None,
        now: float,
        completes: tuple[str, str] | None,
    ) -> GrantResult:
        with self._lock:
            if amount > self._pool:
                raise GrantPoolTooLow()
            before = self._balances.get(user_id, 0)
            after = before + amount
            index = self._ledger.append(GRANT, amount, user_id, now, after, description)
            self._pool -= amount
            self._balances[user_id] = after
            if completes is not None:
                # The key stores the grant's ledger position; a replay reads the entry back.
                self._idempotency.complete(completes[0], completes[1], index)
            return GrantResult(user_id, amount, before, after, self._ledger.entry_id(index))

    def apply_charge(
        self,
        user_id: str | None,
        amount: int,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        now: float,
    ) -> ChargeResult:
        with self._lock:
            if user_id is None:
                before = self._pool
            elif user_id in self._balances:
                before = self._balances[user_id]
            else:
                raise UserNotFound()
            if amount > before:
                raise DeveloperBalanceTooLow() if user_id is None else UserBalanceTooLow()
            after = before - amount
            index = self._ledger.append(
                CHARGE,
                amount,
                user_id,
                now,
                after,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
            if user_id is None:
                self._pool = after
            else:
                self._balances[user_id] = after
            return ChargeResult(self._ledger.entry_id(index), amount, before, after)

    def set_balance(self, user_id: str | None, amount: int, now: float, description: str) -> LedgerEntry:
        with self._lock:
            current = self._pool if user_id is None else self._balances.get(user_id, 0)
            return self._record_external(ADJUSTMENT, user_id, amount - current, now, description)

    def ledger(self, since: float | None = None) -> list[LedgerEntry]:
        with self._lock:
            return self._ledger.entries(since)

    def ledger_tail(self, limit: int) -> list[LedgerEntry]:
        with self._lock:
            return self._ledger.tail(limit)

    def ledger_size(self) -> int:
        return len(self._ledger)

    def idempotency_keys(self, now: float) -> list[IdempotencyView]:
        with self._lock:
            rows, _ = self._idempotency.rows(now)
            return [
                IdempotencyView(
                    scope=row.scope,
                    key=row.key,
                    state="in_flight" if row.result is None else "completed",
                    expires_at=row.expires_at,
                    ledger_id=None if row.result is None else self._ledger.entry_id(row.result),
                )
                for row in rows
            ]

    def idempotency_key_count(self) -> int:
        return len(self._idempotency)

    def conservation(self) -> Conservation:
        with self._lock:
            return check_conservation(self._ledger.entries(), self._pool, self._balances)

    def _grant_result(self, index: int) -> GrantResult:
        entry = self._ledger[index]
        assert entry.user_id is not None  # a grant always names its user
        return GrantResult(entry.user_id, entry.amount, entry.balance_before, entry.balance_after, entry.id)

    def _deposit(self, user_id: str | None, amount: int, now: float, description: str) -> None:
        self._record_external(DEPOSIT, user_id, amount, now, description)

    def _record_external(self, kind: str, user_id: str | None, delta: int, now: float, description: str) -> LedgerEntry:
        before = self._pool if user_id is None else self._balances.get(user_id, 0)
        index = self._ledger.append(kind, delta, user_id, now, before + delta, description)
        if user_id is None:
            self._pool += delta
        else:
            self._balances[user_id] = before + delta
        return self._ledger[index]
