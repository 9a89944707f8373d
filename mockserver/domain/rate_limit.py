"""Optional rate limiting, as the vendor documents it ("100 requests/minute by default").

A fixed window per caller on the mock clock, so that tests can move past a window with
``/_mock/clock`` instead of waiting. No Flask here: the web layer asks :meth:`RateLimiter.hit`
and turns a refusal into 429 ``rate_limit_exceeded`` with the documented headers.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_SPEC = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{0,6})\s*([a-z]+)\s*$", re.IGNORECASE)
# Callers remembered at once: windows of callers beyond this are forgotten oldest first, so
# that a client inventing a new key per request cannot grow the mock without bound.
MAX_TRACKED_CALLERS = 100_000


class RateLimitError(ValueError):
    """A rate-limit setting that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``100/min``, ``10/s``, ``5000/hour``, ``20/30s`` (20 requests per 30 seconds)."""
        match = _SPEC.match(text or "")
        unit = _unit(match.group(3).lower()) if match else None
        if match is None or unit is None:
            raise RateLimitError(
                f"rate limit {text!r}: write REQUESTS/PERIOD, e.g. 100/min, 10/s, 5000/hour or 20/30s"
            )
        limit = int(match.group(1))
        window = int(match.group(2) or 1) * unit
        if limit < 1 or window < 1:
            raise RateLimitError(f"rate limit {text!r}: the count and the period must be at least 1")
        return cls(limit, window)

    def describe(self) -> str:
        names = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
        period = names.get(self.window_seconds, f"{self.window_seconds} seconds")
        return f"{self.limit} requests per {period}"


def _unit(word: str) -> int | None:
    if word in _UNITS:
        return _UNITS[word]
    # Plurals ("mins", "hours"), but never "ms": milliseconds are not minutes.
    return _UNITS.get(word[:-1]) if len(word) > 2 and word.endswith("s") else None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds (mock clock) at which the window resets
    retry_after: int  # seconds to wait; 0 when allowed

    def headers(self) -> dict[str, str]:
        """The documented rate-limit headers; ``Retry-After`` only on a refusal."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    """Fixed windows aligned to multiples of the period, one counter per caller."""

    def __init__(self, rate: RateLimit) -> None:
        self.rate = rate
        self._windows: dict[str, tuple[int, int]] = {}  # caller -> (window start, requests)
        self._lock = threading.Lock()

    def hit(self, caller: str, now: float) -> Decision:
        """Count one request of ``caller`` at ``now``; refused requests are not counted."""
        period = self.rate.window_seconds
        start = int(now // period) * period
        reset_at = start + period
        with self._lock:
            window_start, used = self._windows.get(caller, (start, 0))
            if window_start != start:
                used = 0
            allowed = used < self.rate.limit
            if allowed:
                used += 1
            self._windows.pop(caller, None)  # re-insert: the dict stays ordered by last use
            self._windows[caller] = (start, used)
            if len(self._windows) > MAX_TRACKED_CALLERS:
                del self._windows[next(iter(self._windows))]
        retry_after = 0 if allowed else max(1, math.ceil(reset_at - now))
        return Decision(allowed, self.rate.limit, self.rate.limit - used, reset_at, retry_after)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
