"""The default state store: plain Python objects behind one lock, for one process."""

from __future__ import annotations

import threading
from dataclasses import replace

from .accounts import Seed
from .clock import Clock
from .errors import (
    MAX_SAFE_MICRODOLLARS,
    AmountOutOfRange,
    DeveloperBalanceTooLow,
    GrantPoolTooLow,
    UserBalanceTooLow,
    UserNotFound,
)
from .idempotency import DEFAULT_MAX_KEYS, DEFAULT_TTL_SECONDS, IdempotencyTable, KeyRow
from .ledger import check_conservation
from .ledger_columns import LedgerColumns
from .records import (
    ADJUSTMENT,
    CHARGE,
    DEPOSIT,
    GRANT,
    ChargeResult,
    Conservation,
    GrantRequest,
    GrantResult,
    IdempotencyView,
    LedgerEntry,
    Page,
    page_size,
)
from .store import Slices
from .usage import USAGE_WINDOW_SECONDS, Overview, UsageSummary
from .usage_index import UsageIndex


class MemoryStore:
    """Every public method holds the lock for its whole step, which makes each atomic."""

    def __init__(
        self, idempotency_ttl: float = DEFAULT_TTL_SECONDS, max_idempotency_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        self._lock = threading.RLock()
        self._idempotency = IdempotencyTable(idempotency_ttl, max_idempotency_keys)
        self._reset()

    def _reset(self) -> None:
        self._pool = 0
        self._balances: dict[str, int] = {}
        self._user_order: list[str] = []  # users in the order they appeared: the listing's order
        self._ledger = LedgerColumns()
        self._usage = UsageIndex()
        self._idempotency.clear()

    def load(self, seed: Seed, now: float) -> None:
        with self._lock:
            self._reset()
            self._deposit(None, seed.pool, now, "seed: grant pool")
            for user_id, balance in seed.users.items():
                self._deposit(user_id, balance, now, "seed: user balance")

    # -- balances ----------------------------------------------------------------------

    def pool_balance(self) -> int:
        return self._pool

    def user_balance(self, user_id: str) -> int | None:
        return self._balances.get(user_id)

    def users(self) -> dict[str, int]:
        with self._lock:
            return dict(self._balances)

    def user_count(self) -> int:
        return len(self._user_order)

    def users_page(self, cursor: int | None, limit: int) -> Page[tuple[str, int]]:
        with self._lock:
            start, end = cursor or 0, (cursor or 0) + page_size(limit)
            names = self._user_order[start:end]
            return Page([(name, self._balances[name]) for name in names], end if end < len(self._user_order) else None)

    # -- grants --------------------------------------------------------------------------

    def grant(self, request: GrantRequest, clock: Clock) -> GrantResult:
        # The claim and the grant are each atomic; between them the key is in flight, which
        # refuses any second request with it. (Through the public steps, so that a test
        # wrapping one of them sees it run.)
        now = clock.now()
        key = request.idempotency_key
        if key is None:
            return self.apply_grant(request.user_id, request.amount, request.description, now, None)
        replayed = self.claim_idempotency_key(request.scope, key, request.fingerprint, now)
        if replayed is not None:
            return replace(replayed, duplicate=True)
        try:
            completes = (request.scope, key)
            return self.apply_grant(request.user_id, request.amount, request.description, now, completes)
        except BaseException:
            self.release_idempotency_key(request.scope, key)
            raise

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
            if after > MAX_SAFE_MICRODOLLARS:  # as the Redis store: past it JSON clients lose cents
                raise AmountOutOfRange()
            if user_id not in self._balances:
                self._user_order.append(user_id)
            index = self._ledger.append(GRANT, amount, user_id, now, after, description)
            self._pool -= amount
            self._balances[user_id] = after
            self._usage.add_grant(now, amount)
            if completes is not None:
                # The key stores the grant's ledger position; a replay reads the entry back.
                self._idempotency.complete(completes[0], completes[1], index)
            return GrantResult(user_id, amount, before, after, self._ledger.entry_id(index))

    # -- charges and adjustments ---------------------------------------------------------

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
            self._usage.add_charge(now, model, prompt_tokens, completion_tokens, amount)
            return ChargeResult(self._ledger.entry_id(index), amount, before, after)

    def set_balance(self, user_id: str | None, amount: int, now: float, description: str) -> LedgerEntry:
        with self._lock:
            current = self._pool if user_id is None else self._balances.get(user_id, 0)
            return self._record_external(ADJUSTMENT, user_id, amount - current, now, description)

    # -- usage ------------------------------------------------------------------------------

    def usage(self, since: float, until: float) -> UsageSummary:
        with self._lock:
            return self._usage.summary(since, until)

    def overview(self, clock: Clock) -> Overview:
        with self._lock:
            until = clock.now()
            return Overview(self._pool, self._usage.summary(until - USAGE_WINDOW_SECONDS, until))

    # -- the ledger ---------------------------------------------------------------------

    def ledger(self, since: float | None = None) -> list[LedgerEntry]:
        with self._lock:
            return self._ledger.entries(since)

    def ledger_tail(self, limit: int) -> list[LedgerEntry]:
        with self._lock:
            return self._ledger.tail(limit)

    def ledger_page(self, cursor: int | None, limit: int) -> Page[LedgerEntry]:
        with self._lock:
            size = len(self._ledger)
            start = size - 1 if cursor is None else min(cursor, size - 1)
            end = max(start - page_size(limit), -1)
            return Page([self._ledger[i] for i in range(start, end, -1)], end if end >= 0 else None)

    def ledger_size(self) -> int:
        return len(self._ledger)

    # -- idempotency keys -------------------------------------------------------------------

    def idempotency_keys(self, now: float) -> list[IdempotencyView]:
        with self._lock:
            return [self._view(row) for row in self._idempotency.rows(now)[0]]

    def idempotency_key_page(self, now: float, cursor: int | None, limit: int) -> Page[IdempotencyView]:
        with self._lock:
            rows, next_cursor = self._idempotency.rows(now, cursor, page_size(limit))
            return Page([self._view(row) for row in rows], next_cursor)

    def idempotency_key_count(self) -> int:
        return len(self._idempotency)

    def slices(self, clock: Clock, rows: int) -> Slices:
        with self._lock:
            now = clock.now()
            return Slices(
                now=now,
                overview=Overview(self._pool, self._usage.summary(now - USAGE_WINDOW_SECONDS, now)),
                users=self.users_page(None, rows),
                user_count=len(self._user_order),
                ledger=self.ledger_page(None, rows),
                ledger_size=len(self._ledger),
                keys=self.idempotency_key_page(now, None, rows),
                key_count=len(self._idempotency),
            )

    def conservation(self) -> Conservation:
        with self._lock:
            return check_conservation(self._ledger.entries(), self._pool, self._balances)

    # -- internals ---------------------------------------------------------------------

    def _view(self, row: KeyRow) -> IdempotencyView:
        return IdempotencyView(
            scope=row.scope,
            key=row.key,
            state="in_flight" if row.result is None else "completed",
            expires_at=row.expires_at,
            ledger_id=None if row.result is None else self._ledger.entry_id(row.result),
        )

    def _grant_result(self, index: int, duplicate: bool = False) -> GrantResult:
        entry = self._ledger[index]
        assert entry.user_id is not None  # a grant always names its user
        return GrantResult(entry.user_id, entry.amount, entry.balance_before, entry.balance_after, entry.id, duplicate)

    def _deposit(self, user_id: str | None, amount: int, now: float, description: str) -> None:
        self._record_external(DEPOSIT, user_id, amount, now, description)

    def _record_external(self, kind: str, user_id: str | None, delta: int, now: float, description: str) -> LedgerEntry:
        if user_id is None:
            before = self._pool
        else:
            before = self._balances.get(user_id)
            if before is None:
                before = 0
                self._user_order.append(user_id)
        index = self._ledger.append(kind, delta, user_id, now, before + delta, description)
        if user_id is None:
            self._pool += delta
        else:
            self._balances[user_id] = before + delta
        return self._ledger[index]
