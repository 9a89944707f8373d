"""The Redis store's reads, and the plumbing its writes share: see :mod:`.redis_store`.

Balances, listings a page at a time, the usage window, the dashboard's slices and the
conservation snapshot, each one command, one script or one MULTI (one round trip). Scripts
run by their SHA (EVALSHA) and are sent only when Redis does not have them (first use, a
restart). Commands travel on :mod:`.redis_link`: a connection per thread, each script's
fixed arguments packed once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from . import redis_codec as codec
from . import redis_scripts as scripts
from .clock import Clock
from .errors import is_store_error_reply, store_error
from .ledger import check_conservation
from .records import Conservation, IdempotencyView, LedgerEntry, Page, page_size
from .redis_commands import Command, pack
from .redis_link import RedisLink
from .store import Slices
from .usage import Overview, UsageSummary

T = TypeVar("T")


class RedisReads:
    """Reads of one namespace (``prefix``) on the Redis at ``url``; :class:`~.redis_store.RedisStore`
    adds the writes."""

    def __init__(self, url: str, *, prefix: str, socket_timeout: float, connect_timeout: float) -> None:
        self.url = url
        self.prefix = prefix
        self.link = RedisLink.open(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
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

    def close(self) -> None:
        self.link.close()

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

    def usage(self, since: float, until: float) -> UsageSummary:
        reply = self._run("USAGE", ["0", "0", codec.time_text(since), codec.time_text(until)])
        return codec.usage_summary(reply)

    def overview(self, clock: Clock) -> Overview:
        """The pool and the usage window ending now, in one round trip."""
        wall, shared = self._time_of(clock)
        reply = self._run("USAGE", [wall, shared])
        return Overview(int(reply[3]), codec.usage_summary(reply))

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

    def clock_offset(self) -> float:
        return float(self._command("GET", self.clock_key) or 0.0)

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

    def _run(self, name: str, args: list[Any], *, flush_pending: bool = True) -> Any:
        """Run a script (by SHA); a failure it names by reply tag is raised as that error type."""
        command = self.script_commands[name].pack(*args)
        call = lambda: self._with_scripts_loaded(lambda: self.link.call(command))  # noqa: E731
        reply = self._call(call, flush_pending=flush_pending)
        if isinstance(reply, list) and reply and is_store_error_reply(reply[0]):
            raise store_error(reply)
        return reply

    def _call(self, operation: Callable[[], T], *, flush_pending: bool = True) -> T:
        """Every exchange with Redis passes here (the store first resends failed releases);
        the link raises StoreUnavailable when Redis does not answer."""
        return operation()


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
