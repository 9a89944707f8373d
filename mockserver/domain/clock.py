"""A clock that tests and the control API can move.

Idempotency keys expire after 24 hours and usage is summed over 30 days; both are only
testable if time can be moved forward without waiting.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

# The mock clock stays where every view can show it: RFC 3339 years 1970 to 9999.
EARLIEST_EPOCH_SECONDS = 0.0
LATEST_EPOCH_SECONDS = 253402300799.0  # 9999-12-31T23:59:59Z


class ClockError(ValueError):
    """A move that would take the mock clock out of the years it can show; nothing moved."""


def checked_offset(offset: float, wall_now: float) -> float:
    """``offset`` if the wall clock plus it stays in 1970-9999, else a :class:`ClockError`."""
    moved_to = wall_now + offset
    if not EARLIEST_EPOCH_SECONDS <= moved_to <= LATEST_EPOCH_SECONDS:  # also refuses NaN
        raise ClockError(
            f"the clock would be at epoch second {moved_to:.0f}; it must stay between 1970-01-01 and 9999-12-31 "
            "(its offset is unchanged)"
        )
    return offset


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
            self._offset = checked_offset(self._offset + seconds, time.time())
        return self.now()

    def set(self, epoch_seconds: float) -> None:
        with self._lock:
            now = time.time()
            self._offset = checked_offset(epoch_seconds - now, now)

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset


def iso8601(epoch_seconds: float) -> str:
    """UTC timestamp as RFC 3339 with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
