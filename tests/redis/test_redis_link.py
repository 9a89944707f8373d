"""The wire under the Redis store and journal (mockserver.domain.redis_link): packing equals
redis-py's, posted commands are applied before anything sent after them, their failures
are counted, and a Redis that went away costs one failed call, not one per thread."""

from __future__ import annotations

import threading

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver import create_app
from mockserver.domain.errors import StoreUnavailable
from mockserver.domain.redis_link import MAX_UNREAD_POSTS, Command, RedisLink, pack

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


def test_a_read_after_settle_sees_every_command_posted_before_it(redis_server):
    """Posts from several threads (workers, as far as Redis can tell); a reader on a
    connection of its own settles, then reads: nothing posted before the settle is missing."""
    writer, reader = link_on(redis_server.url), link_on(redis_server.url)
    posted = [0] * 4
    stop = threading.Event()

    def post(index: int) -> None:
        while not stop.is_set():
            writer.post(pack("INCR", f"posted:{index}"))
            posted[index] += 1

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(posted))]
    for thread in threads:
        thread.start()
    try:
        for _ in range(300):
            at_least = list(posted)  # every one of these was sent before the settle starts
            reader.settle()
            seen = reader.call_many([pack("GET", f"posted:{i}") for i in range(len(posted))])
            assert all(int(n or 0) >= least for n, least in zip(seen, at_least, strict=True)), (seen, at_least)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert writer.unconfirmed == 0
    writer.close()
    reader.close()


def test_a_posted_command_that_fails_is_counted_and_the_next_call_is_unaffected(redis_server):
    link = link_on(redis_server.url)
    link.call(pack("SET", "text", "x"))
    link.post(pack("LPUSH", "text", "1"))  # WRONGTYPE: fails inside Redis
    link.post(pack("SET", "after", "y"))
    assert link.call(pack("GET", "after")) == "y"
    assert link.unconfirmed == 1
    link.close()


def test_a_thread_that_only_posts_reads_its_replies_as_it_goes(redis_server):
    link = link_on(redis_server.url)
    for _ in range(10 * MAX_UNREAD_POSTS):
        link.post(pack("INCR", "counter"))
    with redis_server.client() as client:
        assert int(client.get("counter")) == 10 * MAX_UNREAD_POSTS
        # The connection's unread replies stay few: Redis holds no growing output buffer.
        mine = [c for c in client.client_list() if int(c["omem"]) > 0]
        assert not mine
    assert link.unconfirmed == 0
    link.close()


def test_an_error_reply_in_a_batch_leaves_the_other_replies_in_order(redis_server):
    link = link_on(redis_server.url)
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
