"""The wire to Redis under the Redis store and journal: a connection per thread.

redis-py's client layer (a pool checkout and return per command, argument encoding, command
dispatch, response callbacks, its metrics hooks) cost a grant more CPU than the mock's own
work did (``benchmarks/redis_cost``). Here each thread keeps one connection of its own,
commands arrive packed (:mod:`.redis_commands`), and several go out in one write. redis-py
still makes and reads each connection, so URL options, AUTH, TLS, unix sockets, ``SELECT``
and the RESP parser (hiredis, a dependency) behave exactly as with its client.

Two ways save a round trip, both for the request journal (``redis_journal.py``):

- a *rider* (:meth:`RedisLink.ride_along`) goes out in the same write as this thread's next
  command, and its reply is read with that command's;
- a *post* (:meth:`RedisLink.post`) is not waited for at all. It goes out at the head of
  this thread's next write, or, when the thread has nothing more to send within
  ``CARRY_SECONDS``, the link's courier thread sends it on the thread's connection; either
  way its replies are read before the thread's next reply. Under load a post costs no write
  and no wake-up of Redis of its own. Nothing says when Redis runs it, so whoever must see
  its effect has to wait for it by other means: the journal reserves each record's id with
  a rider and its readers wait for reserved ids.

Failures of Redis itself (refused, dropped, timed out) raise
:class:`~.errors.StoreUnavailable` and are never retried: a command whose reply was lost
may have run. After one, every thread's connection is replaced before its next use, so a
restarted Redis fails one request, not one per thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import socket
import struct
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.retry import Retry

from .errors import StoreUnavailable
from .redis_commands import pack

# A post waits this long for its thread's next write before the courier sends it (readers
# of what it writes wait for it: see redis_journal.py).
CARRY_SECONDS = 0.002
COURIER_IDLE_SECONDS = 1.0  # a courier with nothing to carry for this long ends
try:  # redis-py's hiredis parser, read directly by _read(); a redis-py without it uses its own path
    from redis._parsers import hiredis as _hiredis_parsing

    _HiredisParser: type | None = _hiredis_parsing._HiredisParser
    # What its reader returns while a reply is still incomplete (False where redis-py has no such constant).
    _NOT_ENOUGH_DATA = getattr(_hiredis_parsing, "NOT_ENOUGH_DATA", False)
except (ImportError, AttributeError):
    _HiredisParser, _NOT_ENOUGH_DATA = None, False


class _Wire:
    """One thread's connection and what is queued on it. Its lock is held while anything is
    sent or read on it: by its own thread, or by the link's courier carrying its posts."""

    __slots__ = ("__weakref__", "connection", "generation", "lock", "pending", "pending_groups", "pending_since",
                 "posted", "rider", "rider_reply", "rider_went")  # fmt: skip

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connection: AbstractConnection | None = None
        self.generation = 0  # the link's generation when this connection was made
        self.pending: list[bytes] = []  # posted commands not sent yet
        self.pending_groups: list[int] = []  # and how many commands each post holds
        self.pending_since = 0.0  # when the oldest of them was posted (monotonic)
        self.posted: list[int] = []  # posts sent whose replies are still to read, before any other
        self.rider: bytes | None = None  # to go out with the next command
        self.rider_reply: Any = None  # what the rider's reply was, once it went out
        self.rider_went = False


