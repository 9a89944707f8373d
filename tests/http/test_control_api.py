"""The /_mock control API: reset, seed, inspect, set balances, move the clock."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mockserver import create_app
from mockserver.domain.errors import StoreUnavailable
from mockserver.domain.idempotency import DEFAULT_MAX_KEYS

from ..conftest import AUTH, grant


def test_state_shows_pool_users_and_conservation(client):
    grant(client, "user_123", 1, key="k")
    state = client.get("/_mock/state").json
    assert state["pool"]["balance"] == "$999.00"
    assert state["users"]["user_123"] == 6_000_000
    assert state["conservation"]["holds"] is True
    assert state["idempotency_key_count"] == 1


def test_reset_returns_to_the_seed(client):
    grant(client, "someone", 3)
    client.post("/_mock/reset")
    assert client.get("/v1/users/someone/balance", headers=AUTH).status_code == 404
    assert client.get("/_mock/state").json["users"] == {"user_123": 5_000_000, "user_456": 0}


def test_seed_accepts_json_and_yaml(client):
    client.post("/_mock/seed", json={"users": {"alice": "12.34"}, "pool": "50"})
    assert client.get("/v1/users/alice/balance", headers=AUTH).json["balance"] == "$12.34"
    client.post("/_mock/seed", data="users:\n  bob: '0.01'\n", headers={"Content-Type": "application/yaml"})
    assert client.get("/v1/users/bob/balance", headers=AUTH).json["balance"] == "$0.01"
    assert client.get("/v1/balance", headers=AUTH).json["balance"] == "$1000.00"


def test_a_bad_seed_is_400_and_keeps_the_state(client):
    grant(client, "keeper", 1)
    for body in ({"users": {"x": "-1"}}, {"nonsense": 1}, {"prices": {"markup_percent": "lots"}}):
        response = client.post("/_mock/seed", json=body)
        assert response.status_code == 400
        assert response.json["error"]["code"] == "bad_request"
    assert client.get("/v1/users/keeper/balance", headers=AUTH).status_code == 200


def test_a_seed_the_store_refuses_leaves_the_old_seed_served(client, state, monkeypatch):
    # Redis away while a seed is posted: 503, and the worker keeps serving the keys and the
    # balances it had (it must not switch to API keys the store and the other workers never got),
    # at the time it had: the clock returns to real time only with the seed.
    grant(client, "keeper", 1)
    assert client.post("/_mock/clock", json={"advance_seconds": 86_400}).status_code == 200
    moved = state.service.clock.offset

    def refuse(*args, **kwargs):
        raise StoreUnavailable()

    monkeypatch.setattr(state.service.store, "load", refuse)
    response = client.post("/_mock/seed", json={"api_keys": ["sk-quota-never-loaded-key-0000000"], "pool": 5})
    assert response.status_code == 503 and response.json["error"]["code"] == "service_unavailable"
    assert client.get("/v1/users/keeper/balance", headers=AUTH).status_code == 200
    refused = {"Authorization": "Bearer sk-quota-never-loaded-key-0000000"}
    assert client.get("/v1/balance", headers=refused).status_code == 401
    assert state.service.clock.offset == pytest.approx(moved) and moved >= 86_400
    monkeypatch.undo()
    assert client.post("/_mock/reset").status_code == 200
    assert state.service.clock.offset == 0


def test_set_balance_goes_through_the_ledger(client):
    response = client.put("/_mock/users/user_123/balance", json={"balance": "0.25"})
    assert response.json["balance"] == "$0.25"
    assert client.put("/_mock/pool", json={"balance": 7}).json["balance"] == "$7.00"
    entries = client.get("/_mock/ledger").json["entries"]
    assert entries[0]["kind"] == "adjustment" and entries[0]["account"] == "(pool)"
    assert client.get("/_mock/state").json["conservation"]["holds"] is True
    assert client.put("/_mock/users/user_123/balance", json={"balance": "-1"}).status_code == 400
    assert client.put("/_mock/users/user_123/balance", json={"balance": 0.1}).status_code == 200


def test_ledger_is_newest_first_and_paged(client):
    grant(client, "a", 1)
    grant(client, "b", 2)
    ledger = client.get("/_mock/ledger?limit=2").json
    assert [e["account"] for e in ledger["entries"]] == ["b", "a"]
    assert ledger["total"] == 5
    assert client.get("/_mock/ledger?limit=0").status_code == 400


def test_idempotency_keys_are_listed(client):
    grant(client, key="visible")
    keys = client.get("/_mock/idempotency-keys").json
    assert [k["key"] for k in keys["keys"]] == ["visible"]
    assert keys["keys"][0]["state"] == "completed"
    assert keys["max_keys"] == DEFAULT_MAX_KEYS


@pytest.mark.parametrize(
    ("path", "items"), [("/_mock/ledger", "entries"), ("/_mock/users", "users"), ("/_mock/idempotency-keys", "keys")]
)
def test_every_listing_pages_with_a_cursor(client, path, items):
    for i in range(7):
        grant(client, f"pager{i}", 1, key=f"page-{i}")
    everything = client.get(f"{path}?limit=1000").json
    assert everything["next_cursor"] is None
    seen, cursor = [], None
    while True:
        page = client.get(path, query_string={"limit": 3, **({"cursor": cursor} if cursor else {})}).json
        assert len(page[items]) <= 3
        seen += page[items]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything[items] and len(seen) >= 7
    assert client.get(f"{path}?limit=1001").status_code == 400
    assert client.get(f"{path}?cursor=-1").status_code == 400
    assert client.get(f"{path}?cursor=abc").status_code == 400


def test_clock_moves_and_resets(client):
    before = client.get("/_mock/clock").json["epoch_seconds"]
    moved = client.post("/_mock/clock", json={"advance_seconds": 86400}).json
    assert moved["epoch_seconds"] - before >= 86400
    assert client.post("/_mock/clock", json={"reset": True}).json["offset_seconds"] == 0
    assert client.post("/_mock/clock", json={"advance_seconds": "soon"}).status_code == 400


def test_admin_token_is_enforced_when_configured():
    client = create_app({"admin_token": "s3cret"}).test_client()
    denied = client.get("/_mock/state")
    assert denied.status_code == 401 and denied.json["error"]["code"] == "invalid_api_key"
    assert client.get("/_mock/state", headers={"X-Mock-Admin-Token": "s3cret"}).status_code == 200


def test_control_api_can_be_switched_off():
    client = create_app({"admin_enabled": False}).test_client()
    assert client.get("/_mock/state").status_code == 404


# Ids the public contract refuses: no public route could name a user holding money under them.
_REFUSED_IDS = ("..", ".", "a" * 256, "tab\there", "del\x7f", "")


@pytest.mark.parametrize("user_id", [i for i in _REFUSED_IDS if i])
def test_control_api_refuses_user_ids_the_contract_refuses(client, user_id):
    from urllib.parse import quote

    before = client.get("/_mock/state").json
    response = client.put(f"/_mock/users/{quote(user_id, safe='')}/balance", json={"balance": "5.00"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "not an external user id the contract allows" in response.json["error"]["message"]
    response = client.post("/_mock/seed", json={"users": {user_id: "1.00", "fine_user": "2.00"}})
    assert response.status_code == 400
    assert "not an external user id the contract allows" in response.json["error"]["message"]
    form = client.post("/_mock/dashboard/balance", data={"external_user_id": user_id, "balance": "1.00"})
    assert form.status_code in (303, 400)
    after = client.get("/_mock/state").json
    assert after["users"] == before["users"] and after["ledger_size"] == before["ledger_size"]


def test_a_seed_file_with_a_refused_user_id_stops_start_up(tmp_path):
    from mockserver.config import ConfigError, MockConfig

    seed = tmp_path / "seed.yaml"
    seed.write_text("users:\n  '..': '1.00'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an external user id the contract allows"):
        MockConfig(seed_file=str(seed)).build_seed()
    long_id = "x" * 300
    with pytest.raises(ConfigError, match=r"\(300 characters\)"):
        MockConfig(seed={"users": {long_id: "1.00"}}).build_seed()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user_id=st.text(min_size=1, max_size=300) | st.sampled_from(_REFUSED_IDS[:-1]))
def test_the_control_api_takes_exactly_the_ids_the_public_routes_take(client, user_id):
    """Setting a balance succeeds exactly when a public read of that id is not refused as
    malformed: one rule (openapi.yaml's ExternalUserId) for both. (A path segment cannot start
    with a slash, on either API: such ids are reached by the query form only.)"""
    from urllib.parse import quote

    assume(not user_id.startswith("/"))
    path_id = quote(user_id, safe="")
    control = client.put(f"/_mock/users/{path_id}/balance", json={"balance": "0.01"})
    public = client.get("/v1/balance", query_string={"external_user_id": user_id}, headers=AUTH)
    assert control.status_code in (200, 400)
    assert (control.status_code == 200) == (public.status_code == 200), (control.json, public.json)
