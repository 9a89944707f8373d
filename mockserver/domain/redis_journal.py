"""The request journal on Redis: one list shared by every worker, newest record first.

Appending is one script call: ``INCR`` gives the record its id, ``LPUSH`` adds it, ``LTRIM``
keeps the newest ``capacity``. Reading walks the list in chunks from the head. Records
pushed meanwhile shift the others towards the tail, so a chunk may show a record again; as
ids fall from head to tail, a record at or above the last id read is such a repeat and is
skipped. Nothing is read twice, and nothing is missed but records trimmed away meanwhile.

A journal must never fail the request it records: when Redis is away an append is dropped
and counted (``lost``), and the request's own answer says what happened to the state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import StoreUnavailable
from .journal import JournalEntry, JournalRecord

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
        self.lost = 0  # appends dropped because Redis did not answer
        self._list_key = prefix + "journal"
        self._id_key = prefix + "journal:id"
        # No retries, as for the store: an append whose reply was lost must not be doubled.
        self._redis = redis.Redis(
            connection_pool=redis.ConnectionPool.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                decode_responses=True,
            )
        )
        self._append = self._redis.register_script(_APPEND)

    def close(self) -> None:
        self._redis.connection_pool.disconnect()

    def append(self, entry: tuple[Any, ...]) -> None:
        try:
            self._append(keys=[self._list_key, self._id_key], args=[encode(entry)[1:], self.capacity])
        except redis.RedisError as exc:
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                log.warning("request journal: %d record(s) lost, Redis did not answer (%s)", self.lost, exc)

    def newest_first(self) -> Iterator[JournalRecord]:
        below: int | None = None
        start = 0
        while True:
            chunk = self._call(lambda start=start: self._redis.lrange(self._list_key, start, start + _CHUNK - 1))
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
        self._call(lambda: self._redis.delete(self._list_key))

    def count(self) -> int:
        return int(self._call(lambda: self._redis.llen(self._list_key)))

    def _call(self, operation: Any) -> Any:
        try:
            return operation()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._redis.connection_pool.disconnect(inuse_connections=False)
            raise StoreUnavailable() from exc


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
