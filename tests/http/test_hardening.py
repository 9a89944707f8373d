"""The edge of the mock (issue 11), through the Flask test client on both stores: every input
gets a clear answer in the envelope, and a refused request changes nothing (a snapshot of
the whole state, taken before and after, says so).

The same reproductions over real sockets, on granian, waitress and Redis with two workers,
are in tests/e2e/test_hardening.py and tests/redis/test_hardening_two_workers.py.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import pytest
from flask import Flask

from mockserver import mock_state
from mockserver.contract import control_contract
from mockserver.web.json_input import MAX_DEPTH
from mockserver.web.request_log import redact_key

from .conftest import snapshot

KEY = "sk-quota-your-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
GRANT = "/v1/funding/grant"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
EVIL = "http://evil.example"


@pytest.fixture
def app(any_store: Callable[..., Flask]) -> Flask:
    return any_store()


def refused(app: Flask, status: int, method: str, path: str, **request: Any) -> dict[str, str]:
    """Make one request; it must be refused with ``status`` in the envelope and change nothing."""
    before = snapshot(app)
    response = app.test_client().open(path, method=method, **request)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert snapshot(app) == before
    return response.json["error"]


def post_json(app: Flask, path: str, raw: bytes | str, status: int, headers: dict[str, str] | None = None) -> str:
    error = refused(app, status, "POST", path, data=raw, headers={**AUTH, **JSON, **(headers or {})})
    return error["message"]


# --- numbers --------------------------------------------------------------------------------


def streamed_text(response: Any) -> str:
    events = [e.removeprefix("data: ") for e in response.get_data(as_text=True).split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])


@pytest.mark.parametrize("path", ["/v1/users/user_123/chat/completions", "/v1/chat/completions"])
@pytest.mark.parametrize("stream", [False, True])
def test_an_integral_float_max_tokens_is_that_integer(app, path, stream):
    client = app.test_client()
    whole = client.post(path, json={**CHAT, "max_tokens": 3, "stream": stream}, headers=AUTH)
    for spelling in ("3.0", "3.000", "30e-1"):
        raw = json.dumps({**CHAT, "stream": stream})[:-1] + f', "max_tokens": {spelling}}}'
        answer = client.post(path, data=raw, headers={**AUTH, **JSON})
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        if stream:
            assert streamed_text(answer) == streamed_text(whole)
        else:
            assert answer.json["choices"] == whole.json["choices"]
            assert answer.json["usage"] == whole.json["usage"]
    assert "'max_tokens'" in post_json(app, path, json.dumps({**CHAT, "max_tokens": 3.5}), 400)


def test_integral_floats_are_integers_in_amounts_and_control_numbers(app):
    client = app.test_client()
    granted = client.post(GRANT, data=b'{"external_user_id": "f", "amount": 5.0}', headers={**AUTH, **JSON})
    assert granted.status_code == 200 and granted.json["amount_granted"] == "$5.00"
    rule = client.post("/_mock/faults", json={"operation_id": "getMe", "action": "fail", "status": 503.0, "count": 2.0})
    assert rule.status_code == 201 and rule.json["status"] == 503 and rule.json["remaining"] == 2
    moved = client.post("/_mock/clock", data=b'{"advance_seconds": 60.0}', headers=JSON)
    assert moved.status_code == 200 and round(moved.json["offset_seconds"]) == 60
    # The dashboard's form reads text as the schema's type, "2.0" included.
    form = {"operation_id": "getMe", "action": "fail", "status": "503", "count": "2.0"}
    assert client.post("/_mock/dashboard/faults", data=form).status_code == 303
    assert [r["remaining"] for r in client.get("/_mock/faults").json["faults"]] == [2, 2]


@pytest.mark.parametrize("number", ["1e1000000", "-1e1000000", "1e-1000000", "1" * 401, "0." + "1" * 401])
def test_numbers_past_the_bounds_are_400_naming_the_field(app, number):
    message = post_json(app, GRANT, f'{{"external_user_id": "u", "amount": 1, "x": {number}}}', 400)
    assert "'x'" in message and "out of range" in message


def test_numbers_a_float_encoder_writes_are_within_the_bounds(app):
    for number in ("1.7976931348623157e308", "5e-324", "123456789012345678901234567890"):
        answer = app.test_client().post(GRANT, data=f'{{"external_user_id": "u", "amount": 1, "x": {number}}}',
                                        headers={**AUTH, **JSON})  # fmt: skip
        assert answer.status_code == 200


# --- structure and text ---------------------------------------------------------------------


def test_nesting_is_bounded_before_anything_recurses(app):
    at_the_limit = '{"external_user_id": "u", "amount": 1, "x": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert app.test_client().post(GRANT, data=at_the_limit, headers={**AUTH, **JSON}).status_code == 200
    for deep in (
        '{"external_user_id": "u", "amount": 1, "x": ' + "[" * 600 + "]" * 600 + "}",
        '{"external_user_id": "u", "amount": 1, "description": ' + '{"a": ' * 400 + "1" + "}" * 400 + "}",
    ):
        assert "nested too deeply" in post_json(app, GRANT, deep, 400)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"external_user_id": "u", "amount": 1, "description": "x\\udfffy"}', "description"),
        ('{"external_user_id": "u\\ud800", "amount": 1}', "external_user_id"),
        ('{"external_user_id": "u", "amount": 1, "\\udfff": 1}', "\\udfff"),
        ('{"external_user_id": "u", "amount": 1, "x": ["ok", "\\udc00"]}', "x.1"),
    ],
)
def test_lone_surrogates_are_400_naming_the_field_and_every_view_still_answers(app, raw, field):
    message = post_json(app, GRANT, raw, 400)
    assert f"'{field}'" in message and "surrogate" in message
    client = app.test_client()
    for view in ("/_mock/", "/_mock/dashboard.json", "/_mock/ledger", "/_mock/state"):
        assert client.get(view).status_code == 200
    # A surrogate pair is a character like any other.
    paired = client.post(GRANT, data='{"external_user_id": "u\\ud83d\\udcb8", "amount": 1}', headers={**AUTH, **JSON})
    assert paired.status_code == 200 and paired.json["external_user_id"] == "u💸"


def test_duplicate_fields_are_400_wherever_json_is_read(app):
    assert "'amount'" in post_json(app, GRANT, '{"external_user_id":"u","amount":0.01,"amount":2}', 400)
    assert "'role'" in post_json(
        app, "/v1/chat/completions", '{"model": "m", "messages": [{"role": "user", "role": "system"}]}', 400
    )
    assert "'pool'" in post_json(app, "/_mock/seed", '{"pool": 1, "pool": 2}', 400)
    yaml_seed = b"pool: 1\npool: 1000000\n"
    assert "'pool'" in post_json(app, "/_mock/seed", yaml_seed, 400, headers={"Content-Type": "application/yaml"})
    assert "'count'" in post_json(
        app, "/_mock/faults", '{"operation_id": "getMe", "action": "fail", "count": 1, "count": 9}', 400
    )


# --- headers --------------------------------------------------------------------------------


def wire(text: str) -> str:
    """A header value as a WSGI server hands it over: its UTF-8 bytes, read as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def test_non_ascii_header_values_are_read_as_utf8(app):
    client = app.test_client()
    assert client.post(GRANT, json={"external_user_id": "café", "amount": 1}, headers=AUTH).status_code == 200
    billed = client.post("/v1/chat/completions", json=CHAT, headers={**AUTH, "X-External-User-ID": wire("café")})
    assert billed.status_code == 200 and billed.json["quota"]["billing_mode"] == "user"
    assert mock_state(app).service.user_balance("café") < 1_000_000


