"""Fault rules: scripted failures a client's developer asks the mock for.

A rule targets one operation (by the contract's operationId) and does one thing to the
requests that reach it: fail them with a documented status, slow them down, or apply them
and then drop the connection without an answer ("commit then drop"), so that client retry
logic can be tested against real idempotency. Rules expire after a number of requests
and/or at a time on the mock clock, whichever comes first.

No Flask here: the web layer asks :meth:`FaultBook.take` which rules apply to a request.
Each mock instance owns its own book (nothing module-level), kept in its process: with
several Redis-backed workers, a rule lives in the worker that received it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace

FAIL = "fail"
LATENCY = "latency"
DROP = "drop"
ACTIONS = (FAIL, LATENCY, DROP)

# Bounds that keep a typo from hanging a test run or growing without end.
MAX_LATENCY_MS = 30_000
MAX_COUNT = 100_000
MAX_TTL_SECONDS = 366 * 24 * 3600
MAX_RULES = 1000


class FaultError(ValueError):
    """A rule that cannot be added; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    id: str
    operation_id: str
    action: str
    created_at: float
    status: int | None = None  # FAIL: the documented status to answer
    latency_ms: int = 0  # LATENCY: added before the request is handled
    remaining: int | None = None  # requests left; None: until it expires by time
    expires_at: float | None = None  # mock-clock epoch seconds; None: until used up

    def live(self, now: float) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class Faults:
    """What applies to one request: at most one failure, a total latency, and whether to drop."""

    fail_status: int | None = None
    latency_ms: int = 0
    drop: bool = False


NONE = Faults()


class FaultBook:
    """The active rules of one mock; thread-safe (requests are served on several threads)."""

    def __init__(self) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(
        self,
        *,
        operation_id: str,
        action: str,
        now: float,
        status: int | None = None,
        latency_ms: int = 0,
        count: int | None = None,
        ttl_seconds: float | None = None,
    ) -> FaultRule:
        """Add a rule; fields are checked here except what needs the contract (the web layer)."""
        if action not in ACTIONS:
            raise FaultError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if action == FAIL and status is None:
            raise FaultError("a 'fail' rule needs a status")
        if action != FAIL and status is not None:
            raise FaultError(f"status applies to 'fail' rules only, not {action!r}")
        if action == LATENCY and not 1 <= latency_ms <= MAX_LATENCY_MS:
            raise FaultError(f"latency_ms must be from 1 to {MAX_LATENCY_MS}")
        if action != LATENCY and latency_ms:
            raise FaultError(f"latency_ms applies to 'latency' rules only, not {action!r}")
        if count is not None and not 1 <= count <= MAX_COUNT:
            raise FaultError(f"count must be from 1 to {MAX_COUNT}")
        if ttl_seconds is not None and not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise FaultError(f"ttl_seconds must be more than 0 and at most {MAX_TTL_SECONDS}")
        if count is None and ttl_seconds is None and action != LATENCY:
            # A failure or a drop forever is rarely meant: by default it hits the next request.
            count = 1
        with self._lock:
            self._prune(now)
            if len(self._rules) >= MAX_RULES:
                raise FaultError(f"at most {MAX_RULES} rules at once: delete some first")
            rule = FaultRule(
                id=f"fault_{next(self._ids)}",
                operation_id=operation_id,
                action=action,
                created_at=now,
                status=status,
                latency_ms=latency_ms,
                remaining=count,
                expires_at=None if ttl_seconds is None else now + ttl_seconds,
            )
            self._rules[rule.id] = rule
            return rule

    @property
    def active(self) -> bool:
        """Whether any rule may apply (read without the lock: a hint for the fast path)."""
        return bool(self._rules)

    def rules(self, now: float) -> list[FaultRule]:
        with self._lock:
            self._prune(now)
            return list(self._rules.values())

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            return self._rules.pop(rule_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, operation_id: str, now: float) -> Faults:
        """The faults for one request of ``operation_id``; each rule that applies uses one count.

        The oldest failure rule wins (a request fails once); latencies add up; any drop drops.
        """
        if not self._rules:  # the common case, without taking the lock
            return NONE
        fail_status: int | None = None
        latency = 0
        drop = False
        with self._lock:
            self._prune(now)
            for rule in list(self._rules.values()):
                if rule.operation_id != operation_id:
                    continue
                if rule.action == FAIL:
                    if fail_status is not None:
                        continue
                    fail_status = rule.status
                elif rule.action == LATENCY:
                    latency += rule.latency_ms
                else:
                    drop = True
                if rule.remaining is not None:
                    self._rules[rule.id] = replace(rule, remaining=rule.remaining - 1)
            self._prune(now)
        return Faults(fail_status=fail_status, latency_ms=min(latency, MAX_LATENCY_MS), drop=drop)

    def _prune(self, now: float) -> None:
        for rule_id in [r.id for r in self._rules.values() if not r.live(now)]:
            del self._rules[rule_id]
