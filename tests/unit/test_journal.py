"""The request journal's domain: the ring, its ids and its queries, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.domain.journal import (
    NEW,
    NO_KEY,
    JournalEntry,
    JournalQuery,
    MemoryJournal,
    RequestJournal,
    find,
)
from mockserver.domain.redis_journal import decode, encode

from ..private_redis import shared_redis


def entry(
    n: int = 0,
    *,
    operation_id: str | None = "grantUserBalance",
    status: int = 200,
    at: float = 1_800_000_000.0,
    request_body: bytes = b'{"amount": 1.00}',
) -> JournalEntry:
    return JournalEntry(
        at=at + n,
        method="POST",
        path="/v1/funding/grant",
        query="",
        operation_id=operation_id,
        status=status,
        duration_ms=1.5,
        idempotency=NEW if status == 200 else NO_KEY,
        headers=(("HTTP_IDEMPOTENCY_KEY", f"k-{n}"),),
        request_body=request_body,
        request_size=len(request_body),
        response_body=b"{}",
        response_size=2,
        problem=None if status < 400 else "bad_request: Missing required fields: amount",
    )


@pytest.fixture(params=["memory", "redis"])
def make_journal(request: pytest.FixtureRequest) -> Iterator[Callable[[int], RequestJournal]]:
    if request.param == "memory":
        yield MemoryJournal
        return
    from mockserver.domain.redis_journal import RedisJournal

    server = shared_redis()  # skips (fails in CI) when redis-server is not installed
    journals: list[RedisJournal] = []

    def make(capacity: int) -> RequestJournal:
        journal = RedisJournal(server.url, prefix=f"test-{uuid.uuid4().hex[:8]}:", capacity=capacity)
        journals.append(journal)
        return journal

    yield make
    for journal in journals:
        journal.close()


def test_newest_first_with_growing_ids(make_journal):
    journal = make_journal(10)
    for n in range(3):
        journal.append(entry(n))
    records = list(journal.newest_first())
    assert [r.entry.headers[0][1] for r in records] == ["k-2", "k-1", "k-0"]
    assert records[0].id > records[1].id > records[2].id
    assert records[0].entry == entry(2)  # every field comes back as it went in


def test_the_ring_keeps_only_the_newest(make_journal):
    journal = make_journal(3)
    for n in range(7):
        journal.append(entry(n))
    assert journal.count() == 3
    assert [r.entry.at for r in journal.newest_first()] == [entry(n).at for n in (6, 5, 4)]


def test_clear_empties_it_and_ids_keep_growing(make_journal):
    journal = make_journal(5)
    journal.append(entry(0))
    before = next(journal.newest_first()).id
    journal.clear()
    assert journal.count() == 0 and list(journal.newest_first()) == []
    journal.append(entry(1))
    assert next(journal.newest_first()).id > before  # a cursor from before never meets new records


def test_a_plain_tuple_in_field_order_is_an_entry(make_journal):
    # The recorder hands over plain tuples (cheaper than building the named tuple per request).
    journal = make_journal(5)
    journal.append(tuple(entry(0)))
    assert next(journal.newest_first()).entry == entry(0)


def test_redis_reads_in_chunks_without_repeats_while_records_arrive():
    from mockserver.domain.redis_journal import RedisJournal

    journal = RedisJournal(shared_redis().url, prefix=f"test-{uuid.uuid4().hex[:8]}:", capacity=1000)
    try:
        for n in range(450):  # more than two chunks
            journal.append(entry(n))
        reader = journal.newest_first()
        first = [next(reader) for _ in range(250)]
        for n in range(450, 480):  # pushed mid-read: the rest of the list shifts by 30
            journal.append(entry(n))
        ids = [r.id for r in first] + [r.id for r in reader]
        assert len(ids) == len(set(ids)) == 450  # nothing twice, nothing missed
        assert ids == sorted(ids, reverse=True)
    finally:
        journal.close()


def test_redis_append_survives_an_absent_redis():
    from mockserver.domain.redis_journal import RedisJournal

    journal = RedisJournal("redis://127.0.0.1:1/0", prefix="x:", capacity=5, connect_timeout=0.2)
    journal.append(entry(0))  # must not raise: recording never fails the request
    assert journal.lost == 1


def test_find_filters_and_pages():
    records = list(_filled(MemoryJournal(100), 12).newest_first())
    page = find(records, JournalQuery(status=400, limit=3))
    assert [r.entry.status for r in page.records] == [400, 400, 400]
    assert page.next_cursor == page.records[-1].id
    rest = find(records, JournalQuery(status=400, limit=3, before_id=page.next_cursor))
    assert {r.id for r in rest.records}.isdisjoint(r.id for r in page.records)
    everything = find(records, JournalQuery(status=400, limit=100))
    assert everything.next_cursor is None and len(everything.records) == 4
    assert [r.id for r in page.records + rest.records] == [r.id for r in everything.records][:6]


def test_find_by_operation_class_and_time():
    records = list(_filled(MemoryJournal(100), 12).newest_first())
    assert {r.entry.operation_id for r in find(records, JournalQuery(operation_id="getMe")).records} == {"getMe"}
    assert all(r.entry.status // 100 == 4 for r in find(records, JournalQuery(status="4xx")).records)
    since = entry(9).at
    assert [r.entry.at for r in find(records, JournalQuery(since=since)).records] == [entry(n).at for n in (11, 10, 9)]


def test_find_says_there_is_no_next_page_when_exactly_the_limit_matches():
    records = list(_filled(MemoryJournal(100), 3).newest_first())
    assert find(records, JournalQuery(limit=3)).next_cursor is None


def _filled(journal: RequestJournal, count: int) -> RequestJournal:
    for n in range(count):
        status = 400 if n % 3 == 0 else 200
        journal.append(entry(n, status=status, operation_id="getMe" if n % 4 == 0 else "grantUserBalance"))
    return journal


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=64),
    path=st.text(max_size=20),
    header=st.text(max_size=20),
    problem=st.none() | st.text(max_size=20),
)
def test_the_redis_encoding_round_trips_any_bytes_and_text(body, path, header, problem):
    fields = entry(0)._replace(
        path=path, request_body=body, response_body=body[::-1], headers=(("HTTP_X", header),), problem=problem
    )
    record = decode("[7," + encode(tuple(fields))[1:])
    assert record.id == 7 and record.entry == fields
