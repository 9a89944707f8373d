"""Correct deployments a ninth adversary round tried against the suite (registered by variants.py's
last import): infrastructure and timing a real production or staging deployment plausibly has
where the docs are silent: latency, a lagging read replica, a shared account's varied traffic,
a real rate limiter."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask

from conformance.rule_helpers import STALE_READ_SECONDS
from mockserver.domain.money import format_money

from .mutants.kit import (
    GRANT,
    KEY,
    Exchange,
    correct_app,
    middleware,
    service_of,
)
from .variants import variant

# -- latency -------------------------------------------------------------------------------


def _sleeper(low: float, high: float, seed: int) -> Callable[[], None]:
    randomness = random.Random(seed)
    lock = threading.Lock()

    def pause() -> None:
        with lock:
            seconds = randomness.uniform(low, high)
        time.sleep(seconds)

    return pause


@variant("every request takes 50-300 ms (random) before it is handled: a deployment far from the CI runner, "
         "behind a load balancer and a cold connection pool",
         "the docs promise no response time", waits=True)
def random_latency() -> Flask:
    pause = _sleeper(0.05, 0.3, 9)

    def before(ex: Exchange) -> bool:
        pause()
        return False

    return middleware(correct_app(), None, before)


@variant("writes (grants and chats) take 50-300 ms (random) after they are applied, before the answer leaves "
         "(an audit log written synchronously, a slow commit acknowledgement); reads are fast",
         "the docs promise no response time", waits=True)
def slow_write_answers() -> Flask:
    pause = _sleeper(0.05, 0.3, 10)

    def after(ex: Exchange) -> None:
        if ex.method == "POST":
            pause()

    return middleware(correct_app(), after)


# -- a shared account ------------------------------------------------------------------------

# Other clients run at most this long (a staging run takes seconds; the sweep must not keep
# paying for traffic after it).
NEIGHBOUR_SECONDS = 90.0


def _neighbour(app: Flask, period: tuple[float, float], act: Callable[[Any, int], None], seed: int,
               name: str) -> None:
    """Another client of the account: ``act(client, n)`` at once (it used the account before the
    suite came), then every ``period`` seconds (uniform)."""
    alive = weakref.ref(app)
    randomness = random.Random(seed)

    def traffic() -> None:
        deadline = time.monotonic() + NEIGHBOUR_SECONDS
        for n in itertools.count():
            time.sleep(randomness.uniform(*period) if n else 0.0)
            target = alive()
            if target is None or time.monotonic() > deadline:
                return
            with contextlib.suppress(Exception):  # another client's trouble is not the run's
                act(target.test_client(), n)
            del target

    threading.Thread(target=traffic, daemon=True, name=name).start()


_HEADERS = {"Authorization": f"Bearer {KEY}"}
_HI = [{"role": "user", "content": "hi"}]


def _developer_chat(client: Any, n: int, stream: bool = False) -> None:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": _HI, "max_tokens": 3 + n % 5}
    if stream:
        body["stream"] = True
    client.post("/v1/chat/completions", headers=_HEADERS, json=body).get_data()


def _grant_other(client: Any, n: int) -> None:
    client.post(GRANT, headers=_HEADERS, json={"external_user_id": f"neighbour-{n % 11}", "amount": 0.05})


@variant("the account is shared with a nightly-style job: a small developer-billed chat every 2-4 s (random), "
         "while the suite runs",
         "a staging account is used by more than the suite: the docs promise nothing about other clients")
def sparse_neighbour() -> Flask:
    app = correct_app()
    _neighbour(app, (2.0, 4.0), lambda c, n: _developer_chat(c, n), 21, "sparse-neighbour")
    return app


@variant("a shared account far from the runner: requests take 50-300 ms, and another client sends a small "
         "developer-billed chat every 2-4 s",
         "the docs promise no response time and nothing about other clients of an account", waits=True)
def sparse_neighbour_with_latency() -> Flask:
    app = random_latency()
    _neighbour(app, (2.0, 4.0), lambda c, n: _developer_chat(c, n), 22, "sparse-neighbour-latency")
    return app


@variant("a busy shared account: other clients read balances (~10/s), grant to their own users (~1.5/s), "
         "send their users' user-billed chats (~2/s) and streamed developer-billed chats (~0.7/s)",
         "a production account has many clients; the docs promise nothing about them")
def varied_neighbours() -> Flask:
    app = correct_app()
    client = app.test_client()  # the other clients' users hold a balance to chat with
    for i in range(5):
        client.post(GRANT, headers=_HEADERS, json={"external_user_id": f"their-user-{i}", "amount": 20})

    def reads(c: Any, n: int) -> None:
        path = ["/v1/balance", "/v1/me", f"/v1/users/their-user-{n % 5}/balance", "/v1/packages"][n % 4]
        c.get(path, headers=_HEADERS)

    def user_chat(c: Any, n: int) -> None:
        c.post(f"/v1/users/their-user-{n % 5}/chat/completions", headers=_HEADERS,
               json={"model": "gpt-4o-mini", "messages": _HI, "max_tokens": 5, "stream": bool(n % 2)}).get_data()

    _neighbour(app, (0.05, 0.15), reads, 31, "neighbour-reads")
    _neighbour(app, (0.3, 1.0), _grant_other, 32, "neighbour-grants")
    _neighbour(app, (0.2, 0.8), user_chat, 33, "neighbour-user-chats")
    _neighbour(app, (0.8, 2.0), lambda c, n: _developer_chat(c, n, stream=True), 34, "neighbour-streams")
    return app


# A job that runs now and then on the account and then stops: its last spend can land inside
# one of the suite's actions with nothing after it, so the quiet after an action proves nothing.
JOB_SILENCE_SECONDS = 12.0


@variant("another client spends once (a small developer-billed chat) in the middle of one of the suite's writes "
         "that follows a developer-balance read, then stays silent for 12 s, again and again: a job that runs "
         "now and then and finishes",
         "the docs promise nothing about other clients of an account, nor when they stop")
def neighbour_that_stops() -> Flask:
    app = correct_app()
    state = {"silent_until": 0.0, "balance_read": False, "n": 0}
    lock = threading.Lock()

    def before(ex: Exchange) -> bool:
        with lock:
            developer_read = ex.method == "GET" and ex.path == "/v1/balance" and "external_user_id" not in ex.query
            strike = (ex.method == "POST" and state["balance_read"]
                      and time.monotonic() >= state["silent_until"])
            state["balance_read"] = developer_read
            if strike:
                state["silent_until"] = time.monotonic() + JOB_SILENCE_SECONDS
                state["n"] += 1
        if strike:  # its request passes through this hook too, silenced already
            _developer_chat(app.test_client(), int(state["n"]))
        return False

    return middleware(app, None, before)


# -- a lagging read replica ----------------------------------------------------------------

REPLICA_LAG = 0.1


class _Lagged:
    """A value as a replica REPLICA_LAG behind the primary sees it: the primary is sampled
    often, and a read answers the last sample at least REPLICA_LAG old."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._times: list[float] = [time.monotonic()]
        self._values: list[int] = [read()]
        self._lock = threading.Lock()

    def sample(self) -> None:
        value = self._read()
        with self._lock:
            if value != self._values[-1]:
                self._times.append(time.monotonic())
                self._values.append(value)

    def lagged(self) -> int:
        self.sample()
        with self._lock:
            i = bisect.bisect_right(self._times, time.monotonic() - REPLICA_LAG) - 1
            return self._values[max(i, 0)]


