"""A clock that tests and the control API can move.

Idempotency keys expire after 24 hours and usage is summed over 30 days; both are only
testable if time can be moved forward without waiting.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time plus an adjustable offset, in epoch seconds."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (or back, with a negative value); returns the new time."""
        with self._lock:
            self._offset += seconds
        return self.now()

    def set(self, epoch_seconds: float) -> None:
        with self._lock:
            self._offset = epoch_seconds - time.time()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset

    def offset_kept_by(self, store: object) -> bool:
        """Whether ``store`` keeps this clock's offset, so that it can read the time inside
        its own atomic step instead of being told it (see RedisClock)."""
        return False


def iso8601(epoch_seconds: float) -> str:
    """UTC timestamp as RFC 3339 with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
