"""What a state store must do: every method is one atomic step.

The memory store is the default; other backends implement the same protocol so that the
service, the web layer and the store tests run unchanged against each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .accounts import Seed
from .clock import Clock
from .records import ChargeResult, Conservation, GrantRequest, GrantResult, IdempotencyView, LedgerEntry, Page
from .usage import Overview, UsageSummary


@dataclass(frozen=True, slots=True)
class Slices:
    """Bounded slices of the state, read at one instant: what a live view (the dashboard)
    shows, at a cost that does not grow with the books."""

    now: float
    overview: Overview
    users: Page[tuple[str, int]]
    user_count: int
    ledger: Page[LedgerEntry]
    ledger_size: int
    keys: Page[IdempotencyView]
    key_count: int


class StateStore(Protocol):
    def load(self, seed: Seed, now: float) -> None:
        """Replace all state by the seed's: pool, users, an empty ledger but for deposits."""

    def pool_balance(self) -> int: ...

    def user_balance(self, user_id: str) -> int | None:
        """The user's balance in micro-dollars, or ``None`` for an unknown user."""

    def users(self) -> dict[str, int]:
        """Every balance: for the conservation check and small states; listings use pages."""

    def user_count(self) -> int: ...

    def users_page(self, cursor: int | None, limit: int) -> Page[tuple[str, int]]:
        """Users and balances in the order the users appeared, ``limit`` (at most
        MAX_PAGE_SIZE) from ``cursor`` on."""

    def grant(self, request: GrantRequest, clock: Clock) -> GrantResult:
        """Claim the request's Idempotency-Key (if any), grant and record the result, as one
        atomic step at the clock's time; a replay comes back with ``duplicate`` set.

        Raises a StoreError: the key is in flight, reused or cannot be stored (the key store
        is full), or the pool cannot cover the grant. A failure stores nothing for the key.
        """

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: bytes, now: float) -> GrantResult | None:
        """Claim the key, or return the result to replay; raises QuotaError on conflict."""

    def release_idempotency_key(self, scope: str, key: str) -> None: ...

    def apply_grant(
        self,
        user_id: str,
        amount: int,
        description: str | None,
        now: float,
        completes: tuple[str, str] | None,
    ) -> GrantResult:
        """Move ``amount`` from the pool to the user, creating the user on its first grant.

        When ``completes`` names a claimed idempotency key, the result is stored under it in
        the same atomic step, so no crash can separate the credit from its record.
        Raises QuotaError ``insufficient_balance`` when the pool cannot cover it.
        """

    def apply_charge(
        self,
        user_id: str | None,
        amount: int,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        now: float,
    ) -> ChargeResult:
        """Take ``amount`` from the user (``None``: the pool); never below zero.

        Raises QuotaError ``user_not_found`` or ``insufficient_balance``.
        """

    def set_balance(self, user_id: str | None, amount: int, now: float, description: str) -> LedgerEntry:
        """Set an account to ``amount`` through an adjustment entry (the control API)."""

    def ledger(self, since: float | None = None) -> list[LedgerEntry]:
        """Ledger entries in order, optionally only those at or after ``since``."""

    def ledger_tail(self, limit: int) -> list[LedgerEntry]:
        """The newest ``limit`` entries, oldest first: what a live view needs, without
        reading a ledger of millions."""

    def ledger_page(self, cursor: int | None, limit: int) -> Page[LedgerEntry]:
        """Entries newest first, from position ``cursor`` (the newest when None) down."""

    def ledger_size(self) -> int: ...

    def usage(self, since: float, until: float) -> UsageSummary:
        """Usage within ``[since, until]``, from running totals kept as money moved: equal to
        :func:`.usage.summarize` over the ledger, at a cost that does not grow with it."""

    def overview(self, clock: Clock) -> Overview:
        """The pool and the usage of the window ending at the clock's now, read together."""

    def idempotency_keys(self, now: float) -> list[IdempotencyView]: ...

    def idempotency_key_page(self, now: float, cursor: int | None, limit: int) -> Page[IdempotencyView]:
        """Live keys in first-use order from ``cursor`` on; a page may hold fewer than
        ``limit`` (its cursor still leads on)."""

    def idempotency_key_count(self) -> int: ...

    def slices(self, clock: Clock, rows: int) -> Slices:
        """The first page (``rows`` items) of every listing, the counts, the pool and usage."""

    def conservation(self) -> Conservation:
        """Check that money is conserved; see :class:`Conservation`."""
