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

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import DEFAULT_STORE_PREFIX as DEFAULT_PREFIX  # the configuration holds every default
from . import redis_codec as codec
from . import redis_scripts as scripts
from .accounts import Seed
from .clock import Clock
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
    GrantRequest,
    GrantResult,
    IdempotencyView,
    LedgerEntry,
    Page,
    page_size,
)
from .redis_link import Command, RedisLink, pack
from .store import Slices
from .usage import Overview, UsageSummary

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
        self.link = RedisLink(pool)
        # Every script gets the same KEYS, in redis_scripts.KEY_NAMES' order.
        self._keys = [prefix + name for name in scripts.KEY_NAMES]
        names = dict(zip(scripts.KEY_NAMES, self._keys, strict=True))
        self._pool_key, self._users_key, self._order_key = names["pool"], names["users"], names["user_order"]
        self._ledger_key, self._idem_key, self.clock_key = names["ledger"], names["idem"], names["clock"]
        self._script_bodies = {name: getattr(scripts, name) for name in scripts.SCRIPTS}
        # EVALSHA, the script's SHA, its KEYS and the namespace: the same for every call.
        self.script_commands = {
            name: Command("EVALSHA", _sha(body), len(self._keys), *self._keys, prefix)
            for name, body in self._script_bodies.items()
        }
        # The owner token of each claim this process holds, so that a release frees only
        # its own claim. Releases that failed while Redis was away are sent again before the
        # next call, so a key whose grant failed in an outage does not stay "in flight" until
        # its lease ends.
        self._owners: dict[tuple[str, str], str] = {}
        self._pending_releases: set[tuple[str, str, str]] = set()
        self._pending_lock = threading.Lock()

    def close(self) -> None:
        self.link.close()

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

    def pool_balance(self) -> int:
        return int(self._command("GET", self._pool_key) or 0)

    def user_balance(self, user_id: str) -> int | None:
        balance = self._command("HGET", self._users_key, user_id)
        return None if balance is None else int(balance)

    def users(self) -> dict[str, int]:
        return _balances(self._command("HGETALL", self._users_key))

    def user_count(self) -> int:
        return int(self._command("LLEN", self._order_key))

    def users_page(self, cursor: int | None, limit: int) -> Page[tuple[str, int]]:
        return _users_page(self._run("USERS_PAGE", [cursor or 0, page_size(limit)]), cursor or 0)

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

    # -- usage ------------------------------------------------------------------------------

    def usage(self, since: float, until: float) -> UsageSummary:
        reply = self._run("USAGE", ["0", "0", codec.time_text(since), codec.time_text(until)])
        return codec.usage_summary(reply)

    def overview(self, clock: Clock) -> Overview:
        """The pool and the usage window ending now, in one round trip."""
        wall, shared = self._time_of(clock)
        reply = self._run("USAGE", [wall, shared])
        return Overview(int(reply[3]), codec.usage_summary(reply))

    # -- the ledger ---------------------------------------------------------------------

    def ledger(self, since: float | None = None) -> list[LedgerEntry]:
        if since is None:
            raw = self._command("LRANGE", self._ledger_key, 0, -1)
            return [codec.ledger_entry(item) for item in raw]
        raw = self._run("LEDGER_SINCE", [codec.time_text(since)])
        # When the clock was moved back the script returns everything: filter here.
        return [entry for entry in map(codec.ledger_entry, raw) if entry.at >= since]

    def ledger_tail(self, limit: int) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        raw = self._command("LRANGE", self._ledger_key, -limit, -1)
        return [codec.ledger_entry(item) for item in raw]

    def ledger_page(self, cursor: int | None, limit: int) -> Page[LedgerEntry]:
        """Newest first, from position ``cursor`` (the newest entry when None) down."""
        limit = page_size(limit)
        if cursor is None:
            newest = [pack("LLEN", self._ledger_key), pack("LRANGE", self._ledger_key, -limit, -1)]
            size, raw = self._transaction(newest)
            lowest = size - len(raw)
        else:
            lowest = max(0, cursor - limit + 1)
            raw = self._command("LRANGE", self._ledger_key, lowest, cursor)
        entries = [codec.ledger_entry(item) for item in reversed(raw)]
        return Page(entries, lowest - 1 if entries and lowest > 0 else None)

    def ledger_size(self) -> int:
        return int(self._command("LLEN", self._ledger_key))

    # -- idempotency keys -------------------------------------------------------------------

    def idempotency_keys(self, now: float) -> list[IdempotencyView]:
        views: list[IdempotencyView] = []
        cursor: int | None = 0
        while cursor is not None:
            page = self.idempotency_key_page(now, cursor, 1000)
            views += page.items
            cursor = page.next_cursor
        return views

    def idempotency_key_page(self, now: float, cursor: int | None, limit: int) -> Page[IdempotencyView]:
        return _keys_page(self._run("KEYS_PAGE", [codec.time_text(now), "0", cursor or 0, page_size(limit)]))

    def idempotency_key_count(self) -> int:
        return int(self._command("ZCARD", self._idem_key))

    def slices(self, clock: Clock, rows: int) -> Slices:
        """Every read in one MULTI pipeline: one round trip, one instant."""
        rows = page_size(rows)
        wall, shared = self._time_of(clock)
        run = self.script_commands
        usage, users, keys, ledger_size, ledger, key_count = self._transaction(
            [
                run["USAGE"].pack(wall, shared),
                run["USERS_PAGE"].pack(0, rows),
                run["KEYS_PAGE"].pack(wall, shared, 0, rows),
                pack("LLEN", self._ledger_key),
                pack("LRANGE", self._ledger_key, -rows, -1),
                pack("ZCARD", self._idem_key),
            ]
        )
        entries = [codec.ledger_entry(item) for item in reversed(ledger)]
        lowest = ledger_size - len(entries)
        return Slices(
            now=float(usage[0]),
            overview=Overview(int(usage[3]), codec.usage_summary(usage)),
            users=_users_page(users, 0),
            user_count=int(users[0]),
            ledger=Page(entries, lowest - 1 if entries and lowest > 0 else None),
            ledger_size=int(ledger_size),
            keys=_keys_page(keys),
            key_count=int(key_count),
        )

    def conservation(self) -> Conservation:
        # One MULTI: the ledger and the balances are read at the same instant.
        raw_ledger, pool, users = self._transaction(
            [pack("LRANGE", self._ledger_key, 0, -1), pack("GET", self._pool_key), pack("HGETALL", self._users_key)]
        )
        return check_conservation(map(codec.ledger_entry, raw_ledger), int(pool or 0), _balances(users))

    # -- the shared clock (see redis_clock.RedisClock) ---------------------------------

    def clock_offset(self) -> float:
        return float(self._command("GET", self.clock_key) or 0.0)

    def advance_clock_offset(self, seconds: float) -> float:
        return float(self._command("INCRBYFLOAT", self.clock_key, repr(seconds)))

    def set_clock_offset(self, offset: float) -> None:
        self._command("SET", self.clock_key, repr(offset))

    # -- plumbing -----------------------------------------------------------------------

    def _time_of(self, clock: Clock) -> tuple[str, str]:
        """What a script needs to read ``clock`` inside its own step: wall time, and whether
        to add the offset this namespace keeps (saving a round trip to read it first)."""
        if clock.offset_kept_by(self):
            return codec.time_text(time.time()), "1"
        return codec.time_text(clock.now()), "0"

    def _command(self, *args: Any) -> Any:
        return self._call(lambda: self.link.call(pack(*args)))

    def _transaction(self, commands: list[bytes]) -> list[Any]:
        """Commands run as one MULTI; a script among them is loaded first if Redis lacks it
        (the MULTI holds only reads and scripts that read, so running it again is safe)."""

        def run() -> list[Any]:
            replies = self.link.transaction(commands)
            for reply in replies:
                if isinstance(reply, redis.ResponseError):
                    raise reply
            return replies

        return self._call(lambda: self._with_scripts_loaded(run))

    def _with_scripts_loaded(self, operation: Callable[[], T]) -> T:
        # Scripts run by SHA only: on first use, and after a Redis restart, they are sent.
        # NOSCRIPT means the script did not run, so running it again is safe.
        try:
            return operation()
        except redis.exceptions.NoScriptError:
            self.link.call_many([pack("SCRIPT", "LOAD", body) for body in self._script_bodies.values()])
            return operation()

    def _release(self, scope: str, key: str, owner: str) -> None:
        self._run("RELEASE", [codec.member(scope, key), owner], flush_pending=False)

    def _run(self, name: str, args: list[Any], *, flush_pending: bool = True) -> Any:
        """Run a script (by SHA); a failure it names by reply tag is raised as that error type."""
        command = self.script_commands[name].pack(*args)
        call = lambda: self._with_scripts_loaded(lambda: self.link.call(command))  # noqa: E731
        reply = self._call(call, flush_pending=flush_pending)
        if isinstance(reply, list) and reply and is_store_error_reply(reply[0]):
            raise store_error(reply)
        return reply

    def _call(self, operation: Callable[[], T], *, flush_pending: bool = True) -> T:
        if flush_pending and self._pending_releases:
            self._flush_pending_releases()
        return operation()  # the link raises StoreUnavailable when Redis does not answer

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


def _users_page(reply: list[Any], start: int) -> Page[tuple[str, int]]:
    total, flat = int(reply[0]), reply[1:]
    items = [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]
    end = start + len(items)
    return Page(items, end if items and end < total else None)


def _keys_page(reply: list[Any]) -> Page[IdempotencyView]:
    rows = reply[1:]
    views = [codec.key_view(*rows[i : i + 4]) for i in range(0, len(rows), 4)]
    return Page(views, int(float(reply[0])) if reply[0] else None)


def _balances(reply: dict[str, str] | list[str]) -> dict[str, int]:
    """HGETALL of the balances: a map under RESP3, a flat list of pairs under RESP2."""
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
    return {user_id: int(balance) for user_id, balance in pairs}


def _sha(script: str) -> str:
    """The SHA1 Redis names a script by (EVALSHA), computed here rather than asked for."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


def _check_amount(amount: int) -> None:
    if not 0 <= amount <= MAX_SAFE_MICRODOLLARS:
        raise AmountOutOfRange()