class _ThreadWires(threading.local):
    wire: _Wire | None = None


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
        self._local = _ThreadWires()
        self._lock = threading.Lock()
        # Held weakly: a thread that ends takes its wire and connection with it (redis-py
        # closes a connection it collects); close() and the courier reach the rest.
        self._wires: weakref.WeakSet[_Wire] = weakref.WeakSet()
        # Wires with posts queued, held strongly: a thread that ends leaves its posts to the courier.
        self._queued: set[_Wire] = set()
        self._generation = 0
        self.last_failure = float("-inf")  # when a command last failed (time.monotonic())
        self._courier: threading.Thread | None = None
        self._posts_waiting = threading.Event()  # set when a post may need the courier
        # Posts still queued when the link is collected, or when the process ends, are sent then.
        # A worker forked by multiprocessing (granian's) ends with os._exit(), which runs no
        # atexit hook, only multiprocessing's own finalizers.
        left_behind = weakref.finalize(self, _send_left_behind, self._queued, pool)
        if multiprocessing.parent_process() is not None:
            multiprocessing.util.Finalize(None, left_behind, exitpriority=0)
        self.failed_posts = 0  # posts Redis refused (an error reply), or that nothing confirms it took

    def call(self, command: bytes) -> Any:
        """Send one command and return its reply; an error reply raises ``redis.ResponseError``."""
        reply = self.call_many([command])[0]
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply

    def call_many(self, commands: Sequence[bytes]) -> list[Any]:
        """Send commands in one write and return their replies in order; an error reply is
        returned as its ``redis.ResponseError``, so the other replies are still read. This
        thread's posts not sent yet, and its rider, go out first in the same write."""
        wire = self._wire()
        with wire.lock:
            rider, wire.rider = wire.rider, None
            carried, wire.pending = wire.pending, []
            carried_groups, wire.pending_groups = wire.pending_groups, []
            sent = False  # once the write is out, Redis may run it whatever happens next
            try:
                connection = self._connection(wire)
                wire.posted += carried_groups
                # One item, one write: redis-py sends each item of the list with a sendall of its own.
                if rider:
                    carried.append(rider)
                carried += commands
                _send(connection, b"".join(carried))
                sent = True
                self._read_posted(wire, connection)
                if rider:
                    wire.rider_reply, wire.rider_went = _read(connection), True
                return [_read(connection) for _ in commands]
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._count_failed_posts(len(carried_groups))
                self._failed(wire)
                raise StoreUnavailable(outcome_unknown=sent) from exc

    def ride_along(self, command: bytes) -> None:
        """Send ``command`` in the same write as this thread's next call, which reads its reply
        too (see :meth:`ridden`). It replaces any rider that has not gone yet."""
        wire = self._wire()
        wire.rider, wire.rider_reply, wire.rider_went = command, None, False

    def riding(self) -> bool:
        """Whether this thread has a rider waiting for its next call."""
        return self._wire().rider is not None

    def ridden(self) -> tuple[bool, Any]:
        """Whether this thread's rider went out (its reply read), and its reply; the rider is
        forgotten either way."""
        wire = self._wire()
        went, reply = wire.rider_went, wire.rider_reply
        wire.rider, wire.rider_reply, wire.rider_went = None, None, False
        return went, reply

    def post(self, *commands: bytes) -> None:
        """Queue ``commands`` to run in this order without waiting for them: they go out at the
        head of this thread's next write, or, if none comes within ``CARRY_SECONDS``, the
        link's courier sends them. Their replies are read before this thread's next reply;
        a post refused, never delivered, or whose reply was lost with its connection, is
        counted (once) in ``failed_posts``."""
        wire = self._wire()
        with wire.lock:
            if not wire.pending:
                wire.pending_since = time.monotonic()
            wire.pending += commands
            wire.pending_groups.append(len(commands))
            # Queued already: a courier is on its rounds, and takes a wire off the queue only
            # under its lock, after sending what it holds (see _carry). Under load a thread's
            # wire stays queued, so its posts skip the wake-up and the link's lock.
            if wire in self._queued:
                return
        if not self._posts_waiting.is_set():
            self._posts_waiting.set()
        with self._lock:  # after the set, and under the lock a courier ends under: see _courier_loop
            self._queued.add(wire)
            if self._courier is None:
                carry = (weakref.ref(self), self._posts_waiting)
                self._courier = threading.Thread(target=_courier_loop, args=carry, name="redis-courier", daemon=True)
                self._courier.start()

    def send_queued(self) -> None:
        """Send every thread's queued posts now, without waiting for their threads or the courier."""
        self._carry(older_than=0.0)

    def transaction(self, commands: Sequence[bytes]) -> list[Any]:
        """Commands run as one step (MULTI/EXEC): their replies, read at one instant."""
        replies = self.call_many([pack("MULTI"), *commands, pack("EXEC")])
        results = replies[-1]
        if isinstance(results, redis.ResponseError):
            raise results
        return list(results)

    def close(self) -> None:
        """Send every post still queued, then close every connection (a later call opens its
        thread a new one)."""
        self._carry(older_than=0.0, wait=True)
        with self._lock:
            wires = list(self._wires)
        for wire in wires:
            with wire.lock:
                if wire.posted and wire.connection is not None:
                    # Their replies say whether Redis took them; those it cannot read, _drop counts.
                    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, OSError):
                        self._read_posted(wire, wire.connection)
                self._drop(wire)

    # -- the courier: posts of threads that went quiet -------------------------------------

    def _carry(self, older_than: float, wait: bool = False) -> bool:
        """Send the posts queued longer than ``older_than`` seconds; whether any wire is left
        to look at again."""
        cutoff = time.monotonic() - older_than
        with self._lock:
            queued = list(self._queued)
        again = False
        for wire in queued:
            # Its own thread holds the lock while it talks to Redis, and that talk carries its
            # posts: no need to wait for it, only to look again.
            if not wire.lock.acquire(blocking=wait):
                again = True
                continue
            try:
                if wire.pending and wire.pending_since > cutoff:
                    again = True
                    continue
                if wire.pending:
                    self._send_pending(wire)
                with self._lock:
                    self._queued.discard(wire)
            finally:
                wire.lock.release()
        return again

    def _send_pending(self, wire: _Wire) -> None:
        carried, wire.pending = wire.pending, []
        groups, wire.pending_groups = wire.pending_groups, []
        try:
            _send(self._connection(wire), b"".join(carried))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._count_failed_posts(len(groups))
            self._failed(wire)
        else:
            wire.posted += groups

    # -- plumbing -------------------------------------------------------------------------

    def _wire(self) -> _Wire:
        wire = self._local.wire
        if wire is None:
            wire = self._local.wire = _Wire()
            with self._lock:
                self._wires.add(wire)
        return wire

    def _connection(self, wire: _Wire) -> AbstractConnection:
        if wire.connection is None or wire.generation != self._generation:
            if wire.connection is not None:  # made before a failure: it may point at a dead Redis
                self._drop(wire)
            wire.connection, wire.generation = _connect(self._pool), self._generation
        return wire.connection

    def _read_posted(self, wire: _Wire, connection: AbstractConnection) -> None:
        while wire.posted:
            refused = False
            for _ in range(wire.posted[0]):
                refused = isinstance(_read(connection), redis.ResponseError) or refused
            del wire.posted[0]
            if refused:
                self._count_failed_posts(1)

    def _count_failed_posts(self, count: int) -> None:
        if count:
            with self._lock:
                self.failed_posts += count

    def _failed(self, wire: _Wire) -> None:
        self._drop(wire)
        with self._lock:
            self._generation += 1
            self.last_failure = time.monotonic()

    def _drop(self, wire: _Wire) -> None:
        """Close a wire's connection (its lock held). Posts whose replies go with it unread are
        counted as failed: nothing confirms that Redis took them."""
        if wire.connection is not None:
            wire.connection.disconnect()
        wire.connection = None
        self._count_failed_posts(len(wire.posted))
        wire.posted = []
        wire.rider_went = False


