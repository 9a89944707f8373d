"""Grants, replays and balances through the HTTP layer."""

from ..conftest import AUTH, grant


def test_the_seed_example_answers_exactly_as_documented(client):
    response = grant(client, "user_123", 0.50, key="funding-user123-jan2026", description="Welcome bonus")
    assert response.status_code == 200
    body = response.json
    assert {
        k: body[k] for k in ("external_user_id", "amount_granted", "balance_before", "balance_after", "duplicate")
    } == {
        "external_user_id": "user_123",
        "amount_granted": "$0.50",
        "balance_before": "$5.00",
        "balance_after": "$5.50",
        "duplicate": False,
    }
    assert body["ledger_id"].startswith("ledg_")
    assert list(body) == [
        "external_user_id",
        "amount_granted",
        "balance_before",
        "balance_after",
        "ledger_id",
        "duplicate",
    ]
    assert "Idempotent-Replayed" not in response.headers


def test_grant_credits_user_and_debits_pool(client, state):
    pool = state.service.developer_balance()
    grant(client, "user_123", 2.25)
    assert client.get("/v1/users/user_123/balance", headers=AUTH).json["balance"] == "$7.25"
    assert state.service.developer_balance() == pool - 2_250_000
    assert state.service.conservation().holds


def test_ten_grants_of_ten_cents_make_one_dollar(client):
    for _ in range(10):
        assert grant(client, "tenner", 0.10).status_code == 200
    assert client.get("/v1/users/tenner/balance", headers=AUTH).json["balance"] == "$1.00"


def test_first_grant_creates_the_user(client):
    assert client.get("/v1/users/fresh/balance", headers=AUTH).status_code == 404
    assert grant(client, "fresh", 1).json["balance_before"] == "$0.00"
    assert client.get("/v1/users/fresh/balance", headers=AUTH).json["balance"] == "$1.00"


def test_replay_returns_the_original_with_the_replayed_header(client, state):
    first = grant(client, key="k-1")
    replay = grant(client, key="k-1")
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == {**first.json, "duplicate": True}
    assert client.get("/v1/users/user_123/balance", headers=AUTH).json["balance"] == "$5.50"
    assert state.service.conservation().holds


def test_the_same_amount_spelled_differently_is_the_same_request(client):
    grant(client, amount=0.5, key="k-2")
    replay = client.post(
        "/v1/funding/grant",
        data='{"amount": 0.50, "external_user_id": "user_123"}',
        headers={**AUTH, "Idempotency-Key": "k-2", "Content-Type": "application/json"},
    )
    assert replay.json["duplicate"] is True


def test_same_key_different_body_is_422_and_changes_nothing(client):
    grant(client, key="k-3")
    conflict = grant(client, amount=0.75, key="k-3")
    assert conflict.status_code == 422
    assert conflict.json["error"]["code"] == "idempotency_key_reused"
    assert client.get("/v1/users/user_123/balance", headers=AUTH).json["balance"] == "$5.50"


def test_keys_are_scoped_to_the_api_key():
    from mockserver import create_app

    app = create_app({"api_keys": ["sk-quota-" + "a" * 32, "sk-quota-" + "b" * 32], "validate_responses": True})
    client = app.test_client()

    def grant_as(letter: str):
        return client.post(
            "/v1/funding/grant",
            json={"external_user_id": "u", "amount": 1},
            headers={"Authorization": f"Bearer sk-quota-{letter * 32}", "Idempotency-Key": "shared"},
        )

    assert not grant_as("a").json["duplicate"]
    assert not grant_as("b").json["duplicate"]
    assert grant_as("a").json["duplicate"]


def test_keys_expire_after_24_hours(client, state):
    first = grant(client, key="k-4")
    state.clock.advance(24 * 3600 + 1)
    again = grant(client, key="k-4")
    assert not again.json["duplicate"]
    assert again.json["ledger_id"] != first.json["ledger_id"]


def test_without_a_key_every_grant_credits(client):
    grant(client)
    grant(client)
    assert client.get("/v1/users/user_123/balance", headers=AUTH).json["balance"] == "$6.00"


def test_pool_too_low_is_402_and_changes_nothing(client, state):
    state.service.set_balance(None, 1_000_000)
    response = grant(client, amount=1.01, key="k-5")
    assert response.status_code == 402
    assert response.json["error"]["code"] == "insufficient_balance"
    assert state.service.developer_balance() == 1_000_000
    # The failed attempt did not use up the key.
    state.service.set_balance(None, 5_000_000)
    assert grant(client, amount=1.01, key="k-5").status_code == 200


def test_the_largest_grant_is_exact(client, state):
    state.service.set_balance(None, 20_000_000_000)
    response = client.post(
        "/v1/funding/grant",
        data='{"external_user_id": "whale", "amount": 9999.99}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.json["amount_granted"] == "$9999.99"
    assert state.service.user_balance("whale") == 9_999_990_000


def test_user_and_developer_balances(client):
    user = client.get("/v1/users/user_123/balance", headers=AUTH).json
    assert user == {
        "external_user_id": "user_123",
        "balance": "$5.00",
        "billing_mode": "user",
        "balance_microdollars": 5_000_000,
    }
    developer = client.get("/v1/balance", headers=AUTH).json
    assert developer["balance"] == "$1000.00" and developer["balance_microdollars"] == 1_000_000_000
    assert "external_user_id" not in developer
    assert client.get("/v1/balance?external_user_id=user_123", headers=AUTH).json == user


def test_balance_query_for_an_unknown_user_is_404(client):
    response = client.get("/v1/balance?external_user_id=ghost", headers=AUTH)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "user_not_found"


def test_user_ids_with_unicode_and_dots_are_just_names(client):
    for user in ("ünï-cødé", "...", "a..b", "a b", "user%2F1"):  # only "." and ".." are refused
        assert grant(client, user, 1).status_code == 200
        assert grant(client, user, 1).json["balance_after"] == "$2.00"


def test_both_stores_refuse_a_grant_past_the_exact_json_range_and_change_nothing(any_store):
    """A balance past 2**53 - 1 micro-dollars is not exact in a JSON client: the Redis store
    refused such a grant with 400 while the memory store applied it (an adversary found the
    two disagreeing); both refuse it now, and nothing moves."""
    from mockserver.domain.errors import MAX_SAFE_MICRODOLLARS

    from .conftest import snapshot

    app = any_store(pool="1000000")
    client = app.test_client()
    top = f"{MAX_SAFE_MICRODOLLARS // 1_000_000}.{MAX_SAFE_MICRODOLLARS % 1_000_000:06d}"
    assert client.put("/_mock/users/rich/balance", json={"balance": top}).status_code == 200
    before = snapshot(app)
    response = client.post("/v1/funding/grant", json={"external_user_id": "rich", "amount": 0.01}, headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"
    assert snapshot(app) == before
