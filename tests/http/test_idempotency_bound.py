"""Issue 11's reproduction, on both stores: with ``--max-idempotency-keys 2``, grants with keys
k1 k1 k2 k3 k1. A full key store refuses the new key k3 (503 ``service_unavailable`` with
Retry-After, in the envelope) and the last k1 is replayed, never credited again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from mockserver import create_app, mock_state

from ..conftest import AUTH, grant
from ..private_redis import shared_redis


@pytest.fixture(params=["memory", "redis"])
def bounded_app(request: pytest.FixtureRequest) -> Iterator[Flask]:
    config: dict = {"max_idempotency_keys": 2, "validate_responses": True}
    if request.param == "redis":
        config |= {"store": shared_redis().url, "store_prefix": f"bound-{uuid.uuid4().hex[:8]}:"}
    app = create_app(config)
    yield app
    if request.param == "redis":
        mock_state(app).service.store.close()
    assert app.extensions["quota_mock_response_violations"] == []


def test_a_full_key_store_refuses_new_keys_and_never_credits_a_key_twice(bounded_app):
    client = bounded_app.test_client()
    answers = [grant(client, "bounded", 1, key=key) for key in ("k1", "k1", "k2", "k3", "k1")]
    assert [a.status_code for a in answers] == [200, 200, 200, 503, 200]
    refused = answers[3]
    assert refused.json["error"]["code"] == "service_unavailable"
    assert int(refused.headers["Retry-After"]) > 80_000  # the oldest key expires in ~24 h
    last = answers[4]
    assert last.json == {**answers[0].json, "duplicate": True}
    assert last.headers["Idempotent-Replayed"] == "true"
    # Credited exactly twice (k1, k2): the refusal and both replays moved nothing.
    assert client.get("/v1/users/bounded/balance", headers=AUTH).json["balance"] == "$2.00"
    assert mock_state(bounded_app).service.conservation().holds


def test_keyless_grants_and_replays_still_work_when_the_key_store_is_full(bounded_app):
    client = bounded_app.test_client()
    grant(client, "bounded", 1, key="k1")
    grant(client, "bounded", 1, key="k2")
    assert grant(client, "bounded", 1).status_code == 200
    assert grant(client, "bounded", 1, key="k2").json["duplicate"] is True
    client.post("/_mock/clock", json={"advance_seconds": 86_400})
    assert grant(client, "bounded", 1, key="k3").json["duplicate"] is False  # both expired: room again