@variant(f"GET /v1/balance (the developer balance, no external_user_id) is served from a read replica "
         f"{REPLICA_LAG * 1000:.0f} ms behind the primary; user balances and grants are read from the primary",
         "the docs say only that GET /v1/balance 'returns the developer balance'; nothing says it reflects a "
         "write made a moment before")
def lagging_developer_balance() -> Flask:
    app = correct_app()
    service = service_of(app)
    replica = _Lagged(service.developer_balance)

    def before(ex: Exchange) -> bool:
        replica.sample()  # the primary's every change is seen as it happens
        return False

    def after(ex: Exchange) -> None:
        replica.sample()
        developer = ex.method in ("GET", "HEAD") and ex.path == "/v1/balance" and "external_user_id" not in ex.query
        body = ex.json if developer and ex.status == 200 else None
        if isinstance(body, dict) and "balance" in body:
            micros = replica.lagged()
            body["balance"] = format_money(micros)
            if "balance_microdollars" in body:
                body["balance_microdollars"] = micros
            ex.set_json(body)

    # Sample the primary in the background too, as replication streams continuously.
    alive = weakref.ref(app)

    def stream() -> None:
        deadline = time.monotonic() + NEIGHBOUR_SECONDS * 2
        while time.monotonic() < deadline and alive() is not None:
            replica.sample()
            time.sleep(0.005)

    threading.Thread(target=stream, daemon=True, name="replica").start()
    return middleware(app, after, before)


