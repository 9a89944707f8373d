"""The fast lane (mockserver/web/fast_lane.py) answers plain public API requests below Flask.
It must answer exactly as Flask would, journal included, and step aside whenever a feature
that hooks into Flask is on, or a hook it does not know appears."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from mockserver import create_app
from mockserver.web.fast_lane import FAST_LANE_KEY

KEY = "Bearer sk-quota-your-api-key"
LEDGER_ID = re.compile(rb"ledg_[0-9a-f]+")
# Times differ between the two apps by a few microseconds, which may cross a second.
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def _stable(body: bytes) -> bytes:
    return TIMESTAMP.sub(b"T", LEDGER_ID.sub(b"ledg_", body))

# (method, path, headers, body): successes and refusals of every operation the lane takes,
# and requests it must hand to Flask (routes, slashes, bodies it does not read).
CORPUS = [
    ("POST", "/v1/funding/grant", {"Idempotency-Key": "k1"}, b'{"external_user_id": "u1", "amount": 1.5}'),
    ("POST", "/v1/funding/grant", {"Idempotency-Key": "k1"}, b'{"external_user_id": "u1", "amount": 1.50}'),
    ("POST", "/v1/funding/grant", {"Idempotency-Key": "k1"}, b'{"external_user_id": "u1", "amount": 2}'),
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "caf\xc3\xa9 %2F x", "amount": 0.01, "description": "d"}'),
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "u2", "amount": 0.001}'),
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "u2", "amount": 5000}'),
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "u2", "amount": 5000}'),  # the pool is short now
    ("POST", "/v1/funding/grant", {}, b'{"amount": 1}'),
    ("POST", "/v1/funding/grant", {}, b"not json"),
    ("POST", "/v1/funding/grant", {}, b""),
    ("POST", "/v1/funding/grant", {"Authorization": "Bearer nope"}, b'{"external_user_id": "u", "amount": 1}'),
    ("POST", "/v1/funding/grant", {"Authorization": ""}, b'{"external_user_id": "u", "amount": 1}'),
    ("POST", "/v1/funding/grant", {"Content-Type": "text/plain"}, b'{"external_user_id": "u3", "amount": 1}'),
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "u", "amount": 1, "x": "' + b"a" * 70_000 + b'"}'),
    ("POST", "/v1/funding/grant", {"Content-Type": ""}, b'{"external_user_id": "u3", "amount": 1}'),
    ("POST", "/v1/funding/grant", {"Content-Type": "application/json; charset=latin-1"}, b'{"external_user_id": "u"}'),
    ("POST", "/v1/funding/grant", {"Content-Encoding": "gzip"}, gzip.compress(b'{"external_user_id": "z", "amount": 1}')),  # noqa: E501
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "u4", "amount": 0.01, "amount": 2}'),
    ("POST", "/v1/funding/grant", {}, b'{"external_user_id": "u4", "amount": 1, "description": "\\udfff"}'),
    ("POST", "/v1/funding/grant", {"Idempotency-Key": "caf\xc3\xa9"}, b'{"external_user_id": "u5", "amount": 1}'),
    ("POST", "/v1/funding/grant/", {}, b'{"external_user_id": "u", "amount": 1}'),
    ("GET", "/v1/funding/grant", {}, b""),
    ("GET", "/v1/users/u1/balance", {}, b""),
    ("GET", "/v1/users/caf%C3%A9%20%252F%20x/balance", {}, b""),
    ("GET", "/v1/users/nobody/balance", {}, b""),
    ("GET", "/v1/users//balance", {}, b""),
    ("GET", "/v1/users/a/b/balance", {}, b""),
    ("GET", "/v1/balance", {}, b""),
    ("GET", "/v1/balance?external_user_id=u1&external_user_id=other", {}, b""),
    ("GET", "/v1/balance?external_user_id=", {}, b""),
    ("GET", "/v1/balance?external_user_id=%FF", {}, b""),
    ("GET", "/v1/me", {}, b""),
    ("GET", "/v1/packages", {"Authorization": ""}, b""),
    ("GET", "//v1/packages", {}, b""),
    ("DELETE", "/v1/me", {}, b""),
]


def _send(client, method, path, headers, body):
    headers = {"Authorization": KEY, "Content-Type": "application/json", **headers}
    headers = {name: value for name, value in headers.items() if value != ""}
    response = client.open(path, method=method, headers=headers, data=body)
    return response.status_code, sorted(response.headers.items()), _stable(response.get_data())


def _journal(client):
    entries = client.get("/_mock/requests?limit=100").json["requests"]
    for entry in entries:
        del entry["at"], entry["duration_ms"]
    return len(entries), _stable(json.dumps(entries, sort_keys=True).encode())


def test_both_paths_answer_alike_and_journal_alike():
    fast, slow = create_app({}), create_app({})
    slow.extensions[FAST_LANE_KEY].enabled = False
    assert fast.extensions[FAST_LANE_KEY].open and not slow.extensions[FAST_LANE_KEY].open
    lanes = [fast.test_client(), slow.test_client()]
    for request in CORPUS:
        through_lane, through_flask = (_send(client, *request) for client in lanes)
        assert through_lane == through_flask, request[:2]
    journal = _journal(lanes[0])
    assert journal[0] == len(CORPUS) and journal == _journal(lanes[1])


def test_the_lane_takes_plain_requests_and_no_others(monkeypatch):
    app = create_app({})
    lane = app.extensions[FAST_LANE_KEY]
    taken = []
    original = lane.flask_wsgi
    monkeypatch.setattr(lane, "flask_wsgi", lambda environ, start: taken.append(False) or original(environ, start))
    client = app.test_client()
    client.get("/v1/me", headers={"Authorization": KEY})
    client.get("/v1/me", headers={"Authorization": KEY, "Prefer": "code=503"})
    client.get("/v1/me", headers={"Authorization": KEY, "Origin": "http://localhost:3000"})
    client.get("/_mock/state")
    assert taken == [False, False, False]  # only the first stayed in the lane


@pytest.mark.parametrize(
    "settings",
    [{"validate_responses": True}, {"log_requests": True}, {"rate_limit": "100/min"}, {"cors_origins": ["http://a"]}],
)
def test_features_that_hook_into_flask_close_the_lane(settings):
    assert create_app({}).extensions[FAST_LANE_KEY].open
    assert not create_app(settings).extensions[FAST_LANE_KEY].open


def test_fault_rules_close_the_lane_while_active():
    app = create_app({})
    client = app.test_client()
    client.post("/_mock/faults", json={"operation_id": "getMe", "action": "fail", "status": 503, "count": 1})
    assert not app.extensions[FAST_LANE_KEY].open
    assert client.get("/v1/me", headers={"Authorization": KEY}).status_code == 503
    assert app.extensions[FAST_LANE_KEY].open


def test_an_unknown_request_hook_closes_the_lane():
    app = create_app({})
    app.after_request(lambda response: response)  # e.g. a new check someone adds later
    assert not app.extensions[FAST_LANE_KEY].open
