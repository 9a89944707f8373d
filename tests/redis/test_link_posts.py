"""Posts on the Redis link (mockserver.domain.redis_link.RedisLink.post): a post waits for its
thread's next write and goes out in it; a thread that goes quiet, or ends, leaves its posts to
the courier, which sends them within milliseconds; a post that is refused or never delivered
is counted once; close(), and a process that exits, send what is still queued."""

from __future__ import annotations

import gc
import multiprocessing
import subprocess
import sys
import threading
import time

import pytest
import redis

from mockserver.domain import redis_link
from mockserver.domain.errors import StoreUnavailable
from mockserver.domain.redis_commands import pack
from mockserver.domain.redis_link import RedisLink
from mockserver.server import free_port


def link_to(url: str) -> RedisLink:
    return RedisLink(redis.ConnectionPool.from_url(url, decode_responses=True, socket_timeout=2))


def value_within(client: redis.Redis, key: str, seconds: float) -> tuple[bytes | None, float]:
    started = time.monotonic()
    while (value := client.get(key)) is None and time.monotonic() - started < seconds:
        time.sleep(0.001)
    return value, time.monotonic() - started


def test_a_post_goes_out_in_the_same_write_as_the_threads_next_call(redis_server, monkeypatch):
    monkeypatch.setattr(redis_link, "CARRY_SECONDS", 5.0)  # the courier stays out of it
    writes: list[bytes] = []
    send = redis_link._send  # every write the link makes on a thread's connection

    def counted(connection, data: bytes) -> None:
        writes.append(data)
        send(connection, data)

    monkeypatch.setattr(redis_link, "_send", counted)
    link = link_to(redis_server.url)
    link.call(pack("PING"))
    writes.clear()
    link.post(pack("SET", "a", "1"), pack("INCR", "a"))
    link.post(pack("INCR", "a"))
    assert writes == []  # nothing sent yet
    assert link.call(pack("GET", "a")) == "3"  # the posts ran first, in order; the reply is the GET's
    assert len(writes) == 1 and writes[0].count(b"INCR") == 2
    assert link.call(pack("GET", "a")) == "3"  # and they went out once
    assert link.failed_posts == 0
    link.close()


def test_the_posts_of_a_quiet_thread_are_sent_by_the_courier(redis_server):
    link = link_to(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    link.post(pack("SET", "quiet", "1"))  # and this thread sends nothing more
    value, waited = value_within(client, "quiet", 2.0)
    assert value == b"1" and waited < 0.5
    assert link.call(pack("GET", "quiet")) == "1"  # the post's reply was read first, not returned
    link.close()


def test_a_thread_that_ends_leaves_its_posts_to_the_courier(redis_server):
    link = link_to(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    thread = threading.Thread(target=lambda: link.post(pack("SET", "ended", "1")))
    thread.start()
    thread.join()
    value, _ = value_within(client, "ended", 2.0)
    assert value == b"1"
    link.close()


def test_a_refused_post_is_counted_once_and_the_next_reply_is_still_the_calls(redis_server):
    link = link_to(redis_server.url)
    link.call(pack("SET", "text", "x"))
    link.post(pack("LPUSH", "text", "1"), pack("LPUSH", "text", "2"))  # both refused: one post
    link.post(pack("INCR", "n"))
    assert link.call(pack("GET", "n")) == "1"
    assert link.failed_posts == 1
    link.close()


def test_posts_that_never_reach_redis_are_counted(redis_server):
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    link = link_to(nobody)
    link.post(pack("INCR", "lost"))  # left to the courier
    deadline = time.monotonic() + 2
    while link.failed_posts < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert link.failed_posts == 1
    link.post(pack("INCR", "lost"))
    link.post(pack("INCR", "lost"))  # carried by a call that fails
    with pytest.raises(StoreUnavailable):
        link.call(pack("PING"))
    assert link.failed_posts == 3
    link.close()


def test_close_sends_what_is_still_queued(redis_server, monkeypatch):
    monkeypatch.setattr(redis_link, "CARRY_SECONDS", 5.0)
    link = link_to(redis_server.url)
    link.post(pack("SET", "closing", "1"))
    link.close()
    assert redis.Redis.from_url(redis_server.url).get("closing") == b"1"
    assert link.call(pack("GET", "closing")) == "1"  # a closed link opens a new connection
    link.close()


def test_a_process_that_exits_sends_what_is_still_queued(redis_server):
    # A worker that stops (Ctrl-C, a respawn) leaves no record behind for readers to wait for.
    program = (
        "import redis, sys\n"
        "from mockserver.domain import redis_commands, redis_link\n"
        "redis_link.CARRY_SECONDS = 60.0\n"  # only the exit can send it
        "link = redis_link.RedisLink(redis.ConnectionPool.from_url(sys.argv[1], decode_responses=True))\n"
        "link.post(redis_commands.pack('SET', 'at-exit', '1'))\n"
    )
    subprocess.run([sys.executable, "-c", program, redis_server.url], check=True, timeout=60)
    assert redis.Redis.from_url(redis_server.url).get("at-exit") == b"1"


def _post_and_return(url: str) -> None:
    """A forked worker's life in brief: it posts, and ends the way multiprocessing ends it."""
    redis_link.CARRY_SECONDS = 60.0
    link = RedisLink(redis.ConnectionPool.from_url(url, decode_responses=True))
    link.post(pack("SET", "forked-exit", "1"))
    _post_and_return.link = link  # alive until the process ends, as a worker's app is


def test_a_forked_worker_that_ends_sends_what_is_still_queued(redis_server):
    # granian's workers are multiprocessing children: they end with os._exit(), which runs no
    # atexit hook; the link sends its queued posts through multiprocessing's finalizers.
    child = multiprocessing.get_context("fork").Process(target=_post_and_return, args=(redis_server.url,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert redis.Redis.from_url(redis_server.url).get("forked-exit") == b"1"


def test_a_link_collected_with_posts_queued_sends_them(redis_server, monkeypatch):
    # An app dropped without closing its store (a test's, a reloaded one) leaves no record behind.
    monkeypatch.setattr(redis_link, "CARRY_SECONDS", 60.0)
    link = link_to(redis_server.url)
    link.post(pack("SET", "collected", "1"))
    del link
    gc.collect()
    assert redis.Redis.from_url(redis_server.url).get("collected") == b"1"
