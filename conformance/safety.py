"""Production safety: every request the suite sends passes :meth:`SafetyGuard.admit`.

The guard sits in :class:`GuardedSession.send`, below Schemathesis and the scenarios alike,
so nothing reaches the target without it. It enforces:

- ``--read-only``: only GET and HEAD leave the machine (no grants, chats or malformed grants);
- otherwise only the contract's methods (GET, HEAD, POST), and POST only to the grant and
  chat operations: no unusual HTTP methods, no requests to paths outside the contract;
- a grant names a user ``PREFIX`` + random suffix, and its amount (read as generously as a
  lax server might: absolute value, numeric strings, ``true`` as 1) is reserved from the
  budget *before* it is sent, whatever the answer turns out to be; a grant the budget cannot
  cover is refused;
- a chat bills a prefixed user (never the developer);
- a bounded number of requests and of seconds; 429 answers (and 503s with ``Retry-After`` to a read
  or a keyed request) are retried after ``Retry-After``
  (or ``X-RateLimit-Reset``, or a growing pause), and a rule that still meets one judges nothing.
"""

from __future__ import annotations

import email.utils
import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from mockserver.domain.money import MICROS_PER_DOLLAR

from .facts import CHAT, GRANT, USER_CHAT, ContractFacts
from .options import Options

# Safe methods (RFC 9110, 9.2.1): OPTIONS asks what a route allows and changes nothing.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTRACT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST"})
# Sent only with --unusual-methods, to see the 405 envelope of a route that does not define them.
UNUSUAL_METHODS = frozenset({"PUT", "PATCH", "DELETE"})
# A developer-billed chat is sent only when tiny, and this much is reserved from the budget for
# it: a few dozen tokens cost far under a cent at any model's price.
DEVELOPER_CHAT_RESERVE = MICROS_PER_DOLLAR // 100
TINY_CHAT_MAX_TOKENS = 16
TINY_CHAT_BYTES = 1024
PERSISTENT_REFUSALS = 5  # requests of one method still refused for now, at least, to be "persistent"


class RequestRefused(Exception):
    """The guard would not send a request; the message says why."""


class LimitReached(RequestRefused):
    """The run's request or time bound is used up; the run stops here."""


def potential_credit(amount: Any) -> int:
    """What a grant with this ``amount`` could credit on the laxest server, in micro-dollars."""
    if isinstance(amount, bool):
        return MICROS_PER_DOLLAR if amount else 0
    if isinstance(amount, int | float | Decimal):
        value = Decimal(str(amount)) if isinstance(amount, float) else Decimal(amount)
    elif isinstance(amount, str):
        try:
            value = Decimal(amount.strip().removeprefix("$").replace(",", ""))
        except InvalidOperation:
            return 0
    else:
        return 0
    if not value.is_finite():
        return 10**18
    return math.ceil(abs(value) * MICROS_PER_DOLLAR)


@dataclass
class Budget:
    total: int
    reserved: int = 0
    grants: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def remaining(self) -> int:
        return self.total - self.reserved

    def reserve(self, micros: int) -> bool:
        with self._lock:
            if self.reserved + micros > self.total:
                return False
            self.reserved += micros
            self.grants += 1
            return True


@dataclass
class SafetyStats:
    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    retries_after_429: int = 0
    retries_after_503: int = 0  # 503 with Retry-After to a read or a keyed request
    # Final answers, and those still refused for now (429s, and such 503s, handed on after the
    # retries), by method: a target that refuses most of one method's requests (every write,
    # say) is not busy now and then but unusable.
    answered_by_method: Counter[str] = field(default_factory=Counter)
    rate_limited_by_method: Counter[str] = field(default_factory=Counter)

    @property
    def rate_limited(self) -> int:
        """Requests still refused for now after the retries: what they answered went unjudged."""
        return sum(self.rate_limited_by_method.values())

    @property
    def persistently_rate_limited(self) -> bool:
        """Whether some method's requests were mostly refused for now (429, or 503 with
        Retry-After) even after the retries, at least PERSISTENT_REFUSALS of them: from then on
        what such answers leave undone is judged, not excused."""
        return any(limited >= PERSISTENT_REFUSALS and 2 * limited > self.answered_by_method[method]
                   for method, limited in self.rate_limited_by_method.items())
    seconds_waited: float = 0.0
    chats: int = 0


