"""The wire to Redis under the Redis store and journal: a connection per thread, and commands
packed once.

redis-py's client layer (a pool checkout and return per command, argument encoding, command
dispatch, response callbacks, its metrics hooks) cost a grant more CPU than the mock's own
work did (``benchmarks/redis_cost``). Here each thread keeps one connection of its own, a
script's fixed arguments (its SHA, its KEYS, the namespace) are packed into bytes once
(:class:`Command`), and several commands go out in one write. redis-py still makes and
reads each connection, so URL options, AUTH, TLS, unix sockets, ``SELECT`` and the RESP
parser (hiredis when installed) behave exactly as with its client.

Two ways save a round trip, both for the request journal (``redis_journal.py``):

- a *rider* (:meth:`RedisLink.ride_along`) goes out in the same write as this thread's next
  command, and its reply is read with that command's;
- a *posted* command (:meth:`RedisLink.post`) is sent without waiting; its reply is read
  before the thread's next command. Nothing says when Redis runs it (Redis reads a
  connection's input 16 KB a round, and loopback delivery can lag), so whoever must see its
  effect has to wait for it by other means: the journal reserves each record's id with a rider
  and its readers wait for reserved ids.

Failures of Redis itself (refused, dropped, timed out) raise
:class:`~.errors.StoreUnavailable` and are never retried: a command whose reply was lost
may have run. After one, every thread's connection is replaced before its next use, so a
restarted Redis fails one request, not one per thread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.retry import Retry

from .errors import StoreUnavailable

Arg = str | bytes | int | float


def encode_arg(value: Arg) -> bytes:
    """One argument as Redis receives it (text: UTF-8; ids keep any code point that arrived)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bool):  # a bool is an int: refuse the ambiguity, as redis-py does
        raise TypeError("a bool is no Redis argument")
    if isinstance(value, int):
        return b"%d" % value
    return repr(float(value)).encode()


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Command:
    """A command whose leading arguments never change, packed once:
    ``Command("EVALSHA", sha, 2, key1, key2).pack(arg)`` is the whole command in RESP."""

    __slots__ = ("_count", "_head")

    def __init__(self, *head: Arg) -> None:
        self._count = len(head)
        self._head = b"".join(_bulk(encode_arg(value)) for value in head)

    def pack(self, *tail: Arg) -> bytes:
        parts = [b"*%d\r\n" % (self._count + len(tail)), self._head]
        for value in tail:  # on every request's path: text, the usual case, is encoded inline
            data = value.encode("utf-8", "surrogatepass") if type(value) is str else encode_arg(value)
            parts += (b"$%d\r\n" % len(data), data, b"\r\n")
        return b"".join(parts)


def pack(*args: Arg) -> bytes:
    """A whole command in RESP."""
    return Command(*args).pack()


class _ThreadWire(threading.local):
    connection: AbstractConnection | None = None
    generation = 0  # the link's generation when this connection was made
    posted = 0  # replies of posted commands still to read, before any other
    rider: bytes | None = None  # to go out with the next command
    rider_reply: Any = None  # what the rider's reply was, once it went out
    rider_went = False


class RedisLink:
    """Commands to one Redis, each thread on a connection of its own from ``pool``'s settings."""

    @classmethod
    def open(cls, url: str, *, socket_timeout: float, connect_timeout: float) -> RedisLink:
        """A link to the Redis at ``url`` as the store and the journal use it: short timeouts and
        no retries, so that a dead Redis answers fast and nothing is sent twice (a command whose
        reply was lost may have run). URL options (``?socket_timeout=5``) still override these."""
        return cls(
            redis.ConnectionPool.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                decode_responses=True,
                # User ids are whatever arrived on the wire: keep any code point round-tripping.
                encoding_errors="surrogatepass",
            )
        )

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._wire = _ThreadWire()
        self._lock = threading.Lock()
        # Held weakly: a thread that ends takes its connection with it (redis-py closes a
        # connection it collects); close() reaches the rest.
        self._connections: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()
        self._generation = 0
        self.refused_posts = 0  # posted commands that Redis refused (an error reply)

    def call(self, command: bytes) -> Any:
        """Send one command and return its reply; an error reply raises ``redis.ResponseError``."""
        reply = self.call_many([command])[0]
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply

    def call_many(self, commands: Sequence[bytes]) -> list[Any]:
        """Send commands in one write and return their replies in order; an error reply is
        returned as its ``redis.ResponseError``, so the other replies are still read."""
        connection = self._connection()
        wire = self._wire
        rider, wire.rider = wire.rider, None
        try:
            # One item, one write: redis-py sends each item of the list with a sendall of its own.
            connection.send_packed_command([b"".join((rider, *commands) if rider else commands)], check_health=False)
            while wire.posted:
                if isinstance(self._read(connection), redis.ResponseError):
                    self._count_refused_post()
                wire.posted -= 1
            if rider:
                wire.rider_reply, wire.rider_went = self._read(connection), True
            return [self._read(connection) for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._failed(connection)
            raise StoreUnavailable() from exc

    def ride_along(self, command: bytes) -> None:
        """Send ``command`` in the same write as this thread's next call, which reads its reply
        too (see :meth:`ridden`). It replaces any rider that has not gone yet."""
        wire = self._wire
        wire.rider, wire.rider_reply, wire.rider_went = command, None, False

    def ridden(self) -> tuple[bool, Any]:
        """Whether this thread's rider went out (its reply read), and its reply; the rider is
        forgotten either way."""
        wire = self._wire
        went, reply = wire.rider_went, wire.rider_reply
        wire.rider, wire.rider_reply, wire.rider_went = None, None, False
        return went, reply

    def post(self, command: bytes) -> None:
        """Send ``command`` and return without its reply, which this thread reads before its
        next command (an error reply is counted in ``refused_posts``)."""
        connection = self._connection()
        try:
            connection.send_packed_command([command], check_health=False)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._failed(connection)
            raise StoreUnavailable() from exc
        self._wire.posted += 1

    def transaction(self, commands: Sequence[bytes]) -> list[Any]:
        """Commands run as one step (MULTI/EXEC): their replies, read at one instant."""
        replies = self.call_many([pack("MULTI"), *commands, pack("EXEC")])
        results = replies[-1]
        if isinstance(results, redis.ResponseError):
            raise results
        return list(results)

    def close(self) -> None:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            connection.disconnect()

    # -- plumbing -------------------------------------------------------------------------

    def _connection(self) -> AbstractConnection:
        wire = self._wire
        if wire.connection is None or wire.generation != self._generation:
            if wire.connection is not None:  # made before a failure: it may point at a dead Redis
                self._drop(wire.connection)
            wire.connection = self._pool.make_connection()
            wire.generation = self._generation
            with self._lock:
                self._connections.add(wire.connection)
        return wire.connection

    @staticmethod
    def _read(connection: AbstractConnection) -> Any:
        try:
            return connection.read_response()
        except redis.ResponseError as error:  # a reply, not a broken connection
            return error

    def _count_refused_post(self) -> None:
        with self._lock:
            self.refused_posts += 1

    def _failed(self, connection: AbstractConnection) -> None:
        self._drop(connection)
        with self._lock:
            self._generation += 1

    def _drop(self, connection: AbstractConnection) -> None:
        """Close this thread's connection."""
        connection.disconnect()
        with self._lock:
            self._connections.discard(connection)
        wire = self._wire
        wire.connection = None
        wire.posted = 0  # their replies went with the connection
        wire.rider_went = False