def test_header_values_that_are_not_utf8_or_arrive_empty_are_400_naming_the_header(app):
    for value, words in (("caf\xe9", "not UTF-8"), ("", "empty")):
        error = refused(
            app, 400, "POST", "/v1/chat/completions", json=CHAT, headers={**AUTH, "X-External-User-ID": value}
        )
        assert "'X-External-User-ID'" in error["message"] and words in error["message"]
    error = refused(app, 400, "POST", GRANT, json={"external_user_id": "u", "amount": 1},
                    headers={**AUTH, "Idempotency-Key": "k\xff"})  # fmt: skip
    assert "'Idempotency-Key'" in error["message"]


# --- bodies: media types, encodings, sizes --------------------------------------------------

BODY = json.dumps({"external_user_id": "u", "amount": 1}).encode()


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json; charset=latin-1", "application/jsonx"],
)  # fmt: skip
def test_a_body_that_is_not_json_is_415(app, content_type):
    headers = {**AUTH} if content_type is None else {**AUTH, "Content-Type": content_type}
    error = refused(app, 415, "POST", GRANT, data=BODY, headers=headers)
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]


def test_json_with_parameters_the_contract_allows_is_accepted(app):
    for content_type in ("application/json; charset=utf-8", "APPLICATION/JSON;charset=UTF-8"):
        answer = app.test_client().post(GRANT, data=BODY, headers={**AUTH, "Content-Type": content_type})
        assert answer.status_code == 200


