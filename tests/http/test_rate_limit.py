"""Optional rate limiting: 429 rate_limit_exceeded with the documented headers, per API key."""

import pytest
from flask import Flask

from mockserver import create_app
from mockserver.config import ConfigError, MockConfig

from ..conftest import AUTH

OTHER_KEY = "sk-quota-" + "b" * 32


@pytest.fixture
def limited() -> Flask:
    keys = ["sk-quota-your-api-key", OTHER_KEY]
    app = create_app({"validate_responses": True, "rate_limit": "3/min", "api_keys": keys})
    yield app
    assert app.extensions["quota_mock_response_violations"] == []


def test_off_by_default(client):
    response = client.get("/v1/me", headers=AUTH)
    assert "X-RateLimit-Limit" not in response.headers
    assert all(client.get("/v1/me", headers=AUTH).status_code == 200 for _ in range(150))


def test_past_the_limit_429_in_the_envelope_with_the_headers(limited):
    client = limited.test_client()
    remaining = [client.get("/v1/me", headers=AUTH).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = client.post("/v1/funding/grant", json={"external_user_id": "u", "amount": 1}, headers=AUTH)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limit_exceeded"
    assert "3 requests per minute" in refused.json["error"]["message"]
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert int(refused.headers["X-RateLimit-Reset"]) % 60 == 0
    assert "u" not in client.get("/_mock/state").json["users"]  # refused before anything applied


def test_per_api_key_control_api_exempt_and_the_mock_clock_resets_it(limited):
    client = limited.test_client()
    for _ in range(3):
        client.get("/v1/me", headers=AUTH)
    assert client.get("/v1/me", headers=AUTH).status_code == 429
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {OTHER_KEY}"}).status_code == 200
    assert all(client.get("/_mock/state").status_code == 200 for _ in range(10))
    client.post("/_mock/clock", json={"advance_seconds": 60})
    assert client.get("/v1/me", headers=AUTH).status_code == 200
    for _ in range(5):
        client.get("/v1/me", headers=AUTH)
    client.post("/_mock/reset")
    assert client.get("/v1/me", headers=AUTH).status_code == 200


@pytest.mark.parametrize("value", ["100", "fast", "0/min", 100])
def test_a_bad_setting_is_refused(value):
    with pytest.raises(ConfigError, match="rate"):
        MockConfig.from_mapping({"rate_limit": value})
