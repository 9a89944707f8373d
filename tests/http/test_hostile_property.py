"""A property of the whole app, on both stores: whatever arrives (generated hostile bodies,
headers and paths, to the public and the control API), no answer is a 500, every error is
in the envelope, and a refused request leaves the state exactly as it was.

The example count is bounded for the default run; ``-m slow`` runs many more, unseeded.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver import mock_state

KEY = "sk-quota-your-api-key"

# Text of every kind, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=20)
HOSTILE_TEXT = st.one_of(
    ANY_TEXT,
    st.sampled_from(["user_123", "u", "", " ", "../../etc/passwd", "a/b", "x\udfffy", "\ud800", "\x00", "\n", "💸"]),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1, 3.0, 0.001, 10000.01, -1, 1e308]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, HOSTILE_TEXT)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4), max_leaves=12
)
FIELDS = st.sampled_from(
    ["external_user_id", "amount", "description", "model", "messages", "max_tokens", "stream", "advance_seconds",
     "reset", "balance", "operation_id", "action", "status", "count", "latency_ms", "ttl_seconds", "pool", "users",
     "api_keys", "prices", "developer"]
)  # fmt: skip
DOCUMENTS = st.one_of(
    st.dictionaries(FIELDS, JSON_VALUES, max_size=6),
    st.fixed_dictionaries({"external_user_id": HOSTILE_TEXT, "amount": NUMBERS}),
    st.fixed_dictionaries(
        {
            "external_user_id": st.sampled_from(["user_123", "prop_user"]),
            "amount": st.sampled_from([0.01, 1, 2.5, 9999.99]),
        }
    ),
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["gpt-4o-mini", "m"]),
            "messages": JSON_VALUES,
            "max_tokens": NUMBERS,
            "stream": st.booleans(),
        }
    ),
    JSON_VALUES,
)
RAW_BODIES = st.one_of(
    DOCUMENTS.map(lambda d: json.dumps(d, ensure_ascii=True).encode()),  # lone surrogates become \\uXXXX escapes
    DOCUMENTS.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"external_user_id":"u","amount":0.01,"amount":2}',
            b'{"external_user_id":"u","amount":1,"x":' + b"[" * 600 + b"]" * 600 + b"}",
            b'{"external_user_id":"u","amount":1,"x":1e1000000}',
            b'{"external_user_id":"u","amount":1,"description":"x\\udfffy"}',
            b'{"advance_seconds": 253402300800}',
            b'{"advance_seconds": -1e12}',
            b"pool: 1\npool: 2\n",
            b"a: &a [1, 1, 1]\nb: [*a, *a, *a]\n",
            b"",
        ]
    ),
)
PATH_IDS = st.one_of(
    HOSTILE_TEXT.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["user_123", "%ED%B0%80", "%00", "..%2F..", "%0AFORGED", "a%2Fb", "%FF"]),
)
PATHS = st.one_of(
    st.sampled_from(
        ["/v1/funding/grant", "/v1/balance", "/v1/me", "/v1/packages", "/v1/chat/completions", "/_mock/reset",
         "/_mock/seed", "/_mock/clock", "/_mock/faults", "/_mock/pool", "/_mock/state", "/_mock/", "/_mock/ledger",
         "/_mock/dashboard.json", "/_mock/dashboard/grant", "/_mock/dashboard/faults", "/_mock/dashboard/clock",
         "/_mock/dashboard/balance", "/_mock/idempotency-keys", "/v2/nothing", "/"]
    ),
    PATH_IDS.map(lambda i: f"/v1/users/{i}/balance"),
    PATH_IDS.map(lambda i: f"/v1/users/{i}/chat/completions"),
    PATH_IDS.map(lambda i: f"/_mock/users/{i}/balance"),
    PATH_IDS.map(lambda i: f"/v1/balance?external_user_id={i}"),
    PATH_IDS.map(lambda i: f"/_mock/ledger?limit={i}"),
)  # fmt: skip
# Header values as a WSGI server hands them over: latin-1 text (UTF-8 bytes read so included).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.sampled_from(
            [f"Bearer {KEY}", f"bearer  {KEY}", f"BEARER {KEY}", "Bearer", "Basic x", f"Bearer {KEY}x", ""]
        ) | HEADER_TEXT,
        "Content-Type": st.sampled_from(
            ["application/json", "application/json; charset=latin-1", "text/plain", "application/yaml",
             "application/x-www-form-urlencoded", "multipart/form-data", ""]
        ) | HEADER_TEXT,
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "gzip, gzip"]),
        "Idempotency-Key": HEADER_TEXT,
        "X-External-User-ID": HEADER_TEXT,
        # No delay preference: a sleeping request proves nothing here.
        "Prefer": st.sampled_from(["code=402", "code=429", "code=200", "code=abc", "code=503", "foo=bar"]),
        "Origin": st.sampled_from(["http://evil.example", "null", "http://localhost"]) | HEADER_TEXT,
        "Sec-Fetch-Site": st.sampled_from(["cross-site", "same-site", "same-origin", "none"]),
    },
)  # fmt: skip
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])


def state_of(app: Flask) -> tuple[Any, ...]:
    """All a request could change. Fault rules by their identity: a rule's remaining count
    moves when it fails a request, which is the refusal it exists for."""
    state = mock_state(app)
    store = state.service.store
    now = state.clock.now()
    return (
        state.service.developer_balance(),
        tuple(sorted(store.users().items())),
        store.ledger_size(),
        tuple((e.id, e.amount, e.user_id) for e in store.ledger_tail(20)),
        tuple((k.scope, k.key, k.state) for k in store.idempotency_keys(now)),
        round(state.clock.offset),
        tuple((r.id, r.operation_id, r.action) for r in state.faults.rules(now)),
        state.service.seed,
    )


def exercise(app: Flask, max_examples: int, derandomize: bool) -> None:
    client = app.test_client()

    @given(method=METHODS, path=PATHS, headers=HEADERS, body=RAW_BODIES)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    def no_500_and_refusals_change_nothing(method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if headers.get("Content-Encoding") in ("gzip", "gzip, gzip"):
            body = gzip.compress(body)
        before = state_of(app)
        response = client.open(path, method=method, headers=headers, data=body)
        status = response.status_code
        assert status != 500, response.get_data(as_text=True)[:500]
        if status >= 400 and method != "HEAD":
            error = response.get_json(silent=True)
            assert error is not None and set(error["error"]) >= {"code", "message"}, response.data[:300]
            assert error["error"]["code"] != "internal_error"
            assert state_of(app) == before, (method, path, status, error)

    no_500_and_refusals_change_nothing()


def test_no_input_gets_a_500_and_no_refusal_changes_state(any_store: Callable[..., Flask]) -> None:
    exercise(any_store(), max_examples=60, derandomize=True)


@pytest.mark.slow
def test_no_input_gets_a_500_and_no_refusal_changes_state_at_length(any_store: Callable[..., Flask]) -> None:
    exercise(any_store(), max_examples=3000, derandomize=False)