def test_compressed_bodies_are_decoded_within_the_limit(app):
    client = app.test_client()
    for coding, data in (("gzip", gzip.compress(BODY)), ("deflate", zlib.compress(BODY))):
        answer = client.post(GRANT, data=data, headers={**AUTH, **JSON, "Content-Encoding": coding})
        assert answer.status_code == 200, answer.json
    limit = mock_state(app).config.max_body_bytes
    bomb = gzip.compress(json.dumps({"external_user_id": "u", "amount": 1, "description": "x" * limit}).encode())
    error = refused(app, 413, "POST", GRANT, data=bomb, headers={**AUTH, **JSON, "Content-Encoding": "gzip"})
    assert error["code"] == "payload_too_large" and "decoded" in error["message"]
    truncated = gzip.compress(BODY)[:-6]
    error = refused(app, 400, "POST", GRANT, data=truncated, headers={**AUTH, **JSON, "Content-Encoding": "gzip"})
    assert "gzip" in error["message"]
    error = refused(app, 415, "POST", GRANT, data=BODY, headers={**AUTH, **JSON, "Content-Encoding": "br"})
    assert "Content-Encoding" in error["message"]


def test_a_streamed_body_without_a_length_meets_the_limit_too(app):
    limit = mock_state(app).config.max_body_bytes
    padded = BODY + b" " * limit + b"garbage"

    def streamed(data: bytes) -> dict[str, Any]:
        # No Content-Length: the server ends the stream (as granian and waitress do for chunked bodies).
        return {"input_stream": io.BytesIO(data), "headers": {**AUTH, **JSON}}

    error = refused(app, 413, "POST", GRANT, **streamed(padded))
    assert error["code"] == "payload_too_large"
    assert app.test_client().post(GRANT, **streamed(BODY)).status_code == 200


def test_the_control_api_takes_json_or_yaml_as_its_document_says(app):
    client = app.test_client()
    assert client.post("/_mock/reset").status_code == 200  # no body: curl -X POST
    seeded = client.post("/_mock/seed", data=b"pool: 12.5\n", headers={"Content-Type": "application/yaml"})
    assert seeded.status_code == 200 and seeded.json["pool"]["balance"] == "$12.50"
    error = refused(app, 415, "POST", "/_mock/seed", data=b"pool: 1\n", headers={"Content-Type": "text/plain"})
    assert "application/json or application/yaml" in error["message"]
    error = refused(app, 415, "POST", "/_mock/clock", data=b'{"advance_seconds": 1}')
    assert "Content-Type" in error["message"]


# --- the control API's inputs ---------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["253402300800", "-1e12", "1e300", "999999999.5e1"])
def test_a_clock_move_out_of_range_is_400_and_leaves_the_offset(app, seconds):
    client = app.test_client()
    client.post("/_mock/clock", json={"advance_seconds": 3600})
    assert "advance_seconds" in post_json(app, "/_mock/clock", f'{{"advance_seconds": {seconds}}}', 400)
    assert round(client.get("/_mock/clock").json["offset_seconds"]) == 3600
    for view in ("/_mock/", "/_mock/state", "/_mock/dashboard.json"):
        assert client.get(view).status_code == 200
    assert client.get("/v1/me", headers=AUTH).status_code == 200


def test_moves_cannot_add_up_past_what_a_view_can_show(app):
    client = app.test_client()
    assert client.post("/_mock/clock", json={"advance_seconds": -999_999_999}).status_code == 200
    offset = client.get("/_mock/clock").json["offset_seconds"]
    back = client.post("/_mock/clock", json={"advance_seconds": -999_999_999})
    assert back.status_code == 400 and "1970" in back.json["error"]["message"]
    form = client.post("/_mock/dashboard/clock", data={"advance_seconds": "-999999999"})
    assert "1970" in unquote_plus(form.headers["Location"])
    assert client.get("/_mock/clock").json["offset_seconds"] == offset


