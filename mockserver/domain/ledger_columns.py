"""The memory store's ledger, kept column by column in typed arrays.

A million ``LedgerEntry`` objects cost about 300 bytes each (object header, a 25-character
id string, boxed ints and floats); the same entries as columns cost about 60. Entries are
materialised as :class:`LedgerEntry` only when read. Ids need no storage at all: they are the
ledger's random prefix (new on every load, so ids never repeat across restarts) and the
entry's position.
"""

from __future__ import annotations

import secrets
import sys
from array import array
from bisect import bisect_left

from .records import ADJUSTMENT, CHARGE, DEPOSIT, GRANT, LedgerEntry

_KINDS = (DEPOSIT, ADJUSTMENT, GRANT, CHARGE)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}


class LedgerColumns:
    """Append-only; not thread-safe on its own (the store's lock guards it)."""

    def __init__(self) -> None:
        self._prefix = "ledg_" + secrets.token_hex(6)
        self._kinds = bytearray()
        self._amounts = array("q")
        self._balances_after = array("q")
        self._at = array("d")
        self._prompt_tokens = array("l")
        self._completion_tokens = array("l")
        # Strings are interned: a user id or description repeated across entries is stored once.
        self._users: list[str | None] = []
        self._descriptions: list[str | None] = []
        self._models: list[str | None] = []
        # False once time went backwards between two entries (the clock was moved back):
        # then windows are found by a scan instead of a binary search.
        self.in_time_order = True

    def __len__(self) -> int:
        return len(self._kinds)

    def append(
        self,
        kind: str,
        amount: int,
        user_id: str | None,
        at: float,
        balance_after: int,
        description: str | None = None,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> int:
        """Append an entry; returns its position (see :meth:`entry_id`)."""
        if self._at and at < self._at[-1]:
            self.in_time_order = False
        self._kinds.append(_KIND_CODES[kind])
        self._amounts.append(amount)
        self._balances_after.append(balance_after)
        self._at.append(at)
        self._prompt_tokens.append(prompt_tokens)
        self._completion_tokens.append(completion_tokens)
        self._users.append(_interned(user_id))
        self._descriptions.append(_interned(description))
        self._models.append(_interned(model))
        return len(self._kinds) - 1

    def entry_id(self, index: int) -> str:
        return f"{self._prefix}{index:08x}"

    def __getitem__(self, index: int) -> LedgerEntry:
        kind = _KINDS[self._kinds[index]]
        amount = self._amounts[index]
        after = self._balances_after[index]
        return LedgerEntry(
            id=self.entry_id(index),
            kind=kind,
            amount=amount,
            user_id=self._users[index],
            at=self._at[index],
            balance_before=after + amount if kind == CHARGE else after - amount,
            balance_after=after,
            description=self._descriptions[index],
            model=self._models[index],
            prompt_tokens=self._prompt_tokens[index],
            completion_tokens=self._completion_tokens[index],
        )

    def tail(self, limit: int) -> list[LedgerEntry]:
        """The newest ``limit`` entries, oldest first."""
        return [self[i] for i in range(max(0, len(self) - limit), len(self))]

    def entries(self, since: float | None = None) -> list[LedgerEntry]:
        """Entries in order; with ``since``, only those at or after it."""
        if since is None:
            return [self[i] for i in range(len(self))]
        if self.in_time_order:
            return [self[i] for i in range(bisect_left(self._at, since), len(self))]
        return [self[i] for i in range(len(self)) if self._at[i] >= since]


def _interned(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)
