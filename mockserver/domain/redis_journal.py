"""The request journal on Redis: one sorted set shared by every worker, scored by record id.

A request's journal record costs it no round trip of its own when the request talks to Redis
anyway (the Redis store's grants, charges, reads):

1. when the request arrives, :meth:`RedisJournal.begin` gives the link a rider: ``INCR`` of
   the id counter goes out in the same write as the request's first command, so the record's
   id is reserved before the answer leaves;
2. once the answer is built, the record is *posted* under that id (``ZADD``; every
   ``TRIM_EVERY``-th id also trims the set to the newest ``capacity``, and readers take no
   more than that): not waited for, and under load carried by the thread's next request
   (:meth:`~.redis_link.RedisLink.post`).

A request that never reached Redis (``GET /v1/packages``, a refused body) reserves and adds
its record in one call, and waits for it, as every request once did.

Reading stays exact: a client that saw an answer and then reads the journal, through any
worker, finds that answer's record. Every id up to the counter was reserved by an answer that
may already be out, so a reader first waits until each reserved id still inside the ring is
there (posted records land within milliseconds). An id that never comes (a worker that died
between its reply and its record, a record Redis refused) is given up after
``SETTLE_SECONDS`` and marked settled, so no later reader waits for it again. A request that
waits on purpose (a held grant, a simulated latency) gives its id back first
(:meth:`RedisJournal.pause`: the id is voided, and its next command reserves another), so
readers meanwhile are not held up by it.

A journal must never fail the request it records: when Redis is away (or refuses) an append
is dropped and counted (``lost``), and the request's own answer says what happened to the
state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from .errors import StoreUnavailable
from .journal import JournalEntry, JournalRecord
from .redis_commands import Command, pack
from .redis_link import RedisLink

log = logging.getLogger("quota_mock")

# KEYS: the set, the id counter. ARGV: the record's id (empty: reserve one now), its JSON
# fields after the id, the capacity. A member starts with its id, so no two are equal.
_ADD = r"""
local id = ARGV[1]
if id == '' then id = redis.call('INCR', KEYS[2]) end
redis.call('ZADD', KEYS[1], id, '[' .. id .. ',' .. ARGV[2])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
return id
"""
# KEYS: the set, the id counter, the settled mark, the voided ids. ARGV: the capacity, and the
# highest id to look at (empty: the counter). Returns that id and how many reserved ids up to
# it the ring should hold but does not (yet).
_MISSING = r"""
local top = tonumber(ARGV[2]) or tonumber(redis.call('GET', KEYS[2]) or '0')
local low = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), top - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  -- a full ring: a record below its oldest falls outside the newest ARGV[1], which readers take
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  low = math.max(low, tonumber(oldest[2]) - 1)
end
if low >= top then return {top, 0} end
local have = redis.call('ZCOUNT', KEYS[1], '(' .. low, top) + redis.call('ZCOUNT', KEYS[4], '(' .. low, top)
return {top, top - low - have}
"""
# KEYS: the settled mark. ARGV: the id up to which no reader waits any more.
_SETTLE = r"""
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
"""
# KEYS: the set, the id counter, the settled mark, the voided ids: ids reserved so far are not
# waited for.
_CLEAR = r"""
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('SET', KEYS[3], redis.call('GET', KEYS[2]) or '0')
"""
_CHUNK = 200
# A record posted under a reserved id trims the set back to the capacity only when its id is a
# multiple of this: a trim per record cost Redis a command and the thread a reply to read. The
# set holds at most about this many records past the capacity; readers never see them.
TRIM_EVERY = 64
SETTLE_SECONDS = 0.5  # how long a reader waits for a reserved record before giving it up
QUIET_AFTER_FAILURE_SECONDS = 1.0  # records that would need a round trip of their own are dropped


class RedisJournal:
    """The :class:`~.journal.RequestJournal` protocol on a Redis sorted set under ``prefix``.

    ``link``: the Redis store's, so that a record's id rides with the request's own commands
    (without one, the journal opens a link of its own to ``url``).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        capacity: int,
        socket_timeout: float = 2.0,
        connect_timeout: float = 0.5,
        link: RedisLink | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("a journal holds at least one record")
        self.capacity = capacity
        self._lost = 0  # appends dropped because Redis did not answer, or refused them
        keys = (prefix + "journal:records", prefix + "journal:id", prefix + "journal:settled", prefix + "journal:void")
        self._set_key = keys[0]
        self._owns_link = link is None
        self._link = link or RedisLink.open(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        # EVAL with the script's text (Redis caches it by its SHA): no NOSCRIPT after a restart.
        self._reserve = pack("INCR", keys[1])
        self._add = Command("EVAL", _ADD, 2, *keys[:2])
        # A record under an id already reserved: plain commands, cheaper for Redis than a script.
        self._add_reserved = Command("ZADD", keys[0])
        self._trim = pack("ZREMRANGEBYRANK", keys[0], 0, -capacity - 1)
        # An id given back by a request that waits on purpose (pause): no record will come.
        self._void = Command("ZADD", keys[3])
        self._trim_void = pack("ZREMRANGEBYRANK", keys[3], 0, -capacity - 1)
        self._missing = Command("EVAL", _MISSING, 4, *keys, capacity)
        self._settle = Command("EVAL", _SETTLE, 1, keys[2])
        self._clear = Command("EVAL", _CLEAR, 4, *keys).pack()

    @property
    def lost(self) -> int:
        """Records Redis did not confirm: appends that failed, and posted ones it refused or whose
        reply a failure took away (which may have landed)."""
        return self._lost + self._link.failed_posts

    def close(self) -> None:
        if self._owns_link:
            self._link.close()

    def begin(self) -> None:
        """A request arrived on this thread: its record's id rides with its first command."""
        self._link.ride_along(self._reserve)

    def pause(self) -> None:
        """The request waits on purpose: it gives back the id it reserved (void), so that readers
        meanwhile do not wait for it, and reserves another with its next command."""
        waiting = self._link.riding()
        went, reserved = self._link.ridden()
        if went and isinstance(reserved, int):
            self._link.post(self._void.pack(reserved, reserved), self._trim_void)
        if went or waiting:  # a request the journal records (begin() armed its rider)
            self._link.ride_along(self._reserve)

    def append(self, entry: tuple[Any, ...]) -> None:
        fields = encode(entry)[1:]
        went, reserved = self._link.ridden()
        try:
            if went and isinstance(reserved, int):
                add = self._add_reserved.pack(reserved, f"[{reserved},{fields}")
                if reserved % TRIM_EVERY:
                    self._link.post(add)
                else:
                    self._link.post(add, self._trim)
            elif time.monotonic() - self._link.last_failure < QUIET_AFTER_FAILURE_SECONDS:
                # Redis failed a moment ago (this very request's command, often): the record is
                # dropped rather than make the answer wait out a second timeout.
                raise StoreUnavailable() from ConnectionError("Redis failed less than a second ago")
            else:
                self._link.call(self._add.pack("", fields, self.capacity))
        except (StoreUnavailable, redis.ResponseError) as exc:
            self._lost += 1
            if self._lost == 1 or self._lost % 1000 == 0:
                why = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
                log.warning("request journal: %d record(s) lost, Redis did not take them (%s)", self._lost, why)

    def newest_first(self) -> Iterator[JournalRecord]:
        self._await_reserved()
        below = "+inf"
        left = self.capacity  # the set may hold a few more than that until its next trim
        while left > 0:
            chunk = self._link.call(
                pack("ZREVRANGEBYSCORE", self._set_key, below, "-inf", "LIMIT", 0, min(_CHUNK, left))
            )
            if not chunk:
                return
            for raw in chunk:
                record = decode(raw)
                yield record
            left -= len(chunk)
            below = f"({record.id}"

    def clear(self) -> None:
        # The id counter stays: a cursor handed out before the clear never points at new records.
        self._link.call(self._clear)

    def count(self) -> int:
        return min(int(self._link.call(pack("ZCARD", self._set_key))), self.capacity)

    def _await_reserved(self) -> None:
        """Wait until every reserved id the ring should hold is there, or give the rest up."""
        deadline = time.monotonic() + SETTLE_SECONDS
        pause = 0.0005
        top, missing = self._link.call(self._missing.pack(""))
        if missing:  # some may be this process's, still queued on their threads: send them now
            self._link.send_queued()
            _, missing = self._link.call(self._missing.pack(top))
        while missing:  # only ids reserved before this read began: later ones are not awaited
            if time.monotonic() > deadline:
                self._link.call(self._settle.pack(top))
                log.warning("request journal: %d record(s) reserved but never written, given up", missing)
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
            _, missing = self._link.call(self._missing.pack(top))


def encode(fields: tuple[Any, ...]) -> str:
    """An entry as a JSON array in :class:`JournalEntry`'s field order (ASCII only: bodies keep
    any byte through surrogate escapes). It runs on every request's path: the fields are taken
    by position, the two bodies decoded in place."""
    if len(fields) != _FIELDS:  # a short tuple leaves its defaults out, as JournalEntry allows
        fields = JournalEntry(*fields)
    return _dumps(
        [
            *fields[:_REQUEST_BODY],
            fields[_REQUEST_BODY].decode("utf-8", "surrogateescape"),
            fields[_REQUEST_BODY + 1],
            fields[_RESPONSE_BODY].decode("utf-8", "surrogateescape"),
            *fields[_RESPONSE_BODY + 1 :],
        ]
    )


_FIELDS = len(JournalEntry._fields)
_REQUEST_BODY = JournalEntry._fields.index("request_body")
_RESPONSE_BODY = JournalEntry._fields.index("response_body")
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def decode(raw: str) -> JournalRecord:
    """A record as the append script stored it: the id, then :func:`encode`'s fields."""
    (
        record_id,
        at,
        method,
        path,
        query,
        operation_id,
        status,
        duration_ms,
        idempotency,
        headers,
        request_body,
        request_size,
        response_body,
        response_size,
        problem,
        dropped,
    ) = json.loads(raw)
    entry = JournalEntry(
        at=at,
        method=method,
        path=path,
        query=query,
        operation_id=operation_id,
        status=status,
        duration_ms=duration_ms,
        idempotency=idempotency,
        headers=tuple((name, value) for name, value in headers),
        request_body=request_body.encode("utf-8", "surrogateescape"),
        request_size=request_size,
        response_body=response_body.encode("utf-8", "surrogateescape"),
        response_size=response_size,
        problem=problem,
        dropped=dropped,
    )
    return JournalRecord(record_id, entry)
