"""Simulated conditions on the public API: rate limiting, the ``Prefer`` header and fault rules.

Each request of a contract operation passes :func:`check_rate_limit` (when a limit is set,
before authentication) and :func:`before_operation` (after it, before validation). A refusal
(429), a documented error asked for with ``Prefer: code=`` or a fault rule's failure is
raised as a :class:`QuotaError`, so it reaches the client through the one error path
(``errors.py``) in the documented envelope, having changed no state.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask, Response, request

from ..contract import Contract, Operation
from ..domain.clock import Clock
from ..domain.errors import BAD_REQUEST, RATE_LIMIT_EXCEEDED, QuotaError
from ..domain.faults import MAX_LATENCY_MS, FaultBook
from ..domain.faults import NONE as NO_FAULTS
from ..domain.rate_limit import RateLimiter
from .drop import request_drop
from .state import bearer_token

# Headers added to whatever answers this request (the error handler's envelope included).
_EXTRA_HEADERS_KEY = "quota_mock.extra_headers"
_PREFERENCE = re.compile(r"^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*(\"[^\"]*\"|[^;\s]*))?")
# Why a simulated answer was sent, for the request journal's "problem" (read by journal_recorder).
SIMULATED_ENVIRON_KEY = "quota_mock.simulated"
# Says why a Prefer header was not applied where the operation documents no 400 to refuse it.
PREFER_IGNORED_HEADER = "Quota-Mock-Prefer-Ignored"
# The vendor's documented default, for the headers of a simulated 429 when no limit is set.
DOCUMENTED_RATE_LIMIT = 100


# The milliseconds a request's Prefer: chunk-delay asked for between a stream's events (read by chat.py).
CHUNK_DELAY_ENVIRON_KEY = "quota_mock.chunk_delay_ms"


@dataclass(frozen=True, slots=True)
class Preferences:
    code: int | None = None
    delay_ms: int = 0
    chunk_delay_ms: int | None = None


def parse_prefer(values: Iterable[str]) -> Preferences:
    """RFC 7240 ``Prefer`` header(s): ``code=402``, ``delay=800``, ``chunk-delay=50`` (between a
    streamed chat's events); unknown preferences ignored.

    A known preference with a value that cannot mean anything is refused, not ignored: the
    developer asked for a scenario and would otherwise silently get another.
    """
    seen: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            match = _PREFERENCE.match(part)
            if match is None:
                continue
            name = match.group(1).lower()
            # The first occurrence of a preference wins (RFC 7240, section 2).
            seen.setdefault(name, (match.group(2) or "").strip('"'))
    code = None
    if "code" in seen:
        if not re.fullmatch(r"[1-5][0-9][0-9]", seen["code"]):
            raise QuotaError(BAD_REQUEST, f"Prefer: code={seen['code']!r} is not an HTTP status code")
        code = int(seen["code"])
    delay, chunk_delay = _milliseconds(seen, "delay"), _milliseconds(seen, "chunk-delay")
    return Preferences(code=code, delay_ms=delay or 0, chunk_delay_ms=chunk_delay)


def _milliseconds(seen: dict[str, str], name: str) -> int | None:
    if name not in seen:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", seen[name]) or int(seen[name]) > MAX_LATENCY_MS:
        raise QuotaError(
            BAD_REQUEST, f"Prefer: {name} must be milliseconds from 0 to {MAX_LATENCY_MS}, not {seen[name]!r}"
        )
    return int(seen[name])


def documented_error(contract: Contract, operation: Operation, status: int) -> QuotaError:
    """The error ``operation`` documents for ``status``, built from the contract's example.

    Its headers use wall-clock time: a simulated answer must not need the state store (with
    Redis the mock clock lives there), and clients compare a reset time with their own clock.
    """
    now = time.time()
    codes = operation.error_codes(status)
    if not codes:
        documented = ", ".join(s for s in operation.responses if operation.error_codes(s))
        raise QuotaError(
            BAD_REQUEST,
            f"{operation.operation_id} does not document status {status}; it documents {documented} "
            "(and 200, the normal answer)",
        )
    response = operation.responses[str(status)]
    try:
        example = contract.example(operation.operation_id, str(status))["error"]
    except (KeyError, TypeError, StopIteration):
        example = {}
    code = example.get("code") if example.get("code") in codes else codes[0]
    message = example.get("message") or f"Simulated {code}"
    # Fill the headers the contract documents for this answer, so clients can be tested on them.
    values = {
        "retry-after": "1",
        "x-ratelimit-limit": str(DOCUMENTED_RATE_LIMIT),
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(now) + 1),
    }
    headers = {name: values[name.lower()] for name in response.get("headers", {}) if name.lower() in values}
    return QuotaError(code, message, headers=headers)


def check_rate_limit(limiter: RateLimiter, now: float) -> None:
    """Count this request against its caller's window; 429 past the limit (headers either way)."""
    # Per API key, however the header spells the scheme (the key authenticates the same);
    # a digest keeps raw keys out of memory. Without a bearer token, per client address.
    token = bearer_token(request.headers.get("Authorization"))
    caller = (
        "key:" + hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        if token is not None
        else f"addr:{request.remote_addr}"
    )
    decision = limiter.hit(caller, now)
    headers = decision.headers()
    if not decision.allowed:
        raise QuotaError(
            RATE_LIMIT_EXCEEDED,
            f"Rate limit of {limiter.rate.describe()} exceeded; retry in {decision.retry_after} s",
            headers=headers,
        )
    add_response_headers(headers)


def before_operation(
    contract: Contract, operation: Operation, faults: FaultBook, clock: Clock, hold: Callable[[float], None]
) -> None:
    """``Prefer`` and fault rules for one request: raise, wait (``hold``), or mark it for dropping.

    A ``Prefer: code=`` answer comes first and leaves the fault rules untouched: the
    developer asked for that one answer explicitly.
    """
    # The common case, kept cheap (this runs on every request): no Prefer header, no rules.
    if "HTTP_PREFER" not in request.environ and not faults.active:
        return
    prefer = request.headers.getlist("Prefer")
    try:
        preferences = parse_prefer(prefer)
        applied = [f"delay={preferences.delay_ms}"] if preferences.delay_ms else []
        error = (
            documented_error(contract, operation, preferences.code)
            if preferences.code is not None and preferences.code != 200
            else None
        )
    except QuotaError as refusal:
        if operation.error_codes(400):
            raise
        # This operation documents no 400 (GET /v1/me, /v1/packages): the mock must not
        # answer one, so the preference is not applied, and the header says why.
        add_response_headers({PREFER_IGNORED_HEADER: refusal.message})
        preferences, applied, error = Preferences(), [], None
    if error is not None:
        _wait_ms(preferences.delay_ms, hold)
        error.headers["Preference-Applied"] = ", ".join([*applied, f"code={preferences.code}"])
        request.environ[SIMULATED_ENVIRON_KEY] = f"asked for with Prefer: code={preferences.code}"
        raise error
    if preferences.code == 200:
        applied.append("code=200")
    if preferences.chunk_delay_ms is not None:
        # Applied by a streamed chat only (chat.py), which says so in Preference-Applied.
        request.environ[CHUNK_DELAY_ENVIRON_KEY] = preferences.chunk_delay_ms
    if applied:
        add_response_headers({"Preference-Applied": ", ".join(applied)})
    # Only read the clock when rules exist: with Redis it is a round trip, and the operations
    # that need no state (/v1/packages) must keep answering while Redis is away.
    fault = faults.take(operation.operation_id, clock.now()) if faults.active else NO_FAULTS
    _wait_ms(preferences.delay_ms + fault.latency_ms, hold)
    if fault.fail_status is not None:
        request.environ[SIMULATED_ENVIRON_KEY] = f"a fault rule (/_mock/faults) failed it with {fault.fail_status}"
        raise documented_error(contract, operation, fault.fail_status)
    if fault.drop:
        request.environ[SIMULATED_ENVIRON_KEY] = "a fault rule (/_mock/faults) applied it, then dropped the connection"
    if fault.drop:
        request_drop(request.environ)


def _wait_ms(milliseconds: int, hold: Callable[[float], None]) -> None:
    if milliseconds > 0:
        hold(min(milliseconds, MAX_LATENCY_MS) / 1000)


def add_response_headers(headers: dict[str, str]) -> None:
    request.environ.setdefault(_EXTRA_HEADERS_KEY, {}).update(headers)


def add_applied_preference(preference: str) -> None:
    """Add one preference to this answer's ``Preference-Applied`` (after any already there)."""
    extra = request.environ.setdefault(_EXTRA_HEADERS_KEY, {})
    extra["Preference-Applied"] = ", ".join(filter(None, (extra.get("Preference-Applied"), preference)))


def install_extra_headers(app: Flask) -> None:
    @app.after_request
    def _extra(response: Response) -> Response:
        for name, value in request.environ.get(_EXTRA_HEADERS_KEY, {}).items():
            response.headers.setdefault(name, value)
        return response
