"""Every request is validated against openapi.yaml; failures are 400 bad_request naming the field."""

import pytest

from ..conftest import AUTH, grant

GRANT = "/v1/funding/grant"


def post_raw(client, body: bytes | str, path: str = GRANT, **headers):
    return client.post(path, data=body, headers={**AUTH, "Content-Type": "application/json", **headers})


def assert_bad_request(response, *words):
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "bad_request"
    for word in words:
        assert word in response.json["error"]["message"]


def test_missing_fields_are_named(client):
    assert_bad_request(post_raw(client, "{}"), "Missing required fields", "external_user_id", "amount")
    assert_bad_request(post_raw(client, '{"amount": 1}'), "external_user_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"external_user_id": "u", "amount": "0.50"}', "amount"),
        ('{"external_user_id": "u", "amount": 0}', "amount"),
        ('{"external_user_id": "u", "amount": -1}', "amount"),
        ('{"external_user_id": "u", "amount": 0.001}', "amount"),
        ('{"external_user_id": "u", "amount": 0.0000001}', "amount"),
        ('{"external_user_id": "u", "amount": 10000.01}', "amount"),
        ('{"external_user_id": "u", "amount": 1e309}', "amount"),
        ('{"external_user_id": "u", "amount": true}', "amount"),
        ('{"external_user_id": "", "amount": 1}', "external_user_id"),
        ('{"external_user_id": 5, "amount": 1}', "external_user_id"),
        ('{"external_user_id": "a\\u0000b", "amount": 1}', "external_user_id"),
        ('{"external_user_id": "u", "amount": 1, "description": 7}', "description"),
    ],
)
def test_invalid_grant_fields_are_named(client, state, body, field):
    before = state.service.conservation()
    assert_bad_request(post_raw(client, body), field)
    assert state.service.conservation() == before


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"amount": NaN, "external_user_id": "u"}',
        b'{"amount": Infinity, "external_user_id": "u"}',
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda body: repr(body[:24]),
)
def test_bodies_that_are_not_a_json_object_are_400(client, body):
    response = post_raw(client, body)
    if len(body) > 64 * 1024:
        assert response.status_code == 413
    else:
        assert_bad_request(response)


def test_deeply_nested_json_within_the_size_limit_is_400(client):
    assert_bad_request(post_raw(client, b"[" * 30_000 + b"]" * 30_000))


def test_an_empty_body_is_400(client):
    assert_bad_request(post_raw(client, b""), "Missing required fields")


def test_a_body_over_the_limit_is_413_in_the_envelope(client):
    response = post_raw(client, b'{"external_user_id": "' + b"x" * (10 * 1024 * 1024) + b'", "amount": 1}')
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_idempotency_key_longer_than_255_is_400(client):
    response = grant(client, key="k" * 300)
    assert_bad_request(response, "Idempotency-Key")


def test_user_id_longer_than_255_in_the_path_is_400(client):
    assert_bad_request(client.get("/v1/users/" + "u" * 256 + "/balance", headers=AUTH), "external_user_id")


def test_chat_request_is_validated(client):
    path = "/v1/users/user_123/chat/completions"
    assert_bad_request(post_raw(client, '{"model": "m"}', path), "messages")
    assert_bad_request(post_raw(client, '{"model": "m", "messages": []}', path), "messages")
    assert_bad_request(
        post_raw(client, '{"model": "m", "messages": [{"role": "robot", "content": "x"}]}', path), "role"
    )
    assert_bad_request(
        post_raw(client, '{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', path),
        "max_tokens",
    )


def test_x_external_user_id_header_is_validated(client):
    body = '{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
    assert_bad_request(
        post_raw(client, body, "/v1/chat/completions", **{"X-External-User-ID": "u" * 300}), "X-External-User-ID"
    )


def test_balance_query_parameter_is_validated(client):
    assert_bad_request(client.get("/v1/balance?external_user_id=", headers=AUTH), "external_user_id")


@pytest.mark.parametrize("user", [".", ".."])
def test_dot_segment_ids_are_refused_everywhere(client, user):
    """A URL parser removes "." and ".." from a path: /v1/users/../chat/completions would reach
    the developer-billed route. No such user can exist, so none is created."""
    assert_bad_request(grant(client, user, 1), "may not be")
    assert_bad_request(client.get("/v1/balance", query_string={"external_user_id": user}, headers=AUTH), "may not be")
    assert_bad_request(client.get(f"/v1/users/{user.replace('.', '%2E')}/balance", headers=AUTH), "may not be")
    assert grant(client, "a..b", 1).status_code == 200  # dots inside an id are fine


def test_a_control_character_in_an_id_is_named_without_a_schema_dump(client):
    response = grant(client, "a\u0001b", 1)
    assert_bad_request(response, "may not contain a character")
    assert "enum" not in response.json["error"]["message"] and "{" not in response.json["error"]["message"]