HOSTILE_SEEDS = {
    "huge pool": '{"pool": 1e400}',
    "negative pool": '{"pool": -1}',
    "pool past what a store holds": '{"pool": 9007199254.740992}',
    "balance past what a store holds": '{"users": {"a": "99999999999999999999"}}',
    "surrogate key": '{"api_keys": ["sk-\\udfff"]}',
    "surrogate user": '{"users": {"\\udfff": 1}}',
    "empty key list": '{"api_keys": []}',
    "deep": '{"developer": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}",
    "unknown field": '{"pools": 1}',
    "not an object": "[1, 2]",
    "huge price": '{"prices": {"models": {"m": {"input": 1e300, "output": 1}}}}',
}


@pytest.mark.parametrize("document", HOSTILE_SEEDS.values(), ids=HOSTILE_SEEDS.keys())
def test_a_hostile_seed_is_400_and_nothing_is_replaced(app, document):
    for path in ("/_mock/seed", "/_mock/reset"):
        assert post_json(app, path, document, 400)


UNSENDABLE_KEYS = {
    "space inside": "sk-quota my key",
    "trailing space": "sk-quota-your-api-key ",
    "leading space": " sk-quota-your-api-key",
    "tab": "sk-quota\tkey",
    "scheme included": "Bearer sk-quota-key",
    "non-ASCII": "sk-quota-cl\u00e9",
    "control character": "sk-quota-\u0007",
}


@pytest.mark.parametrize("key", UNSENDABLE_KEYS.values(), ids=UNSENDABLE_KEYS.keys())
def test_an_api_key_no_client_can_send_is_refused_and_the_old_keys_keep_working(app, key):
    # Was: the seed was taken, and every request then answered 401 "Invalid API key", the
    # configured key included, since "Authorization: Bearer <key>" cannot carry it.
    document = json.dumps({"api_keys": [KEY, key]})
    for path in ("/_mock/seed", "/_mock/reset"):
        assert "api_keys" in post_json(app, path, document, 400)
    assert app.test_client().get("/v1/me", headers=AUTH).status_code == 200


@pytest.mark.parametrize("key", UNSENDABLE_KEYS.values(), ids=UNSENDABLE_KEYS.keys())
def test_an_api_key_no_client_can_send_is_refused_by_the_configuration(key):
    from mockserver.config import ConfigError, MockConfig

    with pytest.raises(ConfigError, match="cannot be sent"):
        MockConfig.from_mapping({"api_keys": [key]})


def test_every_key_a_seed_takes_authenticates(app):
    keys = ["sk-quota-" + "a" * 32, "k", "~!#$%&'*+-./0123456789:;<=>?@[]^_`{|}", "x=" * 64]
    client = app.test_client()
    assert client.post("/_mock/seed", json={"api_keys": keys}).status_code == 200
    for key in keys:
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200, key


def test_balances_past_what_a_store_holds_are_400_on_both_stores(app):
    for path in ("/_mock/users/u/balance", "/_mock/pool"):
        error = refused(app, 400, "PUT", path, json={"balance": "99999999999999999999"})
        assert "'balance'" in error["message"]
    assert app.test_client().get("/_mock/state").status_code == 200


def test_a_yaml_seed_that_expands_without_end_is_400(app):
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"  # noqa: E501
    assert "too many values" in post_json(app, "/_mock/seed", bomb, 400, headers={"Content-Type": "application/yaml"})
    dated = "developer: {id: 2024-01-01}\n"
    assert "date" in post_json(app, "/_mock/seed", dated, 400, headers={"Content-Type": "application/yaml"})


HOSTILE_RULES = {
    "latency past the bound": {"operation_id": "getMe", "action": "latency", "latency_ms": 10**12},
    "negative count": {"operation_id": "getMe", "action": "fail", "status": 503, "count": -1},
    "fractional count": {"operation_id": "getMe", "action": "fail", "status": 503, "count": 1.5},
    "huge ttl": {"operation_id": "getMe", "action": "fail", "status": 503, "ttl_seconds": 1e300},
    "undocumented status": {"operation_id": "getMe", "action": "fail", "status": 999},
    "unknown operation": {"operation_id": "getMe\udfff", "action": "fail"},
    "unknown action": {"operation_id": "getMe", "action": "explode"},
    "status as text": {"operation_id": "getMe", "action": "fail", "status": "503; DROP"},
}


