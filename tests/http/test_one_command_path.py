"""The control API's JSON routes, the dashboard's forms and the pytest fixture take one path:
the same commands, checked against admin-openapi.yaml, with the same limits and errors."""

import pytest

from mockserver import create_app, mock_state
from mockserver.contract import control_contract
from mockserver.domain import faults
from mockserver.domain.errors import QuotaError
from mockserver.pytest_plugin import QuotaMock
from mockserver.web import control

from ..conftest import AUTH


def _form_error(client, path, **form):
    response = client.post(f"/_mock/dashboard/{path}", data=form)
    assert response.status_code == 303
    location = response.headers["Location"]
    return None if "error=" not in location else client.get(location).get_data(as_text=True)


def test_a_dashboard_grant_is_held_for_the_grant_delay_like_an_api_grant():
    app = create_app({"grant_delay_seconds": 2.5})
    held = []
    mock_state(app).service.sleep = held.append  # record the hold instead of waiting
    client = app.test_client()
    assert _form_error(client, "grant", external_user_id="dana", amount="1.00") is None
    client.post("/v1/funding/grant", json={"external_user_id": "dana", "amount": 1}, headers=AUTH)
    assert held == [2.5, 2.5]
    assert client.get("/v1/users/dana/balance", headers=AUTH).json["balance"] == "$2.00"


def test_a_dashboard_grant_and_an_api_grant_with_one_key_are_one_grant(client):
    assert _form_error(client, "grant", external_user_id="erin", amount="$1.50", idempotency_key="same") is None
    replay = client.post(
        "/v1/funding/grant",
        json={"external_user_id": "erin", "amount": 1.5},
        headers={**AUTH, "Idempotency-Key": "same"},
    )
    assert replay.json["duplicate"] is True
    assert client.get("/v1/users/erin/balance", headers=AUTH).json["balance"] == "$1.50"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"balance": "5", "currency": "EUR"}, "currency"),
        ({"balance": -1}, "balance"),
        ({"balance": True}, "balance"),
        ({"balance": "0.0000001"}, "balance"),
        ({}, "balance"),
    ],
)
def test_balance_bodies_are_checked_against_the_control_contract(client, body, field):
    response = client.put("/_mock/pool", json=body)
    assert response.status_code == 400 and response.json["error"]["code"] == "bad_request"
    assert field in response.json["error"]["message"]


@pytest.mark.parametrize(
    ("advance", "accepted"),
    [("86400", True), ("1.5", True), ("-60", True), ("1000000000", False), ("soon", False)],
)
def test_a_clock_move_is_judged_alike_by_the_json_route_and_the_form(advance, accepted):
    json_client = create_app().test_client()
    number = advance if advance == "soon" else float(advance)
    assert (json_client.post("/_mock/clock", json={"advance_seconds": number}).status_code == 200) is accepted
    form_client = create_app().test_client()
    assert (_form_error(form_client, "clock", advance_seconds=advance) is None) is accepted


def test_the_fixture_meets_the_same_checks_and_messages_as_the_json_route(quota_mock_server):
    handle = QuotaMock(quota_mock_server)
    handle.reset()
    client = handle.server.app.test_client()
    rule = {"operation_id": "getMe", "action": "latency", "latency_ms": 30001}
    answer = client.post("/_mock/faults", json=rule).json["error"]["message"]
    with pytest.raises(QuotaError) as refused:
        handle.add_fault("getMe", "latency", latency_ms=30001)
    assert refused.value.message == answer
    with pytest.raises(QuotaError, match="balance"):
        handle.set_balance("user_123", "0.0000001")
    handle.set_balance("user_123", "$2.50")  # the kit's one money parser reads "$"
    assert handle.balance("user_123") == "$2.50"


def test_the_control_contract_states_the_fault_books_own_bounds():
    rule = control_contract().document["components"]["schemas"]["NewFaultRule"]["properties"]
    assert rule["latency_ms"]["maximum"] == faults.MAX_LATENCY_MS
    assert rule["count"]["maximum"] == faults.MAX_COUNT
    assert rule["ttl_seconds"]["maximum"] == faults.MAX_TTL_SECONDS
    assert rule["action"]["enum"] == list(faults.ACTIONS)


def test_commands_refuse_a_bad_document_before_touching_state(state):
    before = state.service.conservation()
    with pytest.raises(QuotaError, match="Unknown field"):
        control.add_fault(state, {"operation_id": "getMe", "action": "drop", "colour": "red"})
    with pytest.raises(QuotaError, match="advance_seconds"):
        control.move_clock(state, {"advance_seconds": "later"})
    assert state.faults.rules(state.clock.now()) == [] and state.clock.offset == 0
    assert state.service.conservation() == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/_mock/pool", {"balance": "1e400"}),
        ("put", "/_mock/users/u/balance", {"balance": 10**20}),
        ("post", "/_mock/seed", {"users": {"u": "1e12"}}),
    ],
)
def test_amounts_no_store_can_hold_are_a_400_not_a_crash(client, method, path, body):
    response = getattr(client, method)(path, json=body)
    assert response.status_code == 400 and "largest amount" in response.json["error"]["message"]
