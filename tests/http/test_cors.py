"""CORS: a browser app on another origin can call the mock, preflight and all."""

import pytest

from mockserver import create_app
from mockserver.config import ConfigError, MockConfig

from ..conftest import AUTH

ORIGIN = "http://localhost:3000"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, prefer",
}


def test_a_preflight_allows_the_api_headers_without_credentials(client):
    response = client.options("/v1/funding/grant", headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-external-user-id", "prefer"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_a_preflight_allows_the_headers_a_client_library_adds(client):
    """OpenAI's SDK in a browser sends x-stainless-* headers on every request; tracing adds
    traceparent. A browser refuses the whole request unless the preflight allows each one."""
    asked = "authorization, content-type, x-stainless-os, x-stainless-retry-count, traceparent, OpenAI-Project"
    headers = {**PREFLIGHT, "Access-Control-Request-Headers": asked}
    response = client.options("/v1/users/u1/chat/completions", headers=headers)
    assert response.status_code == 204
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {name.strip().lower() for name in asked.split(",")} <= allowed
    assert "Access-Control-Request-Headers" in response.headers.get("Vary", "")


def test_a_preflight_echoes_only_header_names(client):
    asked = "x-ok, bad header, x-also-ok;evil, , " + ", ".join(f"x-h{i}" for i in range(200))
    response = client.options("/v1/balance", headers={**PREFLIGHT, "Access-Control-Request-Headers": asked})
    allowed = [h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")]
    assert "x-ok" in allowed and "bad header" not in allowed and "x-also-ok;evil" not in allowed
    assert len(allowed) <= 5 + 64


def test_responses_expose_the_headers_a_client_needs(client):
    response = client.post(
        "/v1/funding/grant",
        json={"external_user_id": "user_123", "amount": 1},
        headers={**AUTH, "Origin": ORIGIN, "Idempotency-Key": "k1"},
    )
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Idempotent-Replayed", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"} <= exposed
    assert "X-RateLimit-Reset" in exposed
    # Errors too: a page must be able to read a 401's body.
    denied = client.get("/v1/me", headers={"Origin": ORIGIN})
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == "*"


def test_a_preflight_to_an_unknown_route_is_answered_and_the_404_follows(client):
    assert client.options("/v2/nothing", headers=PREFLIGHT).status_code == 204
    assert client.get("/v2/nothing", headers={"Origin": ORIGIN}).headers["Access-Control-Allow-Origin"] == "*"


def test_named_origins_only_and_vary():
    client = create_app({"cors_origins": [ORIGIN, "https://app.example.com"]}).test_client()
    ok = client.options("/v1/me", headers=PREFLIGHT)
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = client.options("/v1/me", headers={**PREFLIGHT, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in client.get("/v1/packages", headers={"Origin": ORIGIN}).headers["Vary"]


def test_no_cors_sends_no_cors_headers():
    client = create_app({"cors_origins": []}).test_client()
    assert "Access-Control-Allow-Origin" not in client.get("/v1/packages", headers={"Origin": ORIGIN}).headers
    assert "Access-Control-Allow-Origin" not in client.options("/v1/me", headers=PREFLIGHT).headers


@pytest.mark.parametrize("origin", ["localhost:3000", "http://localhost:3000/", "ftp://x", "http://", "http://x:99999"])
def test_a_bad_origin_setting_is_refused(origin):
    with pytest.raises(ConfigError, match="CORS origin"):
        MockConfig.from_mapping({"cors_origins": [origin]})
    with pytest.raises(ConfigError, match="list of strings"):
        MockConfig.from_mapping({"cors_origins": "http://x"})