class SafetyGuard:
    def __init__(self, options: Options, clock: Callable[[], float] = time.monotonic,
                 facts: ContractFacts | None = None) -> None:
        self.options = options
        # The contract this run judges by: which POST is a grant or a chat, and who it names.
        self.facts = facts or ContractFacts.default()
        self.budget = Budget(options.budget_micros)
        self.stats = SafetyStats()
        self._clock = clock
        self.deadline = clock() + options.time_limit_seconds
        self._lock = threading.Lock()
        self._base_path = urlsplit(options.target_url).path.rstrip("/")

    # -- users ---------------------------------------------------------------------

    def new_user(self) -> str:
        """A user this run owns: the prefix and a random suffix nobody else will pick."""
        return f"{self.options.user_prefix}{secrets.token_hex(8)}"

    def owns(self, user_id: Any) -> bool:
        return isinstance(user_id, str) and user_id.startswith(self.options.user_prefix) and len(user_id) > len(
            self.options.user_prefix
        )

    @staticmethod
    def new_idempotency_key() -> str:
        return f"conformance-{secrets.token_hex(16)}"

    # -- bounds --------------------------------------------------------------------

    @property
    def seconds_left(self) -> float:
        return self.deadline - self._clock()

    def affordable(self, micros: int) -> bool:
        return micros <= self.budget.remaining

    # -- the gate ------------------------------------------------------------------

    def admit(self, request: requests.PreparedRequest) -> None:
        method = (request.method or "GET").upper()
        path = unquote(urlsplit(request.url or "").path)
        if self._base_path and path.startswith(self._base_path):
            path = path[len(self._base_path):]
        with self._lock:
            if self.options.max_requests is not None and self.stats.requests >= self.options.max_requests:
                raise LimitReached(f"request bound reached ({self.options.max_requests}; raise --max-requests)")
            if self.seconds_left <= 0:
                raise LimitReached(f"time bound reached ({self.options.time_limit_seconds:g} s; raise --time-limit)")
            try:
                self._check(method, path, request)
            except RequestRefused as refused:
                self.stats.refused[str(refused).split(":")[0]] += 1
                raise
            self.stats.requests += 1
            self.stats.by_method[method] += 1

    def _check(self, method: str, path: str, request: requests.PreparedRequest) -> None:
        if self.options.read_only and method not in READ_METHODS:
            raise RequestRefused(f"read-only: {method} {path} not sent")
        if method not in CONTRACT_METHODS and not (self.options.unusual_methods and method in UNUSUAL_METHODS):
            raise RequestRefused(f"unusual method: {method} {path} not sent")
        if method != "POST":
            return
        operation = self.facts.post_operation(path)
        operation_id, path_parameters = operation or ("", {})
        if operation_id == GRANT:
            self._check_grant(_json_body(request))
        elif operation_id == CHAT:
            header = self.facts.user_header
            user = request.headers.get(header)
            if user is None:
                self._check_developer_chat(request)
            elif not self.owns(user):
                raise RequestRefused(f"foreign user: a chat for {user!r} not sent")
            self.stats.chats += 1
        elif operation_id == USER_CHAT:
            user = next(iter(path_parameters.values()), None)
            if not self.owns(user):
                raise RequestRefused(f"foreign user: a chat for {user!r} not sent")
            self.stats.chats += 1
        else:
            raise RequestRefused(f"unknown operation: POST {path} not sent")

    def _check_developer_chat(self, request: requests.PreparedRequest) -> None:
        """A chat billed to the developer: only a tiny one, its cost reserved like a grant's."""
        body = _json_body(request)
        size = len(request.body or b"")
        max_tokens = body.get("max_tokens") if isinstance(body, dict) else None
        tiny = (isinstance(max_tokens, int) and 0 < max_tokens <= TINY_CHAT_MAX_TOKENS
                and size <= TINY_CHAT_BYTES and not body.get("n"))
        if not tiny:
            raise RequestRefused(f"developer billing: a chat without a prefixed {self.facts.user_header} not sent "
                                 f"(only a tiny one: max_tokens <= {TINY_CHAT_MAX_TOKENS}, <= {TINY_CHAT_BYTES} bytes)")
        if not self.budget.reserve(DEVELOPER_CHAT_RESERVE):
            raise RequestRefused("budget: a developer-billed chat not sent (raise --budget)")

    def _check_grant(self, body: Any) -> None:
        if not isinstance(body, dict):
            return  # nothing names a user or an amount: nobody can be credited
        user = body.get("external_user_id")
        if isinstance(user, str | int | float | bool) and not self.owns(user):
            raise RequestRefused(f"foreign user: a grant to {user!r} not sent")
        credit = potential_credit(body.get("amount"))
        if credit and not self.budget.reserve(credit):
            raise RequestRefused(
                f"budget: a grant of up to ${Decimal(credit) / MICROS_PER_DOLLAR} not sent "
                f"(${Decimal(self.budget.remaining) / MICROS_PER_DOLLAR} of the budget left; raise --budget)"
            )


