"""A state store on Redis: one state shared by several worker processes or mock instances.

Every method that changes state is one Lua script (see :mod:`.redis_scripts`), so each is
atomic across processes exactly as the memory store's lock makes it atomic across threads.
A grant is one script and one round trip: it reads the shared clock, claims its
Idempotency-Key, moves the money and records the result in the same step. Reads that need
several values (the dashboard's live part) go in one MULTI. Scripts run by their SHA
(EVALSHA) and are sent only when Redis does not have them (first use, a restart). Commands
travel on :mod:`.redis_link`: a connection per thread, each script's fixed arguments packed
once.

Idempotency records expire through Redis' own TTL; the mock clock's ``now`` still decides
expiry logically, so moving the clock in a test expires keys just as it does in memory.

Failures of Redis itself (refused, dropped, timed out) become ``service_unavailable``
(503): a script either ran whole or not at all, so nothing is ever half-applied. There is
no automatic retry: re-sending a script whose reply was lost could apply it twice.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import redis_codec as codec
from .accounts import Seed
from .clock import Clock
from .errors import (
    MAX_SAFE_MICRODOLLARS,
    AmountOutOfRange,
    StoreUnavailable,
)
from .idempotency import DEFAULT_MAX_KEYS, DEFAULT_TTL_SECONDS
from .ledger import new_ledger_id
from .records import (
    ADJUSTMENT,
    CHARGE,
    DEPOSIT,
    GRANT,
    ChargeResult,
    GrantRequest,
    GrantResult,
    LedgerEntry,
)
from .redis_reads import RedisReads
from .redis_scripts import DEFAULT_PREFIX

__all__ = ["DEFAULT_PREFIX", "MAX_SAFE_MICRODOLLARS", "RedisStore"]
# How long an in-flight claim survives its worker's death before the key frees itself.
DEFAULT_IN_FLIGHT_LEASE_SECONDS = 60.0

T = TypeVar("T")


class RedisStore(RedisReads):
    """The :class:`~mockserver.domain.store.StateStore` protocol on Redis, namespaced by ``prefix``.

    ``keep_existing_state``: the first :meth:`load` only initialises an empty namespace and
    keeps the state it finds otherwise. The service loads its seed when it is built, and a
    restarted mock or a second worker must not wipe the shared state; later loads (the
    control API's reset) always replace it.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        idempotency_ttl: float = DEFAULT_TTL_SECONDS,
        max_idempotency_keys: int = DEFAULT_MAX_KEYS,
        in_flight_lease: float = DEFAULT_IN_FLIGHT_LEASE_SECONDS,
        keep_existing_state: bool = False,
        socket_timeout: float = 2.0,
        connect_timeout: float = 0.5,
    ) -> None:
        if max_idempotency_keys < 1:
            raise ValueError("max_idempotency_keys must be at least 1")
        super().__init__(url, prefix=prefix, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        self.ttl_seconds = idempotency_ttl
        self.max_keys = max_idempotency_keys
        # A lease longer than the TTL would outlive the record it protects.
        self._lease_ms = max(1, int(min(in_flight_lease, idempotency_ttl) * 1000))
        self._first_load_keeps_state = keep_existing_state
        self.loaded_seed: bool | None = None  # after the first load: whether it wrote the seed
        # The owner token of each claim this process holds, so that a release frees only
        # its own claim. Releases that failed while Redis was away are sent again before the
        # next call, so a key whose grant failed in an outage does not stay "in flight" until
        # its lease ends.
        self._owners: dict[tuple[str, str], str] = {}
        self._pending_releases: set[tuple[str, str, str]] = set()
        self._pending_lock = threading.Lock()

    # -- the StateStore protocol ------------------------------------------------------

    def load(self, seed: Seed, now: float) -> None:
        mode = "load"
        if self._first_load_keeps_state:
            self._first_load_keeps_state = False
            mode = "init"
        at = codec.time_text(now)
        args: list[Any] = [mode]
        deposits: list[tuple[str | None, int]] = [(None, seed.pool), *seed.users.items()]
        for user_id, amount in deposits:
            _check_amount(amount)
            description = "seed: grant pool" if user_id is None else "seed: user balance"
            tail = codec.tail(new_ledger_id(), DEPOSIT, user_id, description)
            args += ["pool" if user_id is None else "user", user_id or "", amount, at, tail]
        with self._pending_lock:
            self._pending_releases.clear()
            self._owners.clear()
        loaded = self._run("LOAD", args)
        self.loaded_seed = loaded[1] == 1

    # -- grants --------------------------------------------------------------------------

    def grant(self, request: GrantRequest, clock: Clock) -> GrantResult:
        """Claim, grant and record in one script (one round trip), at the clock's time."""
        _check_amount(request.amount)
        ledger_id = new_ledger_id()
        wall, shared = self._time_of(clock)
        tail = codec.tail(ledger_id, GRANT, request.user_id, request.description)
        args: list[Any] = ["plain", wall, shared, request.user_id, request.amount, tail, ledger_id]
        if request.idempotency_key is not None:
            args[0] = "once"
            fingerprint = request.fingerprint
            args += [codec.member(request.scope, request.idempotency_key), fingerprint, self.ttl_seconds, self.max_keys]
        reply = self._run("GRANT", args)
        if reply[0] == "replay":
            user_id, amount, before, after, replayed_id = reply[1:6]
            return GrantResult(user_id, int(amount), int(before), int(after), replayed_id, duplicate=True)
        return GrantResult(request.user_id, request.amount, int(reply[1]), int(reply[2]), ledger_id)

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: bytes, now: float) -> GrantResult | None:
        owner = secrets.token_hex(8)
        args = [
            codec.member(scope, key),
            fingerprint,
            codec.time_text(now),
            self.ttl_seconds,
            self.max_keys,
            self._lease_ms,
            owner,
        ]
        try:
            reply = self._run("CLAIM", args)
        except StoreUnavailable:
            # The claim may have been applied with its reply lost: undo it once Redis
            # answers, or the key would stay "in flight" for its lease with nobody on it.
            with self._pending_lock:
                self._pending_releases.add((scope, key, owner))
            raise
        if reply[0] == "claimed":
            with self._pending_lock:
                self._owners[(scope, key)] = owner
            return None
        user_id, amount, before, after, ledger_id = reply[1:6]  # "replay"
        return GrantResult(user_id, int(amount), int(before), int(after), ledger_id)

    def release_idempotency_key(self, scope: str, key: str) -> None:
        with self._pending_lock:
            owner = self._owners.pop((scope, key), None)
        if owner is None:
            return  # not claimed by this process: nothing of ours to release
        try:
            self._release(scope, key, owner)
        except StoreUnavailable:
            with self._pending_lock:
                self._pending_releases.add((scope, key, owner))
            raise

    def apply_grant(
        self,
        user_id: str,
        amount: int,
        description: str | None,
        now: float,
        completes: tuple[str, str] | None,
    ) -> GrantResult:
        _check_amount(amount)
        ledger_id = new_ledger_id()
        tail = codec.tail(ledger_id, GRANT, user_id, description)
        args: list[Any] = ["plain", codec.time_text(now), "0", user_id, amount, tail, ledger_id]
        if completes is not None:
            args[0] = "complete"
            args.append(codec.member(*completes))
        reply = self._run("GRANT", args)
        if completes is not None:
            with self._pending_lock:
                self._owners.pop(completes, None)
        return GrantResult(user_id, amount, int(reply[1]), int(reply[2]), ledger_id)

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
        _check_amount(amount)
        ledger_id = new_ledger_id()
        tail = codec.tail(ledger_id, CHARGE, user_id, None, model, prompt_tokens, completion_tokens)
        target = "pool" if user_id is None else "user"
        reply = self._run(
            "CHARGE",
            [target, user_id or "", amount, codec.time_text(now), model or "", prompt_tokens, completion_tokens, tail],
        )
        return ChargeResult(ledger_id, amount, int(reply[1]), int(reply[2]))

    def set_balance(self, user_id: str | None, amount: int, now: float, description: str) -> LedgerEntry:
        _check_amount(amount)
        ledger_id = new_ledger_id()
        at = codec.time_text(now)
        tail = codec.tail(ledger_id, ADJUSTMENT, user_id, description)
        target = "pool" if user_id is None else "user"
        reply = self._run("SET_BALANCE", [target, user_id or "", amount, at, tail])
        before, after = int(reply[1]), int(reply[2])
        return LedgerEntry(ledger_id, ADJUSTMENT, after - before, user_id, float(at), before, after, description)

    # -- the shared clock (see redis_clock.RedisClock) ---------------------------------

    def advance_clock_offset(self, seconds: float) -> float:
        return float(self._command("INCRBYFLOAT", self.clock_key, repr(seconds)))

    def set_clock_offset(self, offset: float) -> None:
        self._command("SET", self.clock_key, repr(offset))

    # -- plumbing -----------------------------------------------------------------------

    def _release(self, scope: str, key: str, owner: str) -> None:
        self._run("RELEASE", [codec.member(scope, key), owner], flush_pending=False)

    def _call(self, operation: Callable[[], T], *, flush_pending: bool = True) -> T:
        if flush_pending and self._pending_releases:
            self._flush_pending_releases()
        return operation()

    def _flush_pending_releases(self) -> None:
        with self._pending_lock:
            pending = list(self._pending_releases)
        for scope, key, owner in pending:
            try:
                self._release(scope, key, owner)
            except StoreUnavailable:
                return  # still away: the operation that follows reports it
            with self._pending_lock:
                self._pending_releases.discard((scope, key, owner))


def _check_amount(amount: int) -> None:
    if not 0 <= amount <= MAX_SAFE_MICRODOLLARS:
        raise AmountOutOfRange()
