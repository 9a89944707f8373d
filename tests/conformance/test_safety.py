"""The safety guard: what it refuses to send, the budget it keeps, and 429 handling."""

from __future__ import annotations

import json

import pytest
import requests

from conformance.options import Options
from conformance.safety import (
    GuardedSession,
    LimitReached,
    RequestRefused,
    SafetyGuard,
    potential_credit,
    rate_limit_wait,
)
from conformance.transport import WSGIAdapter

URL = "http://target.test"


def prepared(method: str, path: str, body: object = None, headers: dict[str, str] | None = None):
    data = json.dumps(body) if body is not None else None
    return requests.Request(method, URL + path, data=data, headers=headers or {}).prepare()


def guard(**options) -> SafetyGuard:
    return SafetyGuard(Options(api_key="k", base_url=URL, **options))


def test_potential_credit_reads_amounts_generously():
    assert potential_credit(0.5) == 500_000
    assert potential_credit(-3) == 3_000_000
    assert potential_credit("$1.25") == 1_250_000
    assert potential_credit(True) == 1_000_000
    assert potential_credit(float("inf")) > 10**15
    assert potential_credit("abc") == potential_credit(None) == potential_credit([1]) == 0


def test_grants_to_foreign_users_are_refused():
    g = guard()
    for user in ("user_123", 123, "conformance-"):
        with pytest.raises(RequestRefused, match="foreign user"):
            g.admit(prepared("POST", "/v1/funding/grant", {"external_user_id": user, "amount": 0.01}))
    g.admit(prepared("POST", "/v1/funding/grant", {"external_user_id": g.new_user(), "amount": 0.01}))


def test_budget_is_reserved_before_sending_and_never_exceeded():
    g = guard(budget_micros=20_000)
    user = g.new_user()
    g.admit(prepared("POST", "/v1/funding/grant", {"external_user_id": user, "amount": 0.01}))
    g.admit(prepared("POST", "/v1/funding/grant", {"external_user_id": user, "amount": "0.01"}))
    with pytest.raises(RequestRefused, match="budget"):
        g.admit(prepared("POST", "/v1/funding/grant", {"external_user_id": user, "amount": 0.01}))
    assert g.budget.reserved == 20_000


def test_read_only_refuses_every_non_read_method():
    g = guard(read_only=True)
    g.admit(prepared("GET", "/v1/balance"))
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        with pytest.raises(RequestRefused, match="read-only"):
            g.admit(prepared(method, "/v1/funding/grant", {}))


def test_unusual_methods_and_unknown_posts_are_refused():
    g = guard()
    with pytest.raises(RequestRefused, match="unusual method"):
        g.admit(prepared("TRACE", "/v1/balance"))
    with pytest.raises(RequestRefused, match="unknown operation"):
        g.admit(prepared("POST", "/_mock/reset"))


def test_chats_never_bill_the_developer_or_foreign_users():
    g = guard()
    with pytest.raises(RequestRefused, match="developer billing"):
        g.admit(prepared("POST", "/v1/chat/completions", {"model": "m"}))
    with pytest.raises(RequestRefused, match="foreign user"):
        g.admit(prepared("POST", "/v1/users/user_123/chat/completions", {"model": "m"}))
    g.admit(prepared("POST", "/v1/chat/completions", {"model": "m"}, {"X-External-User-ID": g.new_user()}))


def test_request_bound():
    g = guard(max_requests=10)
    for _ in range(10):
        g.admit(prepared("GET", "/v1/balance"))
    with pytest.raises(LimitReached):
        g.admit(prepared("GET", "/v1/balance"))


