"""A state store on Redis: one state shared by several worker processes or mock instances.

Every method that changes state is one Lua script (see :mod:`.redis_scripts`) or one
MULTI transaction, so each is atomic across processes exactly as the memory store's lock
makes it atomic across threads. Idempotency records expire through Redis' own TTL; the
mock clock's ``now`` still decides expiry logically, so moving the clock in a test expires
keys just as it does in memory.

Failures of Redis itself (refused, dropped, timed out) become ``service_unavailable``
(503): a script either ran whole or not at all, so nothing is ever half-applied. There is
no automatic retry: re-sending a script whose reply was lost could apply it twice.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import DEFAULT_STORE_PREFIX as DEFAULT_PREFIX  # the configuration holds every default
from . import redis_scripts as scripts
from .accounts import Seed
from .errors import (
    MAX_SAFE_MICRODOLLARS,
    AmountOutOfRange,
    StoreUnavailable,
    is_store_error_reply,
    store_error,
)
from .idempotency import DEFAULT_MAX_KEYS, DEFAULT_TTL_SECONDS
from .ledger import check_conservation, new_ledger_id
from .records import (
    ADJUSTMENT,
    CHARGE,
    DEPOSIT,
    GRANT,
    ChargeResult,
    Conservation,
    GrantResult,
    IdempotencyView,
    LedgerEntry,
)

__all__ = ["DEFAULT_PREFIX", "MAX_SAFE_MICRODOLLARS", "RedisStore"]
# How long an in-flight claim survives its worker's death before the key frees itself.
DEFAULT_IN_FLIGHT_LEASE_SECONDS = 60.0

T = TypeVar("T")


class RedisStore:
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
        self.url = url
        self.prefix = prefix
        self.ttl_seconds = idempotency_ttl
        self.max_keys = max_idempotency_keys
        # A lease longer than the TTL would outlive the record it protects.
        self._lease_ms = max(1, int(min(in_flight_lease, idempotency_ttl) * 1000))
        self._first_load_keeps_state = keep_existing_state
        self.loaded_seed: bool | None = None  # after the first load: whether it wrote the seed
        # Short timeouts and no retries, so that a dead Redis answers fast and nothing is
        # sent twice. URL options (``?socket_timeout=5``) still override these defaults.
        pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            decode_responses=True,
            # User ids are whatever arrived on the wire: keep any code point round-tripping.
            encoding_errors="surrogatepass",
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._keys = [prefix + name for name in ("pool", "users", "ledger", "meta", "idem")]
        self._pool_key, self._users_key, self._ledger_key, self._meta_key, self._idem_key = self._keys
        self._record_prefix = prefix + "idem:"
        self.clock_key = prefix + "clock"
        self._scripts = {
            name: self._redis.register_script(getattr(scripts, name))
            for name in ("LOAD", "CLAIM", "RELEASE", "GRANT", "CHARGE", "SET_BALANCE", "LEDGER_SINCE", "VIEWS")
        }
        # The owner token of each claim this process holds, so that a release frees only
        # its own claim. Releases that failed while Redis was away are sent again before the
        # next call, so a key whose grant failed in an outage does not stay "in flight" until
        # its lease ends.
        self._owners: dict[tuple[str, str], str] = {}
        self._pending_releases: set[tuple[str, str, str]] = set()
        self._pending_lock = threading.Lock()

    def close(self) -> None:
        self._redis.connection_pool.disconnect()

    # -- the StateStore protocol ------------------------------------------------------

    def load(self, seed: Seed, now: float) -> None:
        mode = "load"
        if self._first_load_keeps_state:
            self._first_load_keeps_state = False
            mode = "init"
        at = _time_text(now)
        args: list[Any] = [mode, self._record_prefix]
        deposits: list[tuple[str | None, int]] = [(None, seed.pool), *seed.users.items()]
        for user_id, amount in deposits:
            _check_amount(amount)
            description = "seed: grant pool" if user_id is None else "seed: user balance"
            tail = _tail(new_ledger_id(), DEPOSIT, user_id, description)
            args += ["pool" if user_id is None else "user", user_id or "", amount, at, tail]
        with self._pending_lock:
            self._pending_releases.clear()
            self._owners.clear()
        loaded = self._run("LOAD", self._keys, args)
        self.loaded_seed = loaded[1] == 1

    def pool_balance(self) -> int:
        return int(self._call(lambda: self._redis.get(self._pool_key)) or 0)

    def user_balance(self, user_id: str) -> int | None:
        balance = self._call(lambda: self._redis.hget(self._users_key, user_id))
        return None if balance is None else int(balance)

    def users(self) -> dict[str, int]:
        raw = self._call(lambda: self._redis.hgetall(self._users_key))
        return {user_id: int(balance) for user_id, balance in raw.items()}

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: bytes, now: float) -> GrantResult | None:
        member = _member(scope, key)
        owner = secrets.token_hex(8)
        args = [
            self._record_prefix,
            member,
            scope,
            key,
            fingerprint.hex(),
            _time_text(now),
            _time_text(now + self.ttl_seconds),
            self.max_keys,
            self._lease_ms,
            owner,
        ]
        try:
            reply = self._run("CLAIM", [self._idem_key, self._meta_key, self._record_prefix + member], args)
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
        keys = self._keys[:4]
        if completes is not None:
            keys.append(self._record_prefix + _member(*completes))
        tail = _tail(ledger_id, GRANT, user_id, description)
        reply = self._run("GRANT", keys, [user_id, amount, _time_text(now), tail, ledger_id])
        if completes is not None:
            with self._pending_lock:
                self._owners.pop(completes, None)
        return GrantResult(user_id, amount, int(reply[1]), int(reply[2]), ledger_id)

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
        tail = _tail(ledger_id, CHARGE, user_id, None, model, prompt_tokens, completion_tokens)
        target = "pool" if user_id is None else "user"
        reply = self._run("CHARGE", self._keys[:4], [target, user_id or "", amount, _time_text(now), tail])
        return ChargeResult(ledger_id, amount, int(reply[1]), int(reply[2]))

    def set_balance(self, user_id: str | None, amount: int, now: float, description: str) -> LedgerEntry:
        _check_amount(amount)
        ledger_id = new_ledger_id()
        at = _time_text(now)
        tail = _tail(ledger_id, ADJUSTMENT, user_id, description)
        target = "pool" if user_id is None else "user"
        reply = self._run("SET_BALANCE", self._keys[:4], [target, user_id or "", amount, at, tail])
        before, after = int(reply[1]), int(reply[2])
        return LedgerEntry(ledger_id, ADJUSTMENT, after - before, user_id, float(at), before, after, description)

    def ledger(self, since: float | None = None) -> list[LedgerEntry]:
        if since is None:
            raw = self._call(lambda: self._redis.lrange(self._ledger_key, 0, -1))
            return [_decode(item) for item in raw]
        raw = self._run("LEDGER_SINCE", [self._ledger_key, self._meta_key], [_time_text(since)])
        # When the clock was moved back the script returns everything: filter here.
        return [entry for entry in map(_decode, raw) if entry.at >= since]

    def ledger_tail(self, limit: int) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        return [_decode(item) for item in self._call(lambda: self._redis.lrange(self._ledger_key, -limit, -1))]

    def ledger_size(self) -> int:
        return int(self._call(lambda: self._redis.llen(self._ledger_key)))

    def idempotency_keys(self, now: float) -> list[IdempotencyView]:
        rows = self._run("VIEWS", [self._idem_key], [self._record_prefix, _time_text(now)])
        return [
            IdempotencyView(
                scope=scope,
                key=key,
                state="in_flight" if state == "flight" else "completed",
                expires_at=float(expires_at),
                ledger_id=ledger_id or None,
            )
            for scope, key, state, expires_at, ledger_id in rows
        ]

    def idempotency_key_count(self) -> int:
        return int(self._call(lambda: self._redis.zcard(self._idem_key)))

    def conservation(self) -> Conservation:
        def snapshot() -> list[Any]:
            # One MULTI: the ledger and the balances are read at the same instant.
            pipe = self._redis.pipeline(transaction=True)
            pipe.lrange(self._ledger_key, 0, -1)
            pipe.get(self._pool_key)
            pipe.hgetall(self._users_key)
            return pipe.execute()

        raw_ledger, pool, users = self._call(snapshot)
        balances = {user_id: int(balance) for user_id, balance in users.items()}
        return check_conservation(map(_decode, raw_ledger), int(pool or 0), balances)

    # -- the shared clock (see redis_clock.RedisClock) ---------------------------------

    def clock_offset(self) -> float:
        return float(self._call(lambda: self._redis.get(self.clock_key)) or 0.0)

    def advance_clock_offset(self, seconds: float) -> float:
        return float(self._call(lambda: self._redis.incrbyfloat(self.clock_key, seconds)))

    def set_clock_offset(self, offset: float) -> None:
        self._call(lambda: self._redis.set(self.clock_key, repr(offset)))

    # -- plumbing -----------------------------------------------------------------------

    def _release(self, scope: str, key: str, owner: str) -> None:
        member = _member(scope, key)
        self._run("RELEASE", [self._idem_key, self._record_prefix + member], [member, owner], flush_pending=False)

    def _run(self, name: str, keys: list[str], args: list[Any], *, flush_pending: bool = True) -> Any:
        """Run a script; a failure it names by reply tag is raised as that error type."""
        script = self._scripts[name]
        reply = self._call(lambda: script(keys=keys, args=args), flush_pending=flush_pending)
        if isinstance(reply, list) and reply and is_store_error_reply(reply[0]):
            raise store_error(reply)
        return reply

    def _call(self, operation: Callable[[], T], *, flush_pending: bool = True) -> T:
        if flush_pending and self._pending_releases:
            self._flush_pending_releases()
        try:
            return operation()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Drop the idle pooled connections too: after a Redis restart each would fail once.
            self._redis.connection_pool.disconnect(inuse_connections=False)
            raise StoreUnavailable() from exc

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


def _member(scope: str, key: str) -> str:
    # Length-prefixed, so that no (scope, key) pair can collide with another one.
    return f"{len(scope)}:{scope}:{key}"


def _time_text(seconds: float) -> str:
    # repr() round-trips a float exactly; Lua and json.loads read the same value back.
    return repr(float(seconds))


def _tail(
    ledger_id: str,
    kind: str,
    user_id: str | None,
    description: str | None,
    model: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> str:
    # ASCII-only JSON: any user id or description is escaped, so the entry always parses.
    return "," + json.dumps([ledger_id, kind, user_id, description, model, prompt_tokens, completion_tokens])[1:]


def _decode(raw: str) -> LedgerEntry:
    at, amount, before, after, ledger_id, kind, user_id, description, model, prompt, completion = json.loads(raw)
    return LedgerEntry(
        ledger_id, kind, amount, user_id, float(at), before, after, description, model, prompt, completion
    )


def _check_amount(amount: int) -> None:
    if not 0 <= amount <= MAX_SAFE_MICRODOLLARS:
        raise AmountOutOfRange()