class GuardedSession(requests.Session):
    """A session whose every request passes the guard; 429 answers wait for ``Retry-After``."""

    def __init__(self, guard: SafetyGuard, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.guard = guard
        self._sleep = sleep
        self.trust_env = False  # no proxies or netrc credentials picked up from the machine
        self.observers: list[Callable[[requests.PreparedRequest, requests.Response], None]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        options = self.guard.options
        kwargs.setdefault("timeout", options.request_timeout_seconds)
        kwargs["allow_redirects"] = False  # a redirect could lead a grant elsewhere
        # A space in a query value as RFC 3986 / RFC 6570 (OpenAPI's form style) write it: %20,
        # not HTML forms' '+' (requests writes a literal '+' as %2B, so every '+' left is a space).
        head, sep, query = (request.url or "").partition("?")
        if sep and "+" in query:
            request.url = head + "?" + query.replace("+", "%20")
        method = str(request.method)
        for attempt in range(options.max_retries_on_429 + 1):
            self.guard.admit(request)
            response = super().send(request, **kwargs)
            for observe in self.observers:
                observe(request, response)
            if not _asks_to_retry(request, response):
                self.guard.stats.answered_by_method[method] += 1
                return response
            if attempt == options.max_retries_on_429:
                break
            wait = rate_limit_wait(response.headers, attempt)
            if wait > options.max_retry_after_seconds or wait >= self.guard.seconds_left:
                break
            _ = response.content
            if response.status_code == 429:
                self.guard.stats.retries_after_429 += 1
            else:
                self.guard.stats.retries_after_503 += 1
            self.guard.stats.seconds_waited += wait
            self._sleep(wait)
        # Still refused for now: the caller gets the answer, and a rule seeing one judges nothing
        # (unless such refusals are most of what this method got: persistently_rate_limited).
        self.guard.stats.answered_by_method[method] += 1
        self.guard.stats.rate_limited_by_method[method] += 1
        return response


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _asks_to_retry(request: requests.PreparedRequest, response: requests.Response) -> bool:
    """A 429; or a 503 with ``Retry-After`` (the contract's "nothing was applied, retry") to a
    request that may be sent again: a read, or one with an Idempotency-Key. A keyless write is
    never repeated: were the 503 wrong about nothing applied, a second copy would apply too."""
    if response.status_code == 429:
        return True
    if response.status_code != 503 or not response.headers.get("Retry-After"):
        return False
    return (request.method or "").upper() in _SAFE_METHODS or "Idempotency-Key" in request.headers


def rate_limit_wait(headers: Any, attempt: int, now: Callable[[], float] = time.time) -> float:
    """How long to wait before retry ``attempt`` + 1 of a 429: ``Retry-After`` when sent; else
    ``X-RateLimit-Reset`` (the vendor's older headers: epoch seconds, or seconds from now when
    small); else 1, 2, 4, ... seconds, so that a per-minute window without either header is
    waited out within a few retries."""
    backoff = float(2**attempt)
    if headers.get("Retry-After"):
        return retry_after_seconds(headers.get("Retry-After"), default=backoff)
    reset = (headers.get("X-RateLimit-Reset") or "").strip()
    try:
        value = float(reset)
    except ValueError:
        return backoff
    if not math.isfinite(value) or value < 0:
        return backoff
    if value > 1e12:  # epoch milliseconds
        value /= 1000
    return max(0.0, value - now()) + 0.5 if value > 1e9 else value


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return default
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _json_body(request: requests.PreparedRequest) -> Any:
    body = request.body
    if body is None:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
