"""Fault rules through /_mock/faults: fail the next N requests, add latency, commit then drop."""

import time

import pytest

from mockserver.web.drop import ConnectionDropped

from ..conftest import AUTH, grant


def _add(client, **rule):
    response = client.post("/_mock/faults", json=rule)
    assert response.status_code == 201, response.json
    return response.json


def test_fail_the_next_n_requests_with_a_documented_status_then_recover(client):
    rule = _add(client, operation_id="grantUserBalance", action="fail", status=503, count=2)
    assert rule["id"].startswith("fault_") and rule["remaining"] == 2
    before = client.get("/_mock/state").json["ledger_size"]
    for _ in range(2):
        failed = grant(client, key="retry-me")
        assert failed.status_code == 503
        assert failed.json["error"]["code"] == "service_unavailable"
        assert failed.headers["Retry-After"] == "1"
    assert client.get("/_mock/state").json["ledger_size"] == before  # failures applied nothing
    assert grant(client, key="retry-me").json["duplicate"] is False  # the key was never taken
    assert client.get("/_mock/faults").json == {"faults": []}


def test_rules_are_listed_deleted_and_cleared_and_reset_clears_them(client):
    a = _add(client, operation_id="getMe", action="latency", latency_ms=5)
    _add(client, operation_id="getMe", action="fail", status=429, ttl_seconds=60)
    listed = client.get("/_mock/faults").json["faults"]
    assert [r["id"] for r in listed] == [a["id"], listed[1]["id"]]
    assert listed[1]["expires_at"] and listed[1]["remaining"] is None
    assert client.delete(f"/_mock/faults/{a['id']}").json == {"deleted": a["id"]}
    missing = client.delete(f"/_mock/faults/{a['id']}")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert client.delete("/_mock/faults").json == {"faults": []}
    _add(client, operation_id="getMe", action="drop")
    client.post("/_mock/reset")
    assert client.get("/_mock/faults").json["faults"] == []


def test_a_rule_expires_on_the_mock_clock(client):
    _add(client, operation_id="getMe", action="fail", status=503, ttl_seconds=30)
    assert client.get("/v1/me", headers=AUTH).status_code == 503
    client.post("/_mock/clock", json={"advance_seconds": 31})
    assert client.get("/v1/me", headers=AUTH).status_code == 200


def test_latency_is_added(client):
    _add(client, operation_id="getBalance", action="latency", latency_ms=150, count=1)
    started = time.perf_counter()
    assert client.get("/v1/balance", headers=AUTH).status_code == 200
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    client.get("/v1/balance", headers=AUTH)
    assert time.perf_counter() - started < 0.15


def test_commit_then_drop_applies_the_grant_and_hangs_up(client):
    _add(client, operation_id="grantUserBalance", action="drop")
    # The Flask test client has no socket: the hang-up surfaces as this exception.
    with pytest.raises(ConnectionDropped):
        grant(client, "user_123", 1, key="dropped")
    assert client.get("/v1/users/user_123/balance", headers=AUTH).json["balance"] == "$6.00"
    replay = grant(client, "user_123", 1, key="dropped")
    assert replay.json["duplicate"] is True and replay.headers["Idempotent-Replayed"] == "true"
    assert client.get("/v1/users/user_123/balance", headers=AUTH).json["balance"] == "$6.00"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"operation_id": "nope", "action": "fail", "status": 503}, "is not one of"),
        ({"operation_id": "getMe", "action": "fail", "status": 402}, "does not document 402"),
        ({"operation_id": "getMe", "action": "fail", "status": "soon"}, "whole number"),
        ({"operation_id": "getMe", "action": "fail", "status": True}, "whole number"),
        ({"operation_id": "getMe", "action": "teleport"}, "action must be one of"),
        ({"operation_id": "getMe", "action": "latency", "latency_ms": 30001}, "latency_ms must be"),
        ({"operation_id": "getMe", "action": "drop", "count": 1.5}, "whole number"),
        ({"operation_id": "getMe", "action": "drop", "colour": "red"}, "Unknown field"),
        ({"operation_id": 7, "action": "drop"}, "is not one of"),
    ],
)
def test_bad_rules_are_400_naming_the_problem(client, rule, message):
    response = client.post("/_mock/faults", json=rule)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request" and message in response.json["error"]["message"]


@pytest.mark.parametrize("body", [b"[]", b"not json", b"", b'{"count": 1e999999}'])
def test_a_body_that_is_no_rule_is_400(client, body):
    response = client.post("/_mock/faults", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]["code"] == "bad_request"