@pytest.mark.parametrize("rule", HOSTILE_RULES.values(), ids=HOSTILE_RULES.keys())
def test_a_hostile_fault_rule_is_400_and_no_rule_is_added(app, rule):
    raw = json.dumps(rule, ensure_ascii=True)
    assert post_json(app, "/_mock/faults", raw, 400)
    form = {k: str(v) for k, v in rule.items() if "\udfff" not in str(v)}
    before = snapshot(app)
    assert app.test_client().post("/_mock/dashboard/faults", data=form).status_code == 303
    assert snapshot(app) == before


# --- the control API belongs to its user ----------------------------------------------------

STATE_CHANGING = [
    (op.method, op.path.replace("{user_id}", "user_123").replace("{fault_id}", "f1"))
    for op in control_contract().operations
    if op.method not in ("GET", "HEAD", "OPTIONS")
]


@pytest.mark.parametrize(("method", "path"), STATE_CHANGING, ids=[f"{m} {p}" for m, p in STATE_CHANGING])
@pytest.mark.parametrize(
    "browser", [{"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                {"Origin": "http://localhost.evil.example"}],
)  # fmt: skip
def test_state_changing_calls_from_other_sites_are_403(app, method, path, browser):
    error = refused(app, 403, method, path, data=b"{}", headers={**JSON, **browser})
    assert error["code"] == "cross_site_refused"


def test_the_control_api_sends_no_cors_grant_and_its_own_pages_get_through(app):
    client = app.test_client()
    for path in ("/_mock/state", "/_mock/ledger", "/_mock/dashboard.json"):
        read = client.get(path, headers={"Origin": EVIL})
        assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers
    preflight = client.options("/_mock/reset", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert not [name for name, _ in preflight.headers if name.startswith("Access-Control-Allow")]
    public = client.get("/v1/packages", headers={"Origin": EVIL})
    assert public.headers["Access-Control-Allow-Origin"] == "*"
    own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/_mock/dashboard/reset", headers=own).status_code == 303
    assert client.post("/_mock/clock", json={"reset": True}, headers={"Sec-Fetch-Site": "none"}).status_code == 200


# --- rate limit, logs, keys -----------------------------------------------------------------


def test_the_rate_limit_counts_the_key_not_the_spelling_of_its_header(any_store):
    client = any_store(rate_limit="2/min").test_client()
    answers = [
        client.get("/v1/me", headers={"Authorization": spelling}).status_code
        for spelling in (f"Bearer  {KEY}", f"bearer {KEY}", f"BEARER {KEY}", f"Bearer {KEY}")
    ]
    assert answers == [200, 200, 429, 429]


def test_logged_paths_escape_control_characters(any_store, caplog):
    client = any_store(log_requests=True).test_client()
    with caplog.at_level(logging.INFO, logger="quota_mock.requests"):
        client.get("/v1/users/x%0AFORGED%0D%1B%5B31m%E2%80%A8/balance", headers=AUTH)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "quota_mock.requests"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert "x\\x0aFORGED\\x0d\\x1b[31m\\u2028/balance" in line


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("mysecretpass12345", "…2345"),
        ("sk-quota-0123456789abcdef", "sk-quota-…cdef"),
        ("sk-quota-short", "sk-quota-…"),
        ("tiny", "…"),
        ("sk-quota-your-api-key", "sk-quota-…-key"),
    ],
)
def test_redaction_shows_at_most_the_prefix_and_the_last_four(key, shown):
    assert redact_key(key) == shown


def test_the_dashboard_shows_the_key_redacted(any_store):
    page = any_store(api_keys=["mysecretpass12345"]).test_client().get("/_mock/").get_data(as_text=True)
    assert "…2345" in page and "mysecret" not in page


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/balance?external_user_id=user_123&external_user_id=user_456"),
        ("GET", "/v1/balance?external_user_id=user_456&external_user_id="),
        ("GET", "/_mock/ledger?limit=1&limit=1000"),
    ],
)
def test_a_query_parameter_of_one_value_given_twice_is_400_naming_it(app, method, path):
    """Never read as its first value: a proxy or framework that keeps the last would read
    another user's balance from the same URL."""
    error = refused(app, 400, method, path, headers=AUTH)
    assert "given 2 times" in error["message"]


def test_repeated_names_the_operation_does_not_take_are_ignored(app):
    client = app.test_client()
    response = client.get("/v1/balance?external_user_id=user_123&utm=a&utm=b", headers=AUTH)
    assert response.status_code == 200 and response.json["external_user_id"] == "user_123"
