"""The request journal: the last requests the mock answered, in a bounded ring, newest first.

What WireMock's request journal is to its verification API: tests and people ask what a
client actually sent and what it got back. The web layer records one :class:`JournalEntry`
per answered request; a journal keeps the newest ``capacity`` of them and numbers them with
an id that only grows, which is also the pagination cursor (ids survive ``clear``).

Recording sits on every request's path, so an entry holds raw values (bytes, tuples) and is
turned into JSON only when someone reads it. Two journals implement one protocol: a ring in
this process (:class:`MemoryJournal`) and a Redis list shared by every worker
(:class:`~.redis_journal.RedisJournal`); the query logic below serves both.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

DEFAULT_CAPACITY = 5000
DEFAULT_BODY_LIMIT = 4096  # bytes kept of each request and response body
MAX_CAPACITY = 1_000_000
MAX_PAGE = 1000

# What the idempotency layer decided for a request (the ``idempotency`` field).
NEW = "new"  # first use of the key: the grant applied and its result is stored
REPLAYED = "replayed"  # same key, same body: the stored result was sent again
CONFLICT = "conflict"  # same key, different body: refused (idempotency_key_reused)
IN_FLIGHT = "in_flight"  # same key while its first request was running: refused
NO_KEY = "none"  # no Idempotency-Key, or a failure that left no record (the key is free)
IDEMPOTENCY_OUTCOMES = (NEW, REPLAYED, CONFLICT, IN_FLIGHT, NO_KEY)


class JournalEntry(NamedTuple):
    """One answered request, as recorded (raw values; the web layer presents them).

    Plain tuples of plain values, on purpose: the garbage collector stops tracking such
    tuples, so a full ring adds nothing to each collection (see ``idempotency.py``).
    """

    at: float  # wall-clock epoch seconds when the request arrived
    method: str
    path: str
    query: str  # the raw query string, without "?"
    operation_id: str | None  # None: no operation of the contract (unknown route, preflight)
    status: int
    duration_ms: float
    idempotency: str  # one of IDEMPOTENCY_OUTCOMES
    # (name, value) with names in CGI form as WSGI gives them (HTTP_USER_AGENT, CONTENT_TYPE);
    # credentials already redacted.
    headers: tuple[tuple[str, str], ...]
    request_body: bytes  # the first ``body_limit`` bytes
    request_size: int  # the whole body's size in bytes
    response_body: bytes
    response_size: int
    problem: str | None = None  # a refused request: the rule or field, in words
    dropped: bool = False  # a fault rule closed the connection: the client saw no answer


class JournalRecord(NamedTuple):
    id: int
    entry: JournalEntry


class RequestJournal(Protocol):
    """A bounded journal; appending never fails the request being recorded.

    ``append`` takes a :class:`JournalEntry` or a plain tuple of its fields in order (the
    recorder's, which saves building the named tuple on every request).
    """

    capacity: int

    def begin(self) -> None:
        """A request this thread will record has arrived (a journal may prepare its record)."""

    def pause(self) -> None:
        """The request is about to wait on purpose (a held grant, a simulated latency): a
        journal that keeps readers waiting for prepared records lets them go on meanwhile."""

    def append(self, entry: tuple[Any, ...]) -> None: ...

    def newest_first(self) -> Iterator[JournalRecord]:
        """Every record, newest first (a snapshot may be read lazily, in chunks)."""

    def clear(self) -> None: ...

    def count(self) -> int: ...


class MemoryJournal:
    """A ring in this process: a deque that forgets its oldest record past ``capacity``."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a journal holds at least one record")
        self.capacity = capacity
        self._records: deque[tuple[int, tuple[Any, ...]]] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def begin(self) -> None:
        pass  # ids are given in order of appending, at no cost

    def pause(self) -> None:
        pass  # no reader ever waits for a record here

    def append(self, entry: tuple[Any, ...]) -> None:
        with self._lock:  # the id and the position must agree, across threads
            self._records.append((next(self._ids), entry))

    def newest_first(self) -> Iterator[JournalRecord]:
        with self._lock:
            snapshot = list(self._records)
        return (JournalRecord(record_id, JournalEntry._make(fields)) for record_id, fields in reversed(snapshot))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def count(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class JournalQuery:
    """Filters and a page: all filters must hold; ``before_id`` is the cursor of a next page."""

    operation_id: str | None = None
    status: int | str | None = None  # 402, or a class such as "4xx"
    since: float | None = None  # epoch seconds: records that arrived at or after it
    before_id: int | None = None
    limit: int = 100

    def matches(self, record: JournalRecord) -> bool:
        entry = record.entry
        if self.before_id is not None and record.id >= self.before_id:
            return False
        if self.operation_id is not None and entry.operation_id != self.operation_id:
            return False
        if self.since is not None and entry.at < self.since:
            return False
        return self.status is None or status_matches(entry.status, self.status)


def status_matches(status: int, wanted: int | str) -> bool:
    """``wanted`` is a status (``402``) or a class (``"4xx"``)."""
    if isinstance(wanted, int):
        return status == wanted
    return str(status)[0] == wanted[0]


@dataclass(frozen=True)
class JournalPage:
    records: list[JournalRecord]
    next_cursor: int | None  # pass as ``before_id`` for the page after this one


def find(records: Iterable[JournalRecord], query: JournalQuery) -> JournalPage:
    """The newest ``query.limit`` records that match, and a cursor when more match."""
    page: list[JournalRecord] = []
    for record in records:
        if not query.matches(record):
            continue
        if len(page) == query.limit:  # one more matches: there is a next page
            return JournalPage(page, page[-1].id)
        page.append(record)
    return JournalPage(page, None)
