"""Authentication, routing and the error envelope, through the Flask test client."""

from urllib.parse import quote

import pytest

from mockserver.contract import default_contract
from mockserver.web.handlers import HANDLERS

from ..conftest import AUTH, DEMO_KEY, grant

AUTHENTICATED = [
    ("GET", "/v1/balance"),
    ("GET", "/v1/users/user_123/balance"),
    ("GET", "/v1/me"),
    ("POST", "/v1/funding/grant"),
    ("POST", "/v1/users/user_123/chat/completions"),
    ("POST", "/v1/chat/completions"),
]
BAD_AUTHORIZATION = [
    None,
    "",
    "Bearer",
    "Bearer ",
    f"Basic {DEMO_KEY}",
    f"Token {DEMO_KEY}",
    f"Bearer {DEMO_KEY[:-1]}x",
    f"Bearer {DEMO_KEY}x",
    "Bearer sk-quota-" + "a" * 32,
]


def test_every_contract_operation_has_exactly_one_handler():
    assert set(HANDLERS) == {op.operation_id for op in default_contract().operations}


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION)
def test_missing_malformed_or_unknown_keys_get_401_in_the_envelope(client, method, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.open(path, method=method, headers=headers, json={})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_api_key"
    assert response.json["error"]["message"]


def test_the_bearer_scheme_is_case_insensitive(client):
    assert client.get("/v1/balance", headers={"Authorization": f"bearer {DEMO_KEY}"}).status_code == 200


def test_packages_needs_no_key_and_lists_the_four_documented_tiers(client):
    response = client.get("/v1/packages")
    assert response.status_code == 200
    packages = response.json["packages"]
    assert [(p["id"], p["price_cents"], p["balance_display"]) for p in packages] == [
        ("starter", 500, "$4.05"),
        ("basic", 1000, "$8.50"),
        ("plus", 2500, "$22.50"),
        ("pro", 5000, "$46.50"),
    ]
    assert packages[0]["balance_microdollars"] == 4_050_000


def test_packages_ignores_a_wrong_key(client):
    assert client.get("/v1/packages", headers={"Authorization": "Bearer nope"}).status_code == 200


def test_unknown_route_is_404_not_found_in_the_envelope(client):
    response = client.get("/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_is_405_with_allow_header(client):
    response = client.delete("/v1/balance", headers=AUTH)
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_a_slash_encoded_in_a_user_id_is_part_of_the_id(client):
    response = client.get("/v1/users/a%2Fb/balance", headers=AUTH)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "user_not_found"
    client.post("/v1/funding/grant", json={"external_user_id": "a/b", "amount": 1}, headers=AUTH)
    assert client.get("/v1/users/a%2Fb/balance", headers=AUTH).json["external_user_id"] == "a/b"
    dots = client.get("/v1/users/../balance", headers=AUTH)  # no URL can name user "..": refused
    assert dots.status_code == 400 and "may not be" in dots.json["error"]["message"]
    newline = client.get("/v1/users/a%0Ab/balance", headers=AUTH)
    assert newline.status_code == 400 and "external_user_id" in newline.json["error"]["message"]


@pytest.mark.parametrize("user", ["/abc", "//x", "/", "a/", "x/balance"])
def test_a_user_id_that_starts_or_ends_with_a_slash_is_read_by_its_path_form(client, user):
    # The contract grants to "/abc"; its path form /v1/users/%2Fabc/balance must read it (it was
    # the unknown-route 404, found by the stateful Schemathesis test), and so must the control API.
    assert grant(client, user, 1).status_code == 200
    encoded = quote(user, safe="")
    read = client.get(f"/v1/users/{encoded}/balance", headers=AUTH)
    assert read.status_code == 200 and read.json["external_user_id"] == user, read.json
    chat = client.post(f"/v1/users/{encoded}/chat/completions", headers=AUTH,
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    assert chat.status_code == 200 and chat.json["quota"]["billing_mode"] == "user", chat.json
    assert client.get(f"/_mock/users/{encoded}").json["external_user_id"] == user
    # No id at all is no route.
    empty = client.get("/v1/users//balance", headers=AUTH)
    assert empty.status_code == 404 and empty.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1//funding/grant", "/v1/funding//grant", "/v1//me"])
def test_a_path_with_a_double_slash_is_an_unknown_route_in_the_envelope(client, path):
    # Werkzeug merged the slashes and answered 308 with an HTML page (an adversary found it).
    if path.endswith("/me"):
        response = client.get(path, headers=AUTH)
    else:
        response = client.post(path, json={"external_user_id": "user_123", "amount": 0.5}, headers=AUTH)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
