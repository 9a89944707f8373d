"""/v1/me usage, chat completions (JSON and SSE) and the 402 on a broke user."""

import json

from ..conftest import AUTH, grant

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the mock."}]}


def chat(client, user="user_123", **extra):
    return client.post(f"/v1/users/{user}/chat/completions", json={**CHAT, **extra}, headers=AUTH)


def test_chat_answers_openai_shaped_and_charges_the_user(client, state):
    response = chat(client)
    assert response.status_code == 200
    body = response.json
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    cost = state.service.seed.prices.cost("gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"])
    assert body["quota"]["credits_used"] == cost > 0
    assert state.service.user_balance("user_123") == 5_000_000 - cost
    assert body["quota"]["balance_before"] == "$5.00"
    assert body["quota"]["billing_mode"] == "user"


def test_chat_is_deterministic(client):
    first, second = chat(client).json, chat(client).json
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]


def test_max_tokens_truncates_with_finish_reason_length(client):
    body = chat(client, max_tokens=2).json
    assert body["usage"]["completion_tokens"] <= 2
    assert body["choices"][0]["finish_reason"] == "length"


def test_broke_user_gets_402_and_is_not_charged(client, state):
    response = chat(client, "user_456")
    assert response.status_code == 402
    assert response.json["error"] == {"code": "insufficient_balance", "message": "User balance too low"}
    assert state.service.user_balance("user_456") == 0


def test_unknown_user_chat_is_404(client):
    assert chat(client, "ghost").json["error"]["code"] == "user_not_found"


def test_plain_path_bills_the_developer_or_the_header_user(client, state):
    pool = state.service.developer_balance()
    developer = client.post("/v1/chat/completions", json=CHAT, headers=AUTH).json
    assert developer["quota"]["billing_mode"] == "developer"
    assert state.service.developer_balance() == pool - developer["quota"]["credits_used"]
    user = client.post("/v1/chat/completions", json=CHAT, headers={**AUTH, "X-External-User-ID": "user_123"}).json
    assert user["quota"]["billing_mode"] == "user"
    assert state.service.user_balance("user_123") == 5_000_000 - user["quota"]["credits_used"]


def test_streaming_sends_openai_style_events_ending_with_done(client, state):
    response = chat(client, stream=True)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = [line.removeprefix("data: ") for line in response.get_data(as_text=True).split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == chat(client).json["choices"][0]["message"]["content"]
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    # Charged once for the stream and once for the JSON call made above to compare texts.
    assert 5_000_000 - state.service.user_balance("user_123") == 2 * final["quota"]["credits_used"]
    # As in OpenAI's API, usage comes only with stream_options.include_usage (tests/http/test_chat_requests.py).
    assert all("usage" not in c for c in chunks)
    assert state.service.conservation().holds


def test_me_sums_the_last_30_days_from_the_ledger(client, state):
    grant(client, "user_123", 1)
    charged = chat(client).json["quota"]["credits_used"]
    me = client.get("/v1/me", headers=AUTH).json
    usage = me["usage"]
    assert usage["window_days"] == 30
    assert (usage["requests"], usage["spend_microdollars"]) == (1, charged)
    assert usage["grants"] == {"count": 1, "total": "$1.00", "total_microdollars": 1_000_000}
    assert [m["model"] for m in usage["by_model"]] == ["gpt-4o-mini"]
    state.clock.advance(31 * 24 * 3600)
    later = client.get("/v1/me", headers=AUTH).json["usage"]
    assert (later["requests"], later["grants"]["count"], later["by_model"]) == (0, 0, [])
