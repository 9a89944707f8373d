"""A clock whose offset lives in Redis, so that every worker and instance sees one time.

With several worker processes each has its own :class:`Clock` object; a ``/_mock/clock``
move answered by one worker must apply to all of them, or an idempotency key would be
expired for one worker and live for another. Only the offset is shared: each process adds
it to its own wall clock, as :class:`Clock` does.
"""

from __future__ import annotations

import time

from .clock import Clock, checked_offset
from .redis_store import RedisStore


class RedisClock(Clock):
    def __init__(self, store: RedisStore) -> None:
        super().__init__()
        self._store = store

    def now(self) -> float:
        return time.time() + self._store.clock_offset()

    def advance(self, seconds: float) -> float:
        # Checked before the move, so that a refused move leaves the shared offset unchanged.
        checked_offset(self._store.clock_offset() + seconds, time.time())
        return time.time() + self._store.advance_clock_offset(seconds)

    def set(self, epoch_seconds: float) -> None:
        now = time.time()
        self._store.set_clock_offset(checked_offset(epoch_seconds - now, now))

    def reset(self) -> None:
        self._store.set_clock_offset(0.0)

    @property
    def offset(self) -> float:
        return self._store.clock_offset()