def _send(connection: AbstractConnection, data: bytes) -> None:
    """One write on a connection this thread made and holds (see :func:`_connect`). A failure
    raises OSError, which every caller turns into StoreUnavailable and a dropped connection."""
    sock = connection._sock  # redis-py made it, and offers no other handle
    if sock is None:
        raise redis.ConnectionError("the connection was closed")
    sock.sendall(data)


def _read(connection: AbstractConnection) -> Any:
    """The next reply; an error reply is returned as its ``redis.ResponseError``.

    With hiredis (a dependency), the reply is taken from redis-py's hiredis reader directly:
    redis-py's own read_response() formats an error message and re-raises what the reader
    returned, on every reply, which cost a grant on Redis (four replies) about a tenth of its
    Python time. The socket is read, and its failures reported, by the same parser method as
    redis-py's own path; a RESP3 push notification goes to the parser's handler, as there."""
    parser = connection._parser  # as _sock above: redis-py's, with no public handle
    reader = getattr(parser, "_reader", None)
    if reader is None or _HiredisParser is None or not isinstance(parser, _HiredisParser):
        try:
            return connection.read_response()
        except redis.ResponseError as error:  # a reply, not a broken connection
            return error
    push = getattr(parser, "_hiredis_PushNotificationType", None)
    while True:
        reply = reader.gets()
        while reply is _NOT_ENOUGH_DATA:
            parser.read_from_socket()
            reply = reader.gets()
        if push is None or not isinstance(reply, push):
            break
        parser.handle_push_response(reply)  # not the reply to any command: read on
    # As redis-py's parser: a reply that means the connection is unusable (LOADING, say).
    if isinstance(reply, redis.ConnectionError):
        raise reply
    if type(reply) is list and reply and isinstance(reply[0], redis.ConnectionError):
        raise reply[0]
    return reply


