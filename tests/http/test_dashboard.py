"""The dashboard at /_mock/: what it shows, its forms, its live part, and its token."""

from html.parser import HTMLParser

import pytest

from mockserver import create_app

from ..conftest import AUTH, grant


class _Form(HTMLParser):
    """Collects the ids of form fields and the ``for`` targets of labels."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str | None] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.fields.append(attributes.get("id"))
        if tag == "label":
            self.labelled.add(attributes.get("for"))


def test_the_page_shows_pool_users_ledger_keys_usage_and_faults(client):
    grant(client, "alice", 2, key="dash-key", description="Welcome")
    client.post("/_mock/faults", json={"operation_id": "getMe", "action": "fail", "status": 503, "count": 2})
    page = client.get("/_mock/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for shown in ("$998.00", "alice", "$2.00", "dash-key", "Welcome", "fail with 503", "Usage, last 30 days"):
        assert shown in html
    assert html.index("Welcome") < html.index("seed: grant pool")  # the ledger, newest first
    assert "/_mock/dashboard.json" in html  # it polls for updates


def test_every_form_field_has_a_label(client):
    parser = _Form()
    parser.feed(client.get("/_mock/").get_data(as_text=True))
    assert parser.fields and None not in parser.fields
    assert set(parser.fields) <= parser.labelled


def test_the_live_part_follows_the_state(client):
    first = client.get("/_mock/dashboard.json").json
    assert first["state"]["pool"]["balance"] == "$1000.00"
    grant(client, "bob", 3)
    second = client.get("/_mock/dashboard.json").json
    assert second["version"] != first["version"] and "bob" in second["html"] and "$3.00" in second["html"]


def test_forms_grant_set_balances_move_the_clock_add_faults_and_reset(client):
    def post(path, **form):
        response = client.post(f"/_mock/dashboard/{path}", data=form)
        assert response.status_code == 303 and response.headers["Location"].startswith("/_mock/?")
        return client.get(response.headers["Location"]).get_data(as_text=True)

    assert "Granted $1.50 to carol" in post("grant", external_user_id="carol", amount="1.50", idempotency_key="f1")
    assert "replayed" in post("grant", external_user_id="carol", amount="1.50", idempotency_key="f1")
    assert client.get("/v1/users/carol/balance", headers=AUTH).json["balance"] == "$1.50"
    post("balance", external_user_id="carol", balance="9.00")
    post("balance", balance="50")
    assert client.get("/v1/balance", headers=AUTH).json["balance"] == "$50.00"
    assert "Clock moved by 86400 s" in post("clock", advance_seconds="86400")
    assert "Added fault_1" in post("faults", operation_id="getMe", action="fail", status="503", count="1")
    assert client.get("/v1/me", headers=AUTH).status_code == 503
    post("faults", operation_id="getMe", action="latency", latency_ms="5")
    post("faults/clear")
    assert client.get("/_mock/faults").json["faults"] == []
    post("reset")
    assert "carol" not in client.get("/_mock/state").json["users"]


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        ("grant", {"external_user_id": "x", "amount": "lots"}, "amount"),
        ("grant", {"external_user_id": "x", "amount": "0.001"}, "multiple of 0.01"),
        ("grant", {"external_user_id": "", "amount": "1"}, "external_user_id"),
        ("balance", {"balance": "-1"}, "negative"),
        ("balance", {"balance": "five"}, "balance"),
        ("clock", {"advance_seconds": "tomorrow"}, "advance_seconds"),
        ("faults", {"operation_id": "getMe", "action": "fail", "status": "402"}, "does not document 402"),
    ],
)
def test_a_bad_form_comes_back_with_the_reason_and_changes_nothing(client, path, form, message):
    before = client.get("/_mock/state").json
    response = client.post(f"/_mock/dashboard/{path}", data=form)
    assert response.status_code == 303 and "error=" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'role="alert"' in page and message in page
    assert client.get("/_mock/state").json["users"] == before["users"]


def test_a_cross_site_form_post_is_refused(client):
    for origin in ("http://evil.example", "null"):
        response = client.post("/_mock/dashboard/reset", headers={"Origin": origin})
        assert response.status_code == 403 and response.json["error"]["code"] == "cross_site_refused"
    same = client.post("/_mock/dashboard/reset", headers={"Origin": "http://localhost"})
    assert same.status_code == 303


def test_with_an_admin_token_the_dashboard_needs_it_once_then_a_cookie():
    client = create_app({"admin_token": "s3cret"}).test_client()
    assert client.get("/_mock/").status_code == 401
    assert client.get("/_mock/?token=wrong").status_code == 401
    entered = client.get("/_mock/?token=s3cret")
    assert entered.status_code == 303 and entered.headers["Location"] == "/_mock/"
    assert "HttpOnly" in entered.headers["Set-Cookie"] and "SameSite=Strict" in entered.headers["Set-Cookie"]
    assert client.get("/_mock/").status_code == 200  # the cookie
    assert client.get("/_mock/dashboard.json").status_code == 200
    assert client.post("/_mock/dashboard/reset").status_code == 303
    assert create_app({"admin_token": "s3cret"}).test_client().get("/_mock/state?token=s3cret").status_code == 401