BALANCE_CACHE_SECONDS = 3.0


@variant(f"GET /v1/balance (the developer balance) is answered from a cache kept {BALANCE_CACHE_SECONDS:g} s per API "
         "key and not cleared by writes (a gateway's cache with a time to live); user balances are read fresh. "
         f"The suite waits out a cache up to {STALE_READ_SECONDS:g} s; one of 30 s is the mutant "
         "developer_balance_cached",
         "the docs say only that GET /v1/balance 'returns the developer balance'; nothing says how fresh")
def developer_balance_cached_3s() -> Flask:
    app = correct_app()
    cached: dict[str, tuple[float, bytes, dict[str, str]]] = {}
    lock = threading.Lock()

    def developer_read(ex: Exchange) -> bool:
        return ex.method == "GET" and ex.path == "/v1/balance" and not ex.query

    def before(ex: Exchange) -> bool:
        if not developer_read(ex):
            return False
        with lock:
            at, body, headers = cached.get(ex.headers.get("Authorization", ""), (float("-inf"), b"", {}))
        if time.monotonic() - at >= BALANCE_CACHE_SECONDS:
            return False
        ex.status, ex.response, ex.response_headers = 200, body, dict(headers)
        return True

    def after(ex: Exchange) -> None:
        if developer_read(ex) and ex.status == 200:
            with lock:
                cached[ex.headers.get("Authorization", "")] = (time.monotonic(), ex.response, dict(ex.response_headers))

    return middleware(app, after, before)


# -- a real rate limiter ---------------------------------------------------------------------


class _Window:
    """A sliding-window limiter: at most ``limit`` requests in any ``seconds``."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self._sent: list[float] = []
        self._lock = threading.Lock()

    def admit(self) -> float:
        """0 when admitted (and counted); otherwise the seconds until a slot frees."""
        with self._lock:
            now = time.monotonic()
            while self._sent and self._sent[0] <= now - self.seconds:
                self._sent.pop(0)
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + self.seconds - now


def _limited(limit: int, seconds: float) -> Flask:
    window = _Window(limit, seconds)

    def before(ex: Exchange) -> bool:
        wait = window.admit()
        if not wait:
            return False
        ex.error(429, "rate_limit_exceeded", f"Rate limit of {limit} requests per {seconds:g} s exceeded")
        ex.response_headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return True

    return middleware(correct_app(), None, before)


@variant("a gateway rate limit of 10 requests a second (sliding window): a request past it answers 429 "
         "rate_limit_exceeded with Retry-After: 1",
         "public-facts: 429 rate_limit_exceeded; the default is 100 a minute, and a plan may set its own",
         waits=True)
def rate_limit_10_per_second() -> Flask:
    return _limited(10, 1.0)


@variant("the documented default rate limit exactly: 100 requests a minute (sliding window), 429 "
         "rate_limit_exceeded with Retry-After the seconds until a request may pass",
         "public-facts: 'Rate limit 100 requests/minute by default; 429 rate_limit_exceeded'", waits=True)
def rate_limit_documented_default() -> Flask:
    return _limited(100, 60.0)
