"""The wire under the Redis store and journal (mockserver.domain.redis_link): packing equals
redis-py's, an error reply leaves the other replies of a batch in order, a Redis that went
away costs one failed call, not one per thread, and the journal one worker writes is what
another reads at once."""

from __future__ import annotations

import threading

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers import _RESP2Parser, _RESP3Parser

from mockserver import create_app
from mockserver.domain.errors import StoreUnavailable
from mockserver.domain.redis_commands import Command, pack
from mockserver.domain.redis_link import RedisLink

from .conftest import AUTH

# What the store and journal send: text (any code point a client may send, lone surrogates
# included), bytes (fingerprints), integers of any size, floats.
ARGS = st.lists(
    st.one_of(st.text(), st.binary(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(head=ARGS, tail=ARGS)
def test_packing_equals_redis_pys(head, tail):
    reference = redis.Connection(encoding_errors="surrogatepass")
    expected = b"".join(reference.pack_command("ECHO", *head, *tail))
    assert Command("ECHO", *head).pack(*tail) == expected
    assert pack("ECHO", *head, *tail) == expected


def link_on(url: str) -> RedisLink:
    return RedisLink(redis.ConnectionPool.from_url(url, decode_responses=True, socket_timeout=2))


def test_a_link_keeps_working_past_its_pools_connection_limit(redis_server):
    # One connection per thread, made afresh after a failure: over a long run a link makes more
    # connections than a redis-py pool would allow (100 by default), and must never run out.
    link = RedisLink(redis.ConnectionPool.from_url(redis_server.url, decode_responses=True, max_connections=3))
    for _ in range(10):
        thread = threading.Thread(target=lambda: link.call(pack("INCR", "threads")))
        thread.start()
        thread.join()
    assert link.call(pack("GET", "threads")) == "10"
    link.close()


# hiredis, read directly (the store's case), and redis-py's own parsers over both protocols.
PARSERS = {"hiredis": {}, "python RESP2": {"parser_class": _RESP2Parser, "protocol": 2},
           "python RESP3": {"parser_class": _RESP3Parser, "protocol": 3}}  # fmt: skip


@pytest.mark.parametrize("parser", list(PARSERS))
def test_an_error_reply_in_a_batch_leaves_the_other_replies_in_order(redis_server, parser):
    settings = PARSERS[parser]
    link = RedisLink(redis.ConnectionPool.from_url(redis_server.url, decode_responses=True, **settings))
    link.call(pack("DEL", "text", "n"))
    link.call(pack("SET", "text", "x"))
    replies = link.call_many([pack("INCR", "n"), pack("LPUSH", "text", "1"), pack("INCR", "n")])
    assert replies[0] == 1 and isinstance(replies[1], redis.ResponseError) and replies[2] == 2
    with pytest.raises(redis.ResponseError):
        link.call(pack("LPUSH", "text", "1"))
    assert link.call(pack("GET", "n")) == "2"
    link.close()


def test_after_redis_restarts_one_call_fails_and_every_thread_reconnects(fault_redis):
    link = link_on(fault_redis.url)
    threads = 4
    outcomes: list[list[str]] = [[] for _ in range(threads)]
    connected = threading.Barrier(threads + 1)
    restarted, first_failed = threading.Event(), threading.Event()

    def call(index: int) -> None:
        try:
            link.call(pack("INCR", "n"))
            outcomes[index].append("ok")
        except StoreUnavailable:
            outcomes[index].append("unavailable")

    def long_lived(index: int) -> None:
        # A thread's connection lives as long as the thread: each holds one across the restart.
        call(index)
        connected.wait()
        restarted.wait()
        if index == 0:
            call(index)  # the first call after the restart: its connection was to the old Redis
            first_failed.set()
        else:
            first_failed.wait()
            call(index)

    workers = [threading.Thread(target=long_lived, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    connected.wait()
    fault_redis.stop()
    fault_redis.start()
    restarted.set()
    for worker in workers:
        worker.join()
    assert outcomes[0] == ["ok", "unavailable"]
    assert all(outcome == ["ok", "ok"] for outcome in outcomes[1:]), outcomes
    link.close()


def test_the_journal_of_one_worker_shows_a_request_another_worker_just_answered(redis_server, prefix):
    config = {"store": redis_server.url, "store_prefix": prefix}
    first, second = create_app(config).test_client(), create_app(config).test_client()
    for i in range(200):
        path = f"/v1/users/journal_probe_{i}/balance"
        assert first.get(path, headers=AUTH).status_code == 404
        newest = second.get("/_mock/requests?limit=1").get_json()["requests"]
        assert newest[0]["path"] == path


def test_a_journal_append_redis_refuses_is_counted_never_raised(redis_server, prefix):
    from mockserver.domain.redis_journal import RedisJournal

    from ..unit.test_journal import entry

    journal = RedisJournal(redis_server.url, prefix=prefix, capacity=5)
    with redis_server.client() as client:
        client.set(prefix + "journal:records", "not a set")  # ZADD answers WRONGTYPE
    journal.append(entry(0))  # must not raise: recording never fails the request
    assert journal.lost == 1
    with redis_server.client() as client:
        client.delete(prefix + "journal:records")
    journal.append(entry(1))
    assert journal.lost == 1 and journal.count() == 1
    journal.close()
