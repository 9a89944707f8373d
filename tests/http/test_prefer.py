"""The Prefer header, as Prism users know it: documented errors on request, and latency."""

import time

import pytest

from ..conftest import AUTH

GRANT = {"external_user_id": "user_123", "amount": 1}


def _state(client):
    state = client.get("/_mock/state").json
    return state["users"], state["pool"], state["ledger_size"], state["idempotency_key_count"]


def test_code_402_answers_the_documented_error_and_changes_nothing(client):
    before = _state(client)
    response = client.post(
        "/v1/funding/grant", json=GRANT, headers={**AUTH, "Prefer": "code=402", "Idempotency-Key": "p1"}
    )
    assert response.status_code == 402
    assert response.json == {
        "error": {"code": "insufficient_balance", "message": "Grant pool balance too low for this grant"}
    }
    assert response.headers["Preference-Applied"] == "code=402"
    assert _state(client) == before  # no grant, no ledger entry, no idempotency key


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/me", 401, "invalid_api_key"),
        ("/v1/users/user_123/balance", 404, "user_not_found"),
        ("/v1/balance", 503, "service_unavailable"),
        ("/v1/packages", 429, "rate_limit_exceeded"),
    ],
)
def test_any_documented_status_of_the_operation(client, path, status, code):
    response = client.get(path, headers={**AUTH, "Prefer": f"code={status}"})
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_a_simulated_429_carries_the_documented_headers(client):
    response = client.get("/v1/me", headers={**AUTH, "Prefer": "code=429"})
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Limit"] == "100"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 5


def test_an_undocumented_status_is_refused_and_200_is_normal(client):
    refused = client.get("/v1/users/user_123/balance", headers={**AUTH, "Prefer": "code=402"})
    assert refused.status_code == 400
    assert "getUserBalance does not document status 402" in refused.json["error"]["message"]
    normal = client.post("/v1/funding/grant", json=GRANT, headers={**AUTH, "Prefer": "code=200"})
    assert normal.status_code == 200 and normal.json["balance_after"] == "$6.00"


def test_authentication_still_comes_first(client):
    assert client.get("/v1/me", headers={"Prefer": "code=503"}).status_code == 401


def test_delay_adds_latency_and_unknown_preferences_are_ignored(client):
    started = time.perf_counter()
    response = client.get("/v1/me", headers={**AUTH, "Prefer": 'respond-async, wait=5, delay=150; x="y", dynamic=true'})
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert response.headers["Preference-Applied"] == "delay=150"


def test_several_prefer_headers_and_the_first_occurrence_wins(client):
    response = client.get("/v1/me", headers=[*AUTH.items(), ("Prefer", "code=503"), ("Prefer", "code=401")])
    assert response.status_code == 503


@pytest.mark.parametrize("value", ["code=abc", "code=99", "code=600", "delay=-1", "delay=30001", "delay=soon"])
def test_a_known_preference_with_a_meaningless_value_is_400(client, value):
    response = client.get("/v1/balance", headers={**AUTH, "Prefer": value})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request" and "Prefer" in response.json["error"]["message"]


@pytest.mark.parametrize("value", ["code=402", "code=abc", "delay=99999"])
def test_where_no_400_is_documented_a_bad_preference_is_not_applied_and_a_header_says_why(client, value):
    # GET /v1/me documents no 400, so the mock may not answer one: it answers normally.
    response = client.get("/v1/me", headers={**AUTH, "Prefer": value})
    assert response.status_code == 200
    assert response.headers["Quota-Mock-Prefer-Ignored"]
    assert "Preference-Applied" not in response.headers


def test_chunk_delay_paces_a_stream_and_is_said_applied(client):
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True}
    started = time.monotonic()
    response = client.post("/v1/users/user_123/chat/completions", json=chat,
                           headers={**AUTH, "Prefer": "delay=10, chunk-delay=30"})
    events = [line for line in response.get_data(as_text=True).split("\n\n") if line.startswith("data: ")]
    assert response.headers["Preference-Applied"] == "delay=10, chunk-delay=30"
    assert time.monotonic() - started >= 0.01 + 0.03 * (len(events) - 1) * 0.9
    plain = client.post("/v1/users/user_123/chat/completions", json={**chat, "stream": False},
                        headers={**AUTH, "Prefer": "chunk-delay=30"})
    assert plain.status_code == 200 and "Preference-Applied" not in plain.headers  # nothing to pace


@pytest.mark.parametrize("value", ["-1", "abc", "30001"])
def test_a_meaningless_chunk_delay_is_400(client, value):
    response = client.post("/v1/users/user_123/chat/completions", headers={**AUTH, "Prefer": f"chunk-delay={value}"},
                           json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 400 and "chunk-delay" in response.json["error"]["message"]


def test_a_paced_stream_is_paced_for_at_most_the_latency_cap(monkeypatch):
    """128 choices at 30 s an event would hold a thread for hours: pacing stops at 30 s in all."""
    from mockserver import create_app, mock_state

    app = create_app({"stream_chunk_delay_ms": 30_000})
    slept: list[float] = []
    mock_state(app).hold = slept.append  # type: ignore[assignment]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "n": 16,
            "stream": True}
    response = app.test_client().post("/v1/users/user_123/chat/completions", json=chat, headers=AUTH)
    events = [e for e in response.get_data(as_text=True).split("\n\n") if e.startswith("data: ")]
    assert len(events) > 10
    assert sum(slept) == pytest.approx(30.0) and max(slept) == 30.0
