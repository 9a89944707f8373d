"""Resets shared by every worker and instance on one Redis namespace.

A reset writes the shared state (balances, ledger, keys, clock offset) to Redis, and every
worker reads that. What each worker keeps in its own process is the seed it serves (API keys,
prices, the developer and its billing mode) and its fault rules and rate windows. Without this,
``POST /_mock/seed`` with new API keys reached the worker that served it only: the others kept
answering 401 to the new key, and prices differed by worker.

So a reset is announced on a pub/sub channel, with the seed it loaded. Every worker listening
(a thread of its own, on a connection of its own) adopts that seed and clears its fault rules
and rate windows, then acknowledges. The announcing worker waits, briefly, for as many
acknowledgements as Redis delivered the message: once ``POST /_mock/reset`` has answered, every
worker serves the new seed.

A worker still starting when a reset is announced (the first to start answers before the
others are up; granian replaces a worker that died) is not listening yet. So the announcement
is also kept (``resets:latest``), and a worker of the same ``quota-mock`` run (``run_id``)
reads it once its subscription is confirmed, before it serves: an announcement either reaches
its subscription or was kept before it read. Announcements carry a sequence number, so that
the one read at start and one arriving on the channel are never applied out of order. A mock
started afresh on a namespace (another run) keeps its own configuration, as before.

A listener whose connection dropped (Redis restarted, a proxy timed it out) misses what was
published meanwhile. So whenever Redis confirms a subscription again, the kept announcement is
read once more and adopted if it came after this worker subscribed first (its sequence number
is past the one Redis had then) and is newer than the last one applied here.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis

# How long an announcement waits for the other workers' acknowledgements: a worker that does
# not answer by then (stopped, wedged) must not hang the control API.
ACK_TIMEOUT_SECONDS = 2.0
_ACK_POLL_SECONDS = 0.002
_ACK_TTL_SECONDS = 60
_LISTEN_POLL_SECONDS = 0.5  # how often the listener looks up from the channel (to stop, to reconnect)
_RECONNECT_SECONDS = 0.5

Adopt = Callable[[dict[str, Any] | None], None]

# The next announcement's sequence number. A counter that starts afresh (the first reset on a
# namespace, or Redis restarted without persistence and lost it) starts at the wall clock in
# milliseconds, not at 1: workers that applied the old counter's numbers must not take the new
# ones for older announcements and ignore every reset from then on.
_NEXT_SEQUENCE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  n = tonumber(ARGV[1])
  redis.call('SET', KEYS[1], ARGV[1])
end
return n
"""


