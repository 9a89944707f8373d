"""The idempotency table: one record per (API key, Idempotency-Key), kept its full lifetime.

The contract's choices (IETF draft, Stripe): a key is scoped to the API key that used it;
the same key with the same request replays the stored result; with a different request it
is refused with ``idempotency_key_reused``; while its first request is still being
processed it is refused with ``idempotency_key_in_flight``; only successes are stored, a
failure frees the key. Records live ``ttl`` seconds from first use.

The table is bounded, and it never forgets a key before its time: a forgotten key's retry
would be credited a second time. When every slot holds a live key, a new key is refused
(:class:`~.errors.IdempotencyStoreFull`, 503 with ``Retry-After``) until the oldest expires.

Records are kept column by column in first-use order (with one TTL for all, also expiry
order), as the ledger is: a key costs its string, one dict slot and a few machine words
(see README, "What a stored key costs"). A record's result is a number the owning store
chooses (the memory store: the grant's ledger position) rather than a result object.

Not thread-safe on its own: the store that owns it serialises access.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from typing import NamedTuple

from .errors import IdempotencyKeyInFlight, IdempotencyKeyReused, IdempotencyStoreFull

DEFAULT_TTL_SECONDS = 24 * 60 * 60
# Sized from the measured cost of a stored key (benchmarks/memory.py, README): about
# 200 MB of memory when full.
DEFAULT_MAX_KEYS = 1_000_000

IN_FLIGHT = -1
_FINGERPRINT_BYTES = 32
# Released slots are skipped, never reused; a page reads at most this many slots per item.
_SCAN_FACTOR = 8


class KeyRow(NamedTuple):
    """One live record, as listings see it. ``result`` is None while the key is in flight."""

    cursor: int
    scope: str
    key: str
    expires_at: float
    result: int | None


class IdempotencyTable:
    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.ttl_seconds = ttl_seconds
        self.max_keys = max_keys
        self.clear()

    def clear(self) -> None:
        # scope -> key -> slot. Slots are absolute first-use sequence numbers; the columns
        # hold slots from ``_base`` on, and slots before ``_head`` are expired or released.
        self._slots: dict[str, dict[str, int]] = {}
        self._scopes: list[str | None] = []  # None: released (a failed request freed the key)
        self._keys: list[str] = []
        self._fingerprints = bytearray()
        self._expires = array("d")
        self._results = array("q")
        self._base = 0
        self._head = 0
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def claim(self, scope: str, key: str, fingerprint: bytes, now: float) -> int | None:
        """Claim ``key`` for a new request, or return the stored result to replay.

        Raises a :class:`~.errors.StoreError` when the key belongs to a different request or
        is in flight, or when the table is full of live keys.
        """
        self._expire(now)
        fingerprint = _fixed_size(fingerprint)
        scoped = self._slots.get(scope)
        slot = None if scoped is None else scoped.get(key)
        if slot is not None:
            index = slot - self._base
            start = index * _FINGERPRINT_BYTES
            if self._fingerprints[start : start + _FINGERPRINT_BYTES] != fingerprint:
                raise IdempotencyKeyReused()
            result = self._results[index]
            if result == IN_FLIGHT:
                raise IdempotencyKeyInFlight()
            return result
        if self._live >= self.max_keys:
            raise IdempotencyStoreFull(retry_after_seconds=self._oldest_expiry() - now)
        scope = sys.intern(scope)  # one string per API key, however many keys it stores
        if scoped is None:
            scoped = self._slots[scope] = {}
        scoped[key] = self._base + len(self._keys)
        self._scopes.append(scope)
        self._keys.append(key)
        self._fingerprints += fingerprint
        self._expires.append(now + self.ttl_seconds)
        self._results.append(IN_FLIGHT)
        self._live += 1
        return None

    def complete(self, scope: str, key: str, result: int) -> None:
        """Store ``result`` (a non-negative number the store chooses) for the claimed key."""
        index = self._index(scope, key)
        if index is not None:
            self._results[index] = result

    def release(self, scope: str, key: str) -> None:
        """Forget an in-flight claim whose request failed, so the key can be used again."""
        index = self._index(scope, key)
        if index is not None and self._results[index] == IN_FLIGHT:
            self._forget(index)

    def rows(self, now: float, cursor: int | None = None, limit: int | None = None) -> tuple[list[KeyRow], int | None]:
        """Live records in first-use order from ``cursor`` on, at most ``limit`` of them, and
        the cursor of the next page (None at the end)."""
        self._expire(now)
        index = max(self._head, (cursor or 0) - self._base)
        end = len(self._keys)
        budget = end if limit is None else limit * _SCAN_FACTOR
        rows: list[KeyRow] = []
        while index < end and budget > 0 and (limit is None or len(rows) < limit):
            scope = self._scopes[index]
            if scope is not None:
                result = self._results[index]
                rows.append(
                    KeyRow(
                        self._base + index,
                        scope,
                        self._keys[index],
                        self._expires[index],
                        None if result == IN_FLIGHT else result,
                    )
                )
            index += 1
            budget -= 1
        return rows, (self._base + index if index < end else None)

    # -- internals ----------------------------------------------------------------------

    def _index(self, scope: str, key: str) -> int | None:
        scoped = self._slots.get(scope)
        slot = None if scoped is None else scoped.get(key)
        return None if slot is None else slot - self._base

    def _forget(self, index: int) -> None:
        scope = self._scopes[index]
        if scope is None:
            return
        scoped = self._slots[scope]
        del scoped[self._keys[index]]
        if not scoped:
            del self._slots[scope]
        self._scopes[index] = None
        self._live -= 1

    def _expire(self, now: float) -> None:
        # Oldest first, stopping at the first live record: a key is forgotten only once its
        # own time is up. (After the clock moved back a later record may expire first; it
        # then waits for the older ones, which only ever keeps a key longer.)
        scopes, expires = self._scopes, self._expires
        head, end = self._head, len(scopes)
        while head < end and (scopes[head] is None or expires[head] <= now):
            self._forget(head)
            head += 1
        self._head = head
        if head > 1024 and head * 2 > end:
            self._compact()

    def _compact(self) -> None:
        # Amortised O(1): the dead prefix is dropped once it is half the columns.
        head = self._head
        del self._scopes[:head]
        del self._keys[:head]
        del self._fingerprints[: head * _FINGERPRINT_BYTES]
        del self._expires[:head]
        del self._results[:head]
        self._base += head
        self._head = 0

    def _oldest_expiry(self) -> float:
        for index in range(self._head, len(self._scopes)):
            if self._scopes[index] is not None:
                return self._expires[index]
        return 0.0


def _fixed_size(fingerprint: bytes) -> bytes:
    # Request fingerprints are SHA-256 digests already; anything else is digested to fit.
    return fingerprint if len(fingerprint) == _FINGERPRINT_BYTES else hashlib.sha256(fingerprint).digest()
