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
"""

from __future__ import annotations

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


class SharedResets:
    """Announce this process' resets to the others on ``prefix``, and apply theirs.

    ``adopt`` receives the seed another worker loaded (``Seed.as_json``); it is held weakly
    (a bound method of the mock's state), and the listener ends when its owner is gone or
    :meth:`close` is called.
    """

    def __init__(self, url: str, prefix: str, adopt: Adopt, *, connect_timeout: float = 0.5) -> None:
        self.channel = f"{prefix}resets"
        self._ack_prefix = f"{prefix}reset-acks:"
        self._origin = secrets.token_hex(8)  # this process' own announcements are only acknowledged
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
        message = json.dumps({"origin": self._origin, "id": reset_id, "seed": seed})
        try:
            delivered = int(self._client.publish(self.channel, message))
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

    def close(self) -> None:
        self._stop.set()
        self._client.close()

    # -- the listener's side -----------------------------------------------------------------

    def _handle(self, client: redis.Redis, raw: bytes, adopt_ref: Callable[[], Adopt | None]) -> bool:
        """Apply one announcement; False when the owner is gone."""
        try:
            message = json.loads(raw)
        except ValueError:
            return True  # not ours: whatever else published on the channel is ignored
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            return True
        if message.get("origin") != self._origin:
            adopt = adopt_ref()
            if adopt is None:
                return False
            adopt(message.get("seed"))
        key = self._ack_prefix + message["id"]
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, _ACK_TTL_SECONDS)
        pipe.execute()
        return True


def _listen(client: redis.Redis, owner: SharedResets, adopt_ref: Callable[[], Adopt | None]) -> None:
    """Subscribe, apply announcements, and subscribe again after Redis went away."""
    while not owner._stop.is_set():
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(owner.channel)
            owner._subscribed.set()
            while not owner._stop.is_set():
                message = pubsub.get_message(timeout=_LISTEN_POLL_SECONDS)
                if message is not None and message.get("type") == "message":
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