def _connect(pool: redis.ConnectionPool) -> AbstractConnection:
    """A connection made from the pool's settings, not by the pool: its make_connection() counts
    each one against max_connections for good (none is ever given back to it), so that after
    100 threads or reconnects every request would fail."""
    connection = pool.connection_class(**pool.connection_kwargs)
    connection.connect()
    _timeouts_in_the_kernel(connection)
    return connection


def _timeouts_in_the_kernel(connection: AbstractConnection) -> None:
    """Leave a plain socket's timeouts to the kernel (SO_RCVTIMEO, SO_SNDTIMEO).

    Python implements a socket timeout with a poll() before every send and receive: two system
    calls where one does, and with other threads waiting, two hand-overs of the GIL instead of
    one. A timeout in the kernel fails the same way (an OSError that redis-py reports as a
    ConnectionError, a StoreUnavailable here). TLS sockets keep Python's timeouts."""
    sock = connection._sock  # redis-py made it, and offers no other handle
    timeout = sock.gettimeout() if type(sock) is socket.socket else None
    if not timeout:
        return
    seconds = int(timeout)
    value = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    sock.settimeout(None)


def _send_left_behind(queued: set[_Wire], pool: redis.ConnectionPool) -> None:
    """Send the posts still queued on the wires of a link that is gone, or of a process that
    ends (nothing is left to read their replies or count them)."""
    for wire in list(queued):
        if not wire.lock.acquire(timeout=1.0):
            continue  # its thread is stuck talking to Redis: that talk carried its posts
        try:
            if wire.pending:
                connection = wire.connection or _connect(pool)
                connection.send_packed_command([b"".join(wire.pending)], check_health=False)
                wire.pending, wire.pending_groups = [], []
        except (redis.RedisError, OSError):
            pass  # Redis is away: the posts go with the process
        finally:
            wire.lock.release()


def _courier_loop(link_ref: weakref.ref[RedisLink], posts_waiting: threading.Event) -> None:
    """Carry the posts of threads that went quiet. It holds its link weakly, and ends when the
    link is gone or no post came for ``COURIER_IDLE_SECONDS`` (the next post starts another)."""
    while True:
        if not posts_waiting.wait(COURIER_IDLE_SECONDS):
            link = link_ref()
            if link is None:
                return
            with link._lock:
                # A post sets the event, then looks for a courier under this lock: unset here,
                # any post still to look finds none and starts one.
                if not posts_waiting.is_set():
                    link._courier = None
                    return
            del link
            continue
        posts_waiting.clear()
        while True:
            # Under load a thread's next request carries its posts for free: leave it the time.
            time.sleep(CARRY_SECONDS)
            link = link_ref()
            if link is None:
                return
            again = link._carry(older_than=CARRY_SECONDS)
            del link
            if not again:
                break