def test_429_is_retried_after_retry_after():
    calls: list[int] = []

    def app(environ, start_response):
        calls.append(1)
        if len(calls) < 3:
            start_response("429 Too Many Requests", [("Retry-After", "2"), ("Content-Type", "application/json")])
            return [b'{"error": {"code": "rate_limit_exceeded", "message": "slow down"}}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    slept: list[float] = []
    session = GuardedSession(guard(), sleep=slept.append)
    session.mount(URL + "/", WSGIAdapter(app))
    assert session.get(URL + "/v1/balance").status_code == 200
    assert slept == [2.0, 2.0] and session.guard.stats.retries_after_429 == 2


def _sheds_once(retry_after: str | None = "1"):
    """A WSGI app answering its first request 503 service_unavailable, the rest 200."""
    calls: list[str] = []

    def app(environ, start_response):
        calls.append(environ["REQUEST_METHOD"])
        if len(calls) == 1:
            headers = [("Content-Type", "application/json")] + ([("Retry-After", retry_after)] if retry_after else [])
            start_response("503 Service Unavailable", headers)
            return [b'{"error": {"code": "service_unavailable", "message": "retry later"}}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    return app, calls


@pytest.mark.parametrize(("method", "headers", "retried"), [
    ("GET", {}, True),  # a read may be sent again
    ("POST", {"Idempotency-Key": "k-1"}, True),  # so may a keyed write: a second copy replays
    ("POST", {}, False),  # a keyless write never: were the 503 wrong, it would apply twice
])
def test_a_503_with_retry_after_is_retried_when_sending_again_is_safe(method, headers, retried):
    app, calls = _sheds_once()
    slept: list[float] = []
    g = guard()
    session = GuardedSession(g, sleep=slept.append)
    session.mount(URL + "/", WSGIAdapter(app))
    body = {"external_user_id": g.new_user(), "amount": 0.01} if method == "POST" else None
    path = "/v1/funding/grant" if method == "POST" else "/v1/balance"
    answer = session.request(method, URL + path, json=body, headers=headers)
    assert (answer.status_code, len(calls), slept) == ((200, 2, [1.0]) if retried else (503, 1, []))
    assert g.stats.retries_after_503 == (1 if retried else 0)


def test_a_503_without_retry_after_is_an_answer():
    app, calls = _sheds_once(retry_after=None)
    session = GuardedSession(guard(), sleep=[].append)
    session.mount(URL + "/", WSGIAdapter(app))
    assert session.get(URL + "/v1/balance").status_code == 503 and len(calls) == 1


def test_429_with_a_too_long_retry_after_is_not_waited_for():
    def app(environ, start_response):
        start_response("429 Too Many Requests", [("Retry-After", "3600")])
        return [b""]

    slept: list[float] = []
    session = GuardedSession(guard(), sleep=slept.append)
    session.mount(URL + "/", WSGIAdapter(app))
    assert session.get(URL + "/v1/balance").status_code == 429 and slept == []


def test_429_without_retry_after_waits_for_the_rate_limit_reset_or_backs_off():
    now = 1_800_000_000.0
    assert rate_limit_wait({"X-RateLimit-Reset": str(now + 30)}, 0, now=lambda: now) == 30.5  # epoch seconds
    assert rate_limit_wait({"X-RateLimit-Reset": str((now + 12) * 1000)}, 0, now=lambda: now) == 12.5  # epoch ms
    assert rate_limit_wait({"X-RateLimit-Reset": "7"}, 0) == 7.0  # seconds from now
    assert [rate_limit_wait({}, attempt) for attempt in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert rate_limit_wait({"X-RateLimit-Reset": "soon"}, 2) == 4.0
    assert rate_limit_wait({"Retry-After": "3", "X-RateLimit-Reset": "50"}, 0) == 3.0


def test_a_per_minute_limit_without_retry_after_is_waited_out():
    """100 requests a minute, 429 with only X-RateLimit-* headers (as the vendor's older pages
    show): the request gets through once the window has passed."""
    clock = [0.0]
    sent: list[float] = []

    def app(environ, start_response):
        sent.append(clock[0])
        if clock[0] < 60:
            start_response("429 Too Many Requests", [("X-RateLimit-Limit", "100"), ("X-RateLimit-Remaining", "0"),
                                                     ("Content-Type", "application/json")])
            return [b'{"error": {"code": "rate_limit_exceeded", "message": "100 requests a minute"}}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    session = GuardedSession(guard(), sleep=sleep)
    session.mount(URL + "/", WSGIAdapter(app))
    assert session.get(URL + "/v1/balance").status_code == 200
    assert session.guard.stats.rate_limited == 0 and len(sent) == 7  # waited 1+2+4+8+16+32 s
