"""--enforce-billing-mode: a chat on the endpoint the account's billing_mode does not bill is
refused as the vendor refuses it (400 bad_request, "wrong billing endpoint"), charging nothing;
off (the default), both endpoints serve whatever the mode."""

from __future__ import annotations

import pytest

from mockserver import create_app, mock_state

from ..conftest import AUTH

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _client(mode: str, enforce: bool = True):
    app = create_app({"enforce_billing_mode": enforce, "seed": {"developer": {"billing_mode": mode}}})
    return app, app.test_client()


def _money(app) -> tuple[int, int]:
    store = mock_state(app).service.store
    return store.pool_balance(), store.user_balance("user_123")


def _developer_chat(client, **extra):
    return client.post("/v1/chat/completions", json={**CHAT, **extra}, headers=AUTH)


def _user_chats(client):
    yield client.post("/v1/users/user_123/chat/completions", json=CHAT, headers=AUTH)
    yield client.post("/v1/chat/completions", json=CHAT, headers={**AUTH, "X-External-User-ID": "user_123"})


def test_an_account_that_bills_its_users_refuses_developer_chats():
    app, client = _client("user")
    before = _money(app)
    for refused in (_developer_chat(client), _developer_chat(client, stream=True)):
        assert refused.status_code == 400
        assert refused.json["error"]["code"] == "bad_request"
        assert "Wrong billing endpoint" in refused.json["error"]["message"]
    assert _money(app) == before  # nothing charged
    assert all(answer.status_code == 200 for answer in _user_chats(client))


def test_an_account_that_pays_refuses_user_chats():
    app, client = _client("developer")
    before = _money(app)
    for refused in _user_chats(client):
        assert refused.status_code == 400 and "billing_mode \"developer\"" in refused.json["error"]["message"]
    assert _money(app) == before
    assert _developer_chat(client).status_code == 200


@pytest.mark.parametrize(("mode", "enforce"), [("test", True), ("user", False), ("developer", False)])
def test_a_sandbox_and_the_default_serve_both(mode, enforce):
    _, client = _client(mode, enforce)
    assert _developer_chat(client).status_code == 200
    assert all(answer.status_code == 200 for answer in _user_chats(client))


def test_the_conformance_suite_passes_an_enforcing_mock():
    """The suite reads billing_mode and does not hold the documented refusal against it."""
    from conformance.options import Options
    from conformance.runner import run

    app, _ = _client("user")
    report = run(Options(api_key="sk-quota-your-api-key", max_examples=1, fuzz_seconds=2.0), app=app)
    assert report.exit_code == 0, [r.reason for r in report.results.records.values() if r.status.name == "FAILED"]
