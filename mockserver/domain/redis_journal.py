"""The request journal on Redis: one list shared by every worker, newest record first.

Appending is one script call: ``INCR`` gives the record its id, ``LPUSH`` adds it, ``LTRIM``
keeps the newest ``capacity``. Reading walks the list in chunks from the head. Records
pushed meanwhile shift the others towards the tail, so a chunk may show a record again; as
ids fall from head to tail, a record at or above the last id read is such a repeat and is
skipped. Nothing is read twice, and nothing is missed but records trimmed away meanwhile.

A journal must never fail the request it records: when Redis is away (or refuses) an append
is dropped and counted (``lost``), and the request's own answer says what happened to the
state. An append's reply is read before the request's answer leaves, so a read made after a
client saw an answer finds that answer's record, whichever worker answered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import redis

from .errors import StoreUnavailable
from .journal import JournalEntry, JournalRecord
from .redis_link import Command, RedisLink, pack

log = logging.getLogger("quota_mock")

_APPEND = r"""
local id = redis.call('INCR', KEYS[2])
redis.call('LPUSH', KEYS[1], '[' .. id .. ',' .. ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return id
"""
_CHUNK = 200


class RedisJournal:
    """The :class:`~.journal.RequestJournal` protocol on a Redis list under ``prefix``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        capacity: int,
        socket_timeout: float = 2.0,
        connect_timeout: float = 0.5,
    ) -> None:
        if capacity < 1:
            raise ValueError("a journal holds at least one record")
        self.capacity = capacity
        self.lost = 0  # appends dropped because Redis did not answer, or refused them
        self._list_key = prefix + "journal"
        self._id_key = prefix + "journal:id"
        self._link = RedisLink.open(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        # EVAL with the script's text (Redis caches it by its SHA): no NOSCRIPT after a restart.
        self._append = Command("EVAL", _APPEND, 2, self._list_key, self._id_key)

    def close(self) -> None:
        self._link.close()

    def append(self, entry: tuple[Any, ...]) -> None:
        try:
            self._link.call(self._append.pack(encode(entry)[1:], self.capacity))
        except (StoreUnavailable, redis.ResponseError) as exc:
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                why = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
                log.warning("request journal: %d record(s) lost, Redis did not take them (%s)", self.lost, why)

    def newest_first(self) -> Iterator[JournalRecord]:
        below: int | None = None
        start = 0
        while True:
            chunk = self._link.call(pack("LRANGE", self._list_key, start, start + _CHUNK - 1))
            if not chunk:
                return
            for raw in chunk:
                record = decode(raw)
                if below is None or record.id < below:
                    below = record.id
                    yield record
            start += len(chunk)

    def clear(self) -> None:
        # The id counter stays: a cursor handed out before the clear never points at new records.
        self._link.call(pack("DEL", self._list_key))

    def count(self) -> int:
        return int(self._link.call(pack("LLEN", self._list_key)))


def encode(fields: tuple[Any, ...]) -> str:
    """An entry as a JSON array (ASCII only: bodies keep any byte through surrogate escapes)."""
    entry = JournalEntry._make(fields)
    return json.dumps(
        [
            entry.at,
            entry.method,
            entry.path,
            entry.query,
            entry.operation_id,
            entry.status,
            entry.duration_ms,
            entry.idempotency,
            entry.headers,
            entry.request_body.decode("utf-8", "surrogateescape"),
            entry.request_size,
            entry.response_body.decode("utf-8", "surrogateescape"),
            entry.response_size,
            entry.problem,
            entry.dropped,
        ],
        separators=(",", ":"),
    )


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
