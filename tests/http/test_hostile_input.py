"""Hostile and malformed input, on both stores: never a 500, never a stack trace, and a state
snapshot taken before and after proves that nothing moved."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from mockserver import mock_state

from .conftest import snapshot

KEY = "sk-quota-your-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
GRANT = "/v1/funding/grant"


@pytest.fixture
def app(any_store: Callable[..., Flask]) -> Flask:
    return any_store()


def body_of(amount: str, user: str = '"hostile_user"') -> bytes:
    return f'{{"external_user_id": {user}, "amount": {amount}}}'.encode()


BAD_BODIES = {
    "not JSON": b"amount=1&external_user_id=u",
    "truncated JSON": b'{"external_user_id": "u", "amount": 1',
    "array": b"[1, 2, 3]",
    "string amount": body_of('"0.50"'),
    "bool amount": body_of("true"),
    "null amount": body_of("null"),
    "object amount": body_of('{"dollars": 1}'),
    "number user": body_of("1", user="123"),
    "NaN": body_of("NaN"),
    "Infinity": body_of("Infinity"),
    "-Infinity": body_of("-Infinity"),
    "1e309": body_of("1e309"),
    "zero": body_of("0"),
    "negative": body_of("-1.00"),
    "negative zero": body_of("-0.0"),
    "sub-cent": body_of("0.001"),
    "sub-micro-dollar": body_of("0.0000001"),
    "past the maximum": body_of("10000.01"),
    "huge": body_of("1" + "0" * 400),
    "deeply nested": b'{"external_user_id": "u", "amount": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "invalid UTF-8": b'{"external_user_id": "\xff\xfe", "amount": 1}',
    "control character in user": body_of("1", user='"a\\u0000b"'),
    "newline in user": body_of("1", user='"a\\nb"'),
    "user too long": body_of("1", user='"' + "u" * 256 + '"'),
    "empty user": body_of("1", user='""'),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_grant_bodies_are_400_and_change_nothing(app, body):
    before = snapshot(app)
    response = app.test_client().post(GRANT, data=body, headers={**AUTH, **JSON})
    assert response.status_code in (400, 413), response.data[:200]
    assert response.json["error"]["code"] in ("bad_request", "payload_too_large")
    assert b"Traceback" not in response.data
    assert snapshot(app) == before


def test_a_10_mb_body_is_413_and_changes_nothing(app):
    before = snapshot(app)
    body = b'{"external_user_id": "u", "amount": 1, "description": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = app.test_client().post(GRANT, data=body, headers={**AUTH, **JSON})
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"
    assert snapshot(app) == before


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "Bearer without a token": "Bearer",
    "Bearer and a space": "Bearer ",
    "another scheme": f"Basic {KEY}",
    "one character off": f"Bearer {KEY[:-1]}Y",
    "one character more": f"Bearer {KEY}x",
    "two tokens": f"Bearer {KEY} {KEY}",
    "unicode token": "Bearer sk-quota-ключ",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
def test_bad_keys_are_401_and_change_nothing(app, authorization):
    before = snapshot(app)
    headers = {**JSON} if authorization is None else {**JSON, "Authorization": authorization}
    response = app.test_client().post(GRANT, data=body_of("1.00"), headers=headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_api_key"
    assert snapshot(app) == before


def test_a_300_character_idempotency_key_is_400_and_changes_nothing(app):
    before = snapshot(app)
    response = app.test_client().post(
        GRANT, data=body_of("1.00"), headers={**AUTH, **JSON, "Idempotency-Key": "k" * 300}
    )
    assert response.status_code == 400 and "Idempotency-Key" in response.json["error"]["message"]
    assert snapshot(app) == before


HOSTILE_PATHS = [
    "/v1/users/..%2F..%2Fetc%2Fpasswd/balance",
    "/v1/users/%2E%2E/balance",
    "/v1/users/a%2Fb/balance",
    "/v1/users/a%00b/balance",
    "/v1/users/a%0Ab/balance",
    "/v1/users/%F0%9F%92%B8/balance",
    "/v1/users/" + "u" * 300 + "/balance",
    "/v1/users/../../balance",
    "/v1/balance?external_user_id=%00",
    "/v1/balance?external_user_id=..%2F",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_user_ids_in_paths_are_4xx_in_the_envelope(app, path):
    before = snapshot(app)
    response = app.test_client().get(path, headers=AUTH)
    assert 400 <= response.status_code < 500
    assert set(response.json["error"]) >= {"code", "message"}
    assert snapshot(app) == before


def test_hostile_but_valid_user_ids_are_just_names(app):
    client = app.test_client()
    for user in ("../../etc/passwd", "a/b", "💸 émoji", "' OR 1=1 --", "<script>"):
        response = client.post(GRANT, json={"external_user_id": user, "amount": 1}, headers=AUTH)
        assert response.status_code == 200 and response.json["external_user_id"] == user
    assert mock_state(app).service.conservation().holds


# -- ids that are not UTF-8 text (an adversary found two ids read as one) ------------------


# PATH_INFO as a server hands it over: the decoded bytes as latin-1 text (Werkzeug's test client
# would decode "%ff" to U+FFFD itself); the query string still encoded.
NOT_UTF8 = [("/v1/users/\xff/balance", ""), ("/v1/users/a\xc3/balance", ""),
            ("/v1/balance", "external_user_id=%fe"), ("/v1/balance", "external_user_id=%C3%28")]


@pytest.mark.parametrize(("path", "query"), NOT_UTF8)
def test_an_id_that_is_not_utf8_is_refused_not_read_as_another(any_store, path, query):
    app = any_store()
    client = app.test_client()
    for user in ("\ufffd", "%FE", "%fe"):  # what the lenient readings made of them
        client.post("/v1/funding/grant", json={"external_user_id": user, "amount": 1.0}, headers=AUTH)
    response = client.get("/", headers=AUTH, environ_overrides={"PATH_INFO": path, "QUERY_STRING": query})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request" and "UTF-8" in response.json["error"]["message"]


def test_a_chat_for_a_path_id_that_is_not_utf8_charges_nobody(any_store):
    from .conftest import snapshot

    app = any_store()
    client = app.test_client()
    client.post("/v1/funding/grant", json={"external_user_id": "\ufffd", "amount": 1.0}, headers=AUTH)
    before = snapshot(app)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    raw_path = {"PATH_INFO": "/v1/users/\xff/chat/completions"}
    response = client.post("/", json=body, headers=AUTH, environ_overrides=raw_path)
    assert response.status_code == 400
    assert snapshot(app) == before


def test_utf8_ids_percent_encoded_still_read_as_themselves(any_store):
    app = any_store()
    client = app.test_client()
    client.post("/v1/funding/grant", json={"external_user_id": "café ü", "amount": 1.0}, headers=AUTH)
    for path in ("/v1/users/caf%C3%A9%20%C3%BC/balance", "/v1/balance?external_user_id=caf%C3%A9+%C3%BC"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 200 and response.json["external_user_id"] == "café ü", path
