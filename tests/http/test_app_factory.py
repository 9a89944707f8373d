"""The app factory, configuration checks, and the response self-check."""

import pytest
from flask import jsonify

from mockserver import MockConfig, create_app
from mockserver.config import ConfigError

from ..conftest import AUTH


def test_each_app_has_its_own_state():
    first, second = create_app(), create_app()
    first.test_client().post("/v1/funding/grant", json={"external_user_id": "solo", "amount": 1}, headers=AUTH)
    assert first.test_client().get("/v1/users/solo/balance", headers=AUTH).status_code == 200
    assert second.test_client().get("/v1/users/solo/balance", headers=AUTH).status_code == 404


def test_config_accepts_a_mapping_or_a_config_object():
    assert create_app(MockConfig(pool="3.00")).test_client().get("/v1/balance", headers=AUTH).json["balance"] == "$3.00"
    assert create_app({"pool": "4"}).test_client().get("/v1/balance", headers=AUTH).json["balance"] == "$4.00"


@pytest.mark.parametrize(
    "settings",
    [
        {"nonsense": 1},
        {"port": 70000},
        {"pool": "-1"},
        {"pool": "1.0000001"},
        {"api_keys": [" "]},
        {"max_idempotency_keys": 0},
        {"seed": {"users": {"x": "abc"}}},
        {"seed_file": "/nonexistent.yaml"},
    ],
)
def test_bad_configuration_is_refused_with_a_clear_error(settings):
    with pytest.raises(ConfigError):
        create_app(settings)


def test_a_response_that_breaks_the_contract_fails_loudly(app, client):
    # Sabotage one handler: its answer lacks required fields.
    app.view_functions["getUserBalance"] = lambda **_: jsonify({"balance": "5 dollars"})
    response = client.get("/v1/users/user_123/balance", headers=AUTH)
    assert response.status_code == 500
    assert response.json["error"]["code"] == "response_contract_violation"
    assert (
        "getUserBalance" in response.json["error"]["message"]
        or "/v1/users/user_123/balance" in response.json["error"]["message"]
    )
    violations = app.extensions["quota_mock_response_violations"]
    assert len(violations) == 1
    violations.clear()  # the fixture asserts none are left


def test_an_unexpected_bug_still_answers_in_the_envelope():
    app = create_app()

    def broken(**_):
        raise RuntimeError("boom")

    app.view_functions["getMe"] = broken
    response = app.test_client().get("/v1/me", headers=AUTH)
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal_error", "message": "The mock hit an unexpected error"}}
    assert b"Traceback" not in response.data and b"boom" not in response.data
