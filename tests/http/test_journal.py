"""The request journal through the app: what each answered request records, and
``/_mock/requests`` (filters, pages, clearing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from mockserver import create_app
from mockserver.config import ConfigError, MockConfig
from mockserver.web.drop import ConnectionDropped
from mockserver.web.handlers import request_fingerprint
from mockserver.web.state import Caller

from ..conftest import AUTH, DEMO_KEY, grant

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def requests_of(client, **query):
    response = client.get("/_mock/requests", query_string=query)
    assert response.status_code == 200, response.json
    return response.json["requests"]


def newest(client):
    return requests_of(client, limit=1)[0]


def test_a_grant_is_recorded_with_everything_a_test_asks_about(client):
    grant(client, "user_123", 0.5, key="order-1")
    record = newest(client)
    assert record["method"] == "POST" and record["path"] == "/v1/funding/grant"
    assert record["operation_id"] == "grantUserBalance" and record["status"] == 200
    assert record["idempotency"] == "new" and record["idempotency_key"] == "order-1"
    assert json.loads(record["request"]["body"]) == {"external_user_id": "user_123", "amount": 0.5}
    assert json.loads(record["response"]["body"])["balance_after"] == "$5.50"
    assert record["problem"] is None and record["dropped"] is False
    assert record["duration_ms"] >= 0 and record["at"].endswith("Z")
    assert record["request"]["headers"]["Content-Type"] == "application/json"


def test_the_idempotency_outcomes(client):
    grant(client, key="k")
    grant(client, key="k")
    grant(client, amount=2, key="k")
    grant(client)
    outcomes = [r["idempotency"] for r in requests_of(client)]
    assert outcomes == ["none", "conflict", "replayed", "new"]


def test_in_flight_is_recorded(client, state):
    # A claim left in flight, as a concurrent first request with this key would leave it.
    body = {"external_user_id": "user_123", "amount": Decimal(1)}
    fingerprint = request_fingerprint("POST /v1/funding/grant", body)
    state.service.store.claim_idempotency_key(Caller(DEMO_KEY).scope, "busy", fingerprint, state.clock.now())
    assert grant(client, amount=1, key="busy").status_code == 409
    assert newest(client)["idempotency"] == "in_flight"


def test_the_api_key_is_redacted(client):
    grant(client)
    client.get("/v1/me", headers={"Authorization": "Bearer sk-quota-a-leaked-production-key-9876"})
    bad, good = requests_of(client)
    assert good["request"]["headers"]["Authorization"] == "Bearer sk-quota-…-key"
    assert bad["request"]["headers"]["Authorization"] == "Bearer sk-quota-…9876"
    text = json.dumps(client.get("/_mock/requests").json)
    assert DEMO_KEY not in text and "leaked-production" not in text


def test_the_admin_token_is_redacted_and_the_control_api_is_not_recorded():
    app = create_app({"admin_token": "admin-secret-token-4242"})
    client = app.test_client()
    admin = {"X-Mock-Admin-Token": "admin-secret-token-4242"}
    client.set_cookie("quota_mock_admin_token", "admin-secret-token-4242")
    client.set_cookie("theme", "dark")
    client.get("/v1/packages", headers=admin)
    client.get("/_mock/state", headers=admin)
    records = client.get("/_mock/requests", headers=admin).json["requests"]
    assert [r["path"] for r in records] == ["/v1/packages"]
    headers = records[0]["request"]["headers"]
    assert headers["X-Mock-Admin-Token"] == "…4242"
    assert sorted(headers["Cookie"].split("; ")) == ["quota_mock_admin_token=…4242", "theme=dark"]
    assert "admin-secret" not in json.dumps(records)


@pytest.mark.parametrize(
    ("send", "problem"),
    [
        (lambda c: grant(c, amount=None), "bad_request: Invalid field 'amount'"),
        (lambda c: c.post("/v1/funding/grant", json={"user": "u"}, headers=AUTH), "Missing required fields: external"),
        (lambda c: c.get("/v1/me"), "invalid_api_key: Missing API key"),
        (lambda c: c.get("/v1/users/nobody/balance", headers=AUTH), "user_not_found: User not found"),
        (lambda c: grant(c, amount=5000), "insufficient_balance: Grant pool balance too low"),
        (lambda c: c.get("/v2/nothing"), "not_found: No route for GET /v2/nothing"),
        (lambda c: c.delete("/v1/me", headers=AUTH), "method_not_allowed: DELETE is not allowed on /v1/me"),
        (lambda c: c.get("/v1/me", headers={**AUTH, "Prefer": "code=429"}), "(asked for with Prefer: code=429)"),
    ],
)
def test_a_refused_request_says_what_was_wrong(client, send, problem):
    response = send(client)
    assert response.status_code >= 400
    record = newest(client)
    assert record["status"] == response.status_code
    assert problem in record["problem"]


def test_a_fault_rule_is_named_as_the_cause(client):
    client.post("/_mock/faults", json={"operation_id": "getMe", "action": "fail", "status": 503})
    client.get("/v1/me", headers=AUTH)
    assert "a fault rule (/_mock/faults) failed it with 503" in newest(client)["problem"]


def test_commit_then_drop_is_recorded_as_dropped(client):
    client.post("/_mock/faults", json={"operation_id": "grantUserBalance", "action": "drop"})
    with pytest.raises(ConnectionDropped):
        grant(client, key="order-42")
    record = newest(client)
    assert record["dropped"] is True and record["status"] == 200 and record["idempotency"] == "new"
    assert "dropped the connection" in record["problem"]


def test_a_streamed_chat_is_recorded_once_it_has_gone_out(client):
    response = client.post("/v1/users/user_123/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert response.data.endswith(b"data: [DONE]\n\n")
    record = newest(client)
    assert record["operation_id"] == "createUserChatCompletion"
    assert record["response"]["body"].endswith("data: [DONE]\n\n")
    assert record["response"]["size"] == len(response.data)


def test_bodies_are_truncated_at_the_limit():
    client = create_app({"journal_body_limit": 10}).test_client()
    client.post("/v1/funding/grant", json={"external_user_id": "user_123", "amount": 1}, headers=AUTH)
    record = newest(client)
    assert len(record["request"]["body"]) == 10 and record["request"]["truncated"] is True
    assert record["request"]["size"] > 10 and record["response"]["truncated"] is True


def test_a_body_over_the_size_limit_is_recorded_without_it(client):
    response = client.post("/v1/funding/grant", data=b"x" * 70_000, headers=AUTH)
    assert response.status_code == 413
    record = newest(client)
    assert record["status"] == 413 and record["request"]["body"] == "" and "payload_too_large" in record["problem"]


def test_filters(client):
    grant(client)
    client.get("/v1/me", headers=AUTH)
    client.get("/v1/me")
    assert [r["status"] for r in requests_of(client, operation_id="getMe")] == [401, 200]
    assert [r["operation_id"] for r in requests_of(client, status="4xx")] == ["getMe"]
    assert [r["operation_id"] for r in requests_of(client, status=200)] == ["getMe", "grantUserBalance"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert requests_of(client, since=future) == []
    assert len(requests_of(client, since="0")) == 3


def test_pages_follow_the_cursor(client):
    for n in range(5):
        grant(client, key=f"k{n}")
    seen, cursor = [], None
    while True:
        page = client.get("/_mock/requests", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}).json
        seen += [r["idempotency_key"] for r in page["requests"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["k4", "k3", "k2", "k1", "k0"]


@pytest.mark.parametrize(
    "query",
    [{"status": "abc"}, {"status": "600"}, {"limit": 0}, {"limit": 1001}, {"cursor": "x"}, {"since": "yesterday"}],
)
def test_bad_query_parameters_are_400_naming_them(client, query):
    response = client.get("/_mock/requests", query_string=query)
    assert response.status_code == 400
    assert next(iter(query)) in response.json["error"]["message"]


@pytest.mark.parametrize("since", ["nan", "-nan", "inf", "-inf", "1e400", "\uff11\uff12\uff13", "1_000", "0x10"])
def test_since_that_is_no_time_is_400_not_a_filter_that_matches_everything(client, since):
    # Was: Python's float() read these, and "nan" (compared false) listed every record.
    grant(client)
    response = client.get("/_mock/requests", query_string={"since": since})
    assert response.status_code == 400, response.json
    assert "since" in response.json["error"]["message"]


@pytest.mark.parametrize("since", ["0", "0.0", "+0", "1.5e9", ".5", "1795000000", "1970-01-01T00:00:00Z"])
def test_since_in_plain_epoch_seconds_or_iso_8601_still_filters(client, since):
    grant(client)
    assert len(requests_of(client, since=since)) == 1


def test_delete_and_reset_empty_the_journal(client):
    grant(client)
    assert client.delete("/_mock/requests").json["requests"] == []
    assert requests_of(client) == []
    grant(client)
    client.post("/_mock/reset")
    assert requests_of(client) == []


def test_the_journal_can_be_switched_off():
    client = create_app({"journal_size": 0}).test_client()
    grant(client)
    response = client.get("/_mock/requests")
    assert response.status_code == 404 and "journal is off" in response.json["error"]["message"]


def test_the_ring_is_bounded_by_journal_size():
    client = create_app({"journal_size": 3}).test_client()
    for _ in range(5):
        client.get("/v1/packages")
    page = client.get("/_mock/requests").json
    assert len(page["requests"]) == 3 and page["capacity"] == 3


@pytest.mark.parametrize("settings", [{"journal_size": -1}, {"journal_size": "5"}, {"journal_body_limit": -1}])
def test_bad_journal_settings_are_refused(settings):
    with pytest.raises(ConfigError, match=next(iter(settings))):
        MockConfig.from_mapping(settings)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("PUT", "/v1/funding/grant", 405), ("DELETE", "/v1/balance", 405), ("POST", "/v1/nope", 404),
    ("POST", "/v1/funding/grant", 413),
])
def test_a_body_past_the_limit_is_answered_as_without_a_journal(client, method, path, status):
    # Found by a burst of hostile input: recording a 404/405 read the oversized body, and the
    # refusal to read it turned the answer into a misleading 400.
    response = client.open(path, method=method, headers={**AUTH, "Content-Type": "application/json"},
                           data=b"x" * 2_000_000)
    assert response.status_code == status
    assert response.json["error"]["code"] in ("method_not_allowed", "not_found", "payload_too_large")
    recorded = client.get("/_mock/requests").json["requests"][0]
    assert (recorded["method"], recorded["status"]) == (method, status)
