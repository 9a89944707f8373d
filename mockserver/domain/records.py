"""Immutable records the domain hands out: ledger entries and operation results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# Ledger entry kinds. Deposits and adjustments bring money in from outside (seeding,
# the control API); grants move it from the pool to a user; charges spend it.
DEPOSIT = "deposit"
ADJUSTMENT = "adjustment"
GRANT = "grant"
CHARGE = "charge"

# The pool's account name in the ledger; users are named by their external id.
POOL = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One append-only ledger line. ``amount`` is in micro-dollars.

    For deposits and adjustments ``amount`` is the signed change of ``user_id``'s account
    (``None``: the pool). Grants move ``amount`` from the pool to ``user_id``; charges take
    ``amount`` out of ``user_id``'s account (``None``: the developer pays).
    """

    id: str
    kind: str
    amount: int
    user_id: str | None
    at: float
    balance_before: int
    balance_after: int
    description: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class GrantResult:
    external_user_id: str
    amount: int
    balance_before: int
    balance_after: int
    ledger_id: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ChargeResult:
    ledger_id: str
    amount: int
    balance_before: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class IdempotencyView:
    """What the control API shows of one idempotency key."""

    scope: str
    key: str
    state: str
    expires_at: float
    ledger_id: str | None


@dataclass(frozen=True, slots=True)
class Conservation:
    """Money in from outside versus where it is now; ``holds`` when they agree exactly.

    ``replay_matches`` says whether replaying the ledger from empty reproduces every stored
    balance, so a balance changed without a ledger entry is caught too.
    """

    external_in: int
    pool: int
    users: int
    spent: int
    replay_matches: bool

    @property
    def holds(self) -> bool:
        return self.replay_matches and self.external_in == self.pool + self.users + self.spent


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """One grant as the API asked for it. ``fingerprint`` is what makes two requests with the
    same ``idempotency_key`` "the same" (route and body); ``scope`` is the API key's."""

    scope: str
    idempotency_key: str | None
    fingerprint: bytes
    user_id: str
    amount: int
    description: str | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, and the cursor of the next (``None``: this was the last)."""

    items: list[T] = field(default_factory=list)
    next_cursor: int | None = None


# Every listing answers at most this many items a page, whatever it is asked for.
MAX_PAGE_SIZE = 1000


def page_size(limit: int) -> int:
    """``limit`` held to 1..MAX_PAGE_SIZE: a page's cost is bounded whatever the caller asks."""
    return max(1, min(limit, MAX_PAGE_SIZE))
