"""Secrets keep at most the ``sk-quota-`` prefix and their last four characters."""

from hypothesis import given
from hypothesis import strategies as st

from mockserver.redaction import redact_header, redact_secret, redact_text


def test_keys_keep_the_prefix_and_last_four():
    assert redact_secret("sk-quota-your-api-key") == "sk-quota-…-key"
    assert redact_secret("sk-quota-short") == "sk-quota-…"
    assert redact_secret("0123456789abcdefWXYZ") == "…WXYZ"
    assert redact_secret("tiny") == "…"
    assert redact_secret("") == redact_secret(None) == "-"


@given(st.text(min_size=1, max_size=60) | st.text(max_size=30).map(lambda tail: "sk-quota-" + tail))
def test_never_more_than_prefix_and_last_four(secret):
    shown = redact_secret(secret)
    kept = shown.replace("sk-quota-", "", 1).replace("…", "", 1)
    assert len(kept) <= 4
    if len(secret.removeprefix("sk-quota-")) > 4:
        assert secret not in shown


def test_headers():
    assert redact_header("Authorization", "Bearer sk-quota-your-api-key") == "Bearer sk-quota-…-key"
    assert redact_header("authorization", "sk-quota-your-api-key") == "sk-quota-…-key"
    assert redact_header("X-Mock-Admin-Token", "admin-secret-token-4242") == "…4242"
    assert redact_header("Content-Type", "application/json") == "application/json"
    cookie = "a=1; quota_mock_admin_token=admin-secret-token-4242; b=2"
    assert redact_header("Cookie", cookie, frozenset({"quota_mock_admin_token"})) == (
        "a=1; quota_mock_admin_token=…4242; b=2"
    )


def test_text():
    assert redact_text("key sk-quota-your-api-key sent", "sk-quota-your-api-key", None) == "key sk-quota-…-key sent"