class SharedResets:
    """Announce this process' resets to the others on ``prefix``, and apply theirs.

    ``adopt`` receives the seed another worker loaded (``Seed.as_json``); it is held weakly
    (a bound method of the mock's state), and the listener ends when its owner is gone or
    :meth:`close` is called.
    """

    def __init__(
        self, url: str, prefix: str, adopt: Adopt, *, connect_timeout: float = 0.5, run_id: str | None = None
    ) -> None:
        self.channel = f"{prefix}resets"
        self._ack_prefix = f"{prefix}reset-acks:"
        self._latest_key = f"{prefix}resets:latest"
        self._sequence_key = f"{prefix}resets:sequence"
        self._run_id = run_id
        self._origin = secrets.token_hex(8)  # this process' own announcements are only acknowledged
        self._adopted = 0  # the sequence number of the newest announcement applied here
        # The sequence Redis had when this worker first subscribed: what a reconnection may
        # recover comes after it (an older one predates this worker, which keeps its own seed).
        self._baseline: int | None = None
        self._adopt_lock = threading.Lock()
        self._client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=5.0)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        adopt_ref = weakref.WeakMethod(adopt) if hasattr(adopt, "__self__") else (lambda: adopt)
        self._thread = threading.Thread(
            target=_listen,
            args=(redis.Redis.from_url(url, socket_connect_timeout=connect_timeout), self, adopt_ref),
            name="quota-mock-shared-resets",
            daemon=True,
        )
        self._thread.start()

    def wait_subscribed(self, seconds: float) -> bool:
        """Whether the listener is subscribed (within ``seconds``); tests wait on this."""
        return self._subscribed.wait(seconds)

    def announce(self, seed: dict[str, Any] | None) -> int:
        """Tell every listening worker that this one reset to ``seed``; return how many of them
        acknowledged within :data:`ACK_TIMEOUT_SECONDS` (this process' own listener included)."""
        reset_id = secrets.token_hex(8)
        try:
            sequence = int(self._client.eval(_NEXT_SEQUENCE, 1, self._sequence_key, time.time_ns() // 1_000_000))
            with self._adopt_lock:
                self._adopted = max(self._adopted, sequence)
            message = json.dumps(
                {"origin": self._origin, "id": reset_id, "seed": seed, "sequence": sequence, "run": self._run_id}
            )
            # Kept before it is published: a worker that subscribes too late for the message reads it.
            pipe = self._client.pipeline(transaction=False)
            pipe.set(self._latest_key, message)
            pipe.publish(self.channel, message)
            delivered = int(pipe.execute()[1])
            deadline = time.monotonic() + ACK_TIMEOUT_SECONDS
            acked = 0
            while time.monotonic() < deadline:
                acked = int(self._client.get(self._ack_prefix + reset_id) or 0)
                if acked >= delivered:
                    break
                time.sleep(_ACK_POLL_SECONDS)
            return acked
        except redis.RedisError:
            return 0  # the store itself reports Redis being away; the reset stands locally

    def catch_up(self, adopt: Adopt, seconds: float) -> bool:
        """Adopt the last reset announced by a worker of this run, if any: called once, before
        this worker serves. Whether it adopted one."""
        if self._run_id is None or not self.wait_subscribed(seconds):
            return False
        message = self._kept()
        if message is None or message.get("run") != self._run_id:
            return False
        return self._adopt(message, adopt)

    def _kept(self) -> dict[str, Any] | None:
        """The last announcement, as kept in Redis (None if none, or Redis is away: the store
        itself reports that)."""
        try:
            return _message(self._client.get(self._latest_key))
        except redis.RedisError:
            return None

    def close(self) -> None:
        self._stop.set()
        self._client.close()

    def _adopt(self, message: dict[str, Any], adopt: Adopt) -> bool:
        """Apply an announcement unless a newer one was applied already."""
        sequence = message.get("sequence")
        with self._adopt_lock:
            if isinstance(sequence, int):
                if sequence <= self._adopted:
                    return False
                self._adopted = sequence
            adopt(message.get("seed"))
        return True

    # -- the listener's side -----------------------------------------------------------------

    def _subscription_confirmed(self, again: bool, adopt_ref: Callable[[], Adopt | None]) -> None:
        """Redis confirmed the subscription: the first time, note the baseline; again (after a
        dropped connection), adopt what was announced while it was down."""
        if not again:
            # Without a baseline (Redis away) nothing is recovered later, and nothing older applied.
            with contextlib.suppress(redis.RedisError, ValueError):
                self._baseline = int(self._client.get(self._sequence_key) or 0)
            return
        message = self._kept()
        adopt = adopt_ref()
        sequence = message.get("sequence") if message is not None else None
        if (adopt is None or message is None or self._baseline is None or not isinstance(sequence, int)
                or sequence <= self._baseline or message.get("origin") == self._origin):
            return
        self._adopt(message, adopt)

    def _handle(self, client: redis.Redis, raw: bytes, adopt_ref: Callable[[], Adopt | None]) -> bool:
        """Apply one announcement; False when the owner is gone."""
        message = _message(raw)
        if message is None:
            return True  # not ours: whatever else published on the channel is ignored
        if message.get("origin") != self._origin:
            adopt = adopt_ref()
            if adopt is None:
                return False
            self._adopt(message, adopt)
        key = self._ack_prefix + message["id"]
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, _ACK_TTL_SECONDS)
        pipe.execute()
        return True


def _message(raw: bytes | str | None) -> dict[str, Any] | None:
    """An announcement, or None for anything else."""
    try:
        message = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        return None
    return message


def _listen(client: redis.Redis, owner: SharedResets, adopt_ref: Callable[[], Adopt | None]) -> None:
    """Subscribe, apply announcements, and subscribe again after Redis went away."""
    confirmed_before = False
    while not owner._stop.is_set():
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(owner.channel)
            while not owner._stop.is_set():
                message = pubsub.get_message(timeout=_LISTEN_POLL_SECONDS)
                if message is not None and message.get("type") == "subscribe":
                    # Redis confirmed it: every announcement published from now on comes here.
                    # (redis-py may also have reconnected and subscribed again by itself.)
                    owner._subscription_confirmed(confirmed_before, adopt_ref)
                    confirmed_before = True
                    owner._subscribed.set()
                elif message is not None and message.get("type") == "message":
                    if not owner._handle(client, message["data"], adopt_ref):
                        return
                elif adopt_ref() is None:
                    return
        except redis.RedisError:
            owner._subscribed.clear()
            owner._stop.wait(_RECONNECT_SECONDS)
        finally:
            pubsub.close()
    client.close()
