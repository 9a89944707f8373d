"""The journal's record costs a Redis request no round trip of its own (mockserver.domain
.redis_journal): its id rides with the request's first command, the record is posted without
waiting, and a reader still finds every answer already given, waiting for reserved records
that have not landed and giving up, once, those that never will."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis

from mockserver import create_app, mock_state
from mockserver.domain import redis_journal, redis_link
from mockserver.domain.redis_commands import pack
from mockserver.domain.redis_journal import RedisJournal
from mockserver.domain.redis_link import RedisLink

from ..unit.test_journal import entry
from .conftest import AUTH

GRANT = {"external_user_id": "rider_user", "amount": 0.01}


def link_on(url: str) -> RedisLink:
    return RedisLink(redis.ConnectionPool.from_url(url, decode_responses=True, socket_timeout=2))


def test_a_rider_goes_out_with_the_next_call_and_only_then(redis_server):
    link = link_on(redis_server.url)
    link.ride_along(pack("INCR", "rides"))
    assert link.ridden() == (False, None)  # no call went out: the rider is dropped
    assert link.call(pack("GET", "rides")) is None
    link.ride_along(pack("INCR", "rides"))
    assert link.call(pack("GET", "rides")) == "1"  # the rider ran first; the call has its own reply
    assert link.ridden() == (True, 1)
    assert link.ridden() == (False, None)  # forgotten once taken
    assert link.call(pack("GET", "rides")) == "1"  # and it went out once
    link.close()


def test_a_posted_command_runs_and_a_refusal_is_counted_before_the_next_reply(redis_server):
    link = link_on(redis_server.url)
    link.call(pack("SET", "text", "x"))
    link.post(pack("INCR", "posted"))
    link.post(pack("LPUSH", "text", "1"))  # WRONGTYPE, read later
    assert link.call(pack("GET", "posted")) == "1"  # the posted replies did not take its place
    assert link.failed_posts == 1
    link.close()


def test_a_grant_request_makes_one_exchange_with_redis_and_its_record_is_read_at_once(redis_server, prefix):
    config = {"store": redis_server.url, "store_prefix": prefix}
    writer, reader = create_app(config), create_app(config)  # two workers on one Redis
    link = mock_state(writer).service.store.link
    exchanges, posts = [], []
    call_many, post = link.call_many, link.post
    link.call_many = lambda commands: exchanges.append(len(commands)) or call_many(commands)  # type: ignore[method-assign]
    link.post = lambda *commands: posts.append(commands) or post(*commands)  # type: ignore[method-assign]
    client, other = writer.test_client(), reader.test_client()
    for i in range(100):
        exchanges.clear()
        posts.clear()
        answer = client.post("/v1/funding/grant", json=GRANT, headers={**AUTH, "Idempotency-Key": f"rider-{i}"})
        assert answer.status_code in (200, 201)
        assert len(exchanges) == 1 and len(posts) == 1  # the grant's script, then the posted record
        newest = other.get("/_mock/requests?limit=1").get_json()["requests"][0]
        assert answer.get_json()["ledger_id"] in newest["response"]["body"]
    for app in (writer, reader):
        mock_state(app).service.store.close()


def test_a_request_that_never_reaches_redis_still_waits_for_its_record(redis_server, prefix):
    config = {"store": redis_server.url, "store_prefix": prefix}
    writer, reader = create_app(config).test_client(), create_app(config).test_client()
    for _ in range(50):
        assert writer.get("/v1/packages").status_code == 200  # static: the store is not asked
        assert reader.get("/_mock/requests?limit=1").get_json()["requests"][0]["path"] == "/v1/packages"


def reserve(journal: RedisJournal, link: RedisLink) -> None:
    """What a request does before its answer leaves: begin, then its own command to Redis."""
    journal.begin()
    link.call(pack("PING"))


def test_a_reader_waits_for_a_record_reserved_but_still_on_its_way(redis_server, prefix, monkeypatch):
    # Settling allowed 2 s: the record lands after 0.15 s, and a loaded machine has the rest.
    monkeypatch.setattr(redis_journal, "SETTLE_SECONDS", 2.0)
    link = link_on(redis_server.url)
    writer = RedisJournal(redis_server.url, prefix=prefix, capacity=100, link=link)
    reader = RedisJournal(redis_server.url, prefix=prefix, capacity=100)
    reserved = threading.Event()

    def late() -> None:  # a request's thread: its id is reserved, its record lands late
        reserve(writer, link)
        reserved.set()
        time.sleep(0.15)
        writer.append(entry(7))

    thread = threading.Thread(target=late)
    thread.start()
    reserved.wait()
    started = time.monotonic()
    records = list(reader.newest_first())
    thread.join()
    assert [r.entry for r in records] == [entry(7)]
    assert 0.1 < time.monotonic() - started < redis_journal.SETTLE_SECONDS
    reader.close()
    link.close()


def test_a_record_that_never_comes_is_given_up_once(redis_server, prefix, monkeypatch):
    # A settle time of a second, so that "gave up at once" can allow a loaded machine half
    # a second and still be told from a second wait.
    monkeypatch.setattr(redis_journal, "SETTLE_SECONDS", 1.0)
    link = link_on(redis_server.url)
    journal = RedisJournal(redis_server.url, prefix=prefix, capacity=100, link=link)
    journal.append(entry(0))
    reserve(journal, link)  # and the worker dies before appending
    journal.begin()  # its next request: the reservation is forgotten
    journal.append(entry(1))
    started = time.monotonic()
    assert [r.entry for r in journal.newest_first()] == [entry(1), entry(0)]
    assert time.monotonic() - started >= 1.0  # waited for the missing one
    started = time.monotonic()
    assert len(list(journal.newest_first())) == 2
    assert time.monotonic() - started < 0.5  # given up for good
    link.close()


@pytest.mark.parametrize("capacity", [1, 3])
def test_records_trimmed_from_a_full_ring_are_not_waited_for(redis_server, prefix, capacity, monkeypatch):
    monkeypatch.setattr(redis_journal, "SETTLE_SECONDS", 5.0)
    link = link_on(redis_server.url)
    journal = RedisJournal(redis_server.url, prefix=prefix, capacity=capacity, link=link)
    for n in range(10):
        reserve(journal, link)
        journal.append(entry(n))
    started = time.monotonic()
    assert [r.entry for r in journal.newest_first()] == [entry(n) for n in range(9, 9 - capacity, -1)]
    assert journal.count() == capacity
    assert time.monotonic() - started < 1
    journal.clear()
    started = time.monotonic()
    assert list(journal.newest_first()) == [] and time.monotonic() - started < 1
    link.close()


def test_requests_the_journal_leaves_out_reserve_no_id(redis_server, prefix, monkeypatch):
    # The control API is not recorded: were an id reserved for its requests, every read would
    # wait for records that never come.
    monkeypatch.setattr(redis_journal, "SETTLE_SECONDS", 5.0)
    app = create_app({"store": redis_server.url, "store_prefix": prefix})
    client = app.test_client()
    client.get("/v1/users/left_out/balance", headers=AUTH)
    started = time.monotonic()
    for path in ("/_mock/requests", "//_mock/requests", "/_mock/ledger", "/_mock/state", "/_mock"):
        client.get("/", environ_overrides={"PATH_INFO": path})  # as a server hands it over
    records = client.get("/_mock/requests").get_json()["requests"]
    assert [r["path"] for r in records] == ["/v1/users/left_out/balance"]
    assert time.monotonic() - started < 2
    mock_state(app).service.store.close()


@pytest.mark.parametrize("held_by", ["grant_delay", "latency_rule", "prefer_delay"])
def test_a_request_that_waits_on_purpose_holds_no_reader_up_and_is_found_after_its_answer(
    redis_server, prefix, held_by, monkeypatch, caplog
):
    # The request reserves its record's id with its first command to Redis, then waits (a held
    # grant, a latency fault rule, Prefer: delay=). Readers meanwhile must not wait for that id,
    # and its client, reading right after the answer through another worker, finds the record.
    monkeypatch.setattr(redis_journal, "SETTLE_SECONDS", 2.0)  # a stall would show, not be given up
    hold = 0.6
    config = {"store": redis_server.url, "store_prefix": prefix}
    writer = create_app({**config, "grant_delay_seconds": hold if held_by == "grant_delay" else 0})
    reader = create_app(config)
    headers = {**AUTH, "Idempotency-Key": f"held-{held_by}"}
    if held_by == "latency_rule":
        rule = {"operation_id": "grantUserBalance", "action": "latency", "latency_ms": int(hold * 1000)}
        assert writer.test_client().post("/_mock/faults", json=rule).status_code == 201
    if held_by == "prefer_delay":
        headers["Prefer"] = f"delay={int(hold * 1000)}"
    found = {}

    def client() -> None:
        answer = writer.test_client().post("/v1/funding/grant", json=GRANT, headers=headers)
        records = reader.test_client().get("/_mock/requests?limit=3").get_json()["requests"]
        found["status"] = answer.status_code
        found["it"] = any(answer.get_json()["ledger_id"] in r["response"]["body"] for r in records)

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.2)  # it has reserved its id and waits
    started = time.monotonic()
    reader.test_client().get("/_mock/requests?limit=1")  # the dashboard, say
    waited = time.monotonic() - started
    thread.join()
    assert found == {"status": 200, "it": True}
    assert waited < 0.3, f"a reader waited {waited:.2f} s for a request that was holding on purpose"
    assert "given up" not in caplog.text
    for app in (writer, reader):
        mock_state(app).service.store.close()


def test_a_pause_outside_a_recorded_request_reserves_nothing(redis_server, prefix):
    link = link_on(redis_server.url)
    journal = RedisJournal(redis_server.url, prefix=prefix, capacity=10, link=link)
    journal.pause()  # a thread that never began a record (a control request, say)
    link.call(pack("PING"))
    assert link.call(pack("GET", prefix + "journal:id")) is None
    reserve(journal, link)
    journal.pause()  # a recorded request that waits: its id is voided, another reserved next
    link.call(pack("PING"))
    journal.append(entry(1))
    assert link.call(pack("GET", prefix + "journal:id")) == "2"
    assert [r.id for r in journal.newest_first()] == [2]
    link.close()


def test_a_reader_sends_its_own_processs_queued_records_instead_of_waiting(redis_server, prefix, monkeypatch):
    # A record queued on another thread of the same worker (the dashboard reading right after a
    # grant that worker answered): the reader sends it, and does not sleep waiting for it.
    monkeypatch.setattr(redis_link, "CARRY_SECONDS", 60.0)  # the courier stays out of it
    link = link_on(redis_server.url)
    journal = RedisJournal(redis_server.url, prefix=prefix, capacity=10, link=link)

    def request() -> None:
        reserve(journal, link)
        journal.append(entry(3))  # queued on this thread, which then goes quiet

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    pauses: list[float] = []
    monkeypatch.setattr(redis_journal, "time", SimpleNamespace(sleep=pauses.append, monotonic=time.monotonic))
    assert [r.entry for r in journal.newest_first()] == [entry(3)]
    assert pauses == []
    link.close()
