"""What makes a request plainly documented, and how a failure on a generated one is judged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.plain import broken, unplain
from mockserver.contract import default_contract

CONTRACT = default_contract()
GRANT = CONTRACT.by_id["grantUserBalance"]
CHAT = CONTRACT.by_id["createUserChatCompletion"]
BALANCE = CONTRACT.by_id["getUserBalance"]
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}


def request(body=None, path=None, query=None, headers=None):
    return SimpleNamespace(body=body, path_parameters=path or {}, query=query or {}, headers=headers or {})


def test_documented_fields_in_their_json_types_are_plain():
    assert unplain(CHAT, request({**HELLO, "max_tokens": 16, "stream": False}, {"external_user_id": "user_123"})) == []
    assert unplain(GRANT, request({"external_user_id": "5f0c-AB_9", "amount": 0.5, "description": "Zoë 日本"})) == []


@pytest.mark.parametrize("user_id", ["Zoë 日本", "u v", "a.b@example.com", "x" * 65])
def test_a_user_id_unlike_the_docs_examples_is_the_contracts_allowance(user_id):
    """The docs show user_123: a server may refuse other shapes (it may not merge two ids)."""
    reasons = unplain(GRANT, request({"external_user_id": user_id, "amount": 0.5}))
    assert any("the docs show values like user_123" in r for r in reasons), reasons
    path = unplain(BALANCE, request(path={"external_user_id": user_id.replace(" ", "%20")}))
    assert any("user_123" in r for r in path), path


def test_a_model_the_docs_do_not_name_is_the_contracts_allowance():
    assert unplain(CHAT, request(HELLO)) == []
    reasons = unplain(CHAT, request({**HELLO, "model": "claude-3-haiku"}))
    assert len(reasons) == 1 and "the docs show values like gpt-4o-mini" in reasons[0]
    # A blank value is not plain either way: the docs show text there.
    blank = unplain(CHAT, request({**HELLO, "model": "   "}))
    assert any("only whitespace" in r for r in blank) and any("gpt-4o-mini" in r for r in blank)


def test_an_integral_float_where_an_integer_goes_is_named_as_such():
    reasons = unplain(CHAT, request({**HELLO, "max_tokens": 803.0}))
    assert len(reasons) == 1 and "max_tokens is 803.0, an integral float" in reasons[0]
    # A number field takes any JSON number: 1.0 is as plain there as 1.
    assert unplain(GRANT, request({"external_user_id": "u", "amount": 1.0})) == []


def test_an_undocumented_field_is_named_with_the_true_reason():
    reasons = unplain(GRANT, request({"external_user_id": "u", "amount": 0.5, "x": 1}))
    assert len(reasons) == 1 and "'x', which openapi.yaml does not define" in reasons[0]
    nested = unplain(CHAT, request({**HELLO, "messages": [{"role": "user", "content": "hi", "zz_extra": "z"}]}))
    assert any("body.messages[0]" in r and "'zz_extra'" in r for r in nested)


def test_a_field_the_contract_added_and_a_limit_it_chose_are_not_plain():
    assert any("temperature is the contract's addition" in r for r in unplain(CHAT, request({**HELLO,
                                                                                           "temperature": 1})))
    # Text near the contract's own length limit (the docs set none).
    long = unplain(CHAT, request({**HELLO, "messages": [{"role": "user", "content": "x" * 10_000}]}))
    assert len(long) == 1 and "body.messages[0].content has 10000 characters" in long[0] and "own choice" in long[0]
    assert any("255 is its own choice" in r for r in unplain(BALANCE, request(path={"external_user_id": "u" * 200})))


def test_text_a_server_may_refuse_is_not_plain():
    assert any("U+0000" in r for r in unplain(GRANT, request({"external_user_id": "a\u0000", "amount": 1})))
    assert any("surrogate" in r for r in unplain(GRANT, request({"external_user_id": "a\ud800", "amount": 1})))
    assert unplain(CHAT, request({**HELLO, "messages": [{"role": "user", "content": "line\nline\ttab"}]})) == []


def test_what_a_request_breaks_carries_the_mark_of_the_element_broken():
    over = broken(GRANT, request({"external_user_id": "u", "amount": 10001}))
    assert [(e.where, e.mark) for e in over] == [("body.amount", "contract")]  # the limits are the contract's
    wrong_type = broken(GRANT, request({"external_user_id": "u", "amount": "ten"}))
    assert [(e.where, e.mark) for e in wrong_type] == [("body.amount", "documented")]
    missing = broken(GRANT, request({"amount": 1}))
    assert [(e.where, e.mark) for e in missing] == [("body", "documented")]
    # A path value is judged on its decoded text, not on its percent-encoding.
    assert [e.mark for e in broken(BALANCE, request(path={"external_user_id": "a%00b"}))] == ["contract"]
    assert broken(BALANCE, request(path={"external_user_id": "a%20b"})) == []


@settings(max_examples=60, deadline=None, database=None)
@given(tokens=st.integers(min_value=1, max_value=4096), cents=st.integers(min_value=1, max_value=99_999))
def test_valid_but_not_plain_exactly_for_an_integral_float_or_an_unknown_field(tokens, cents):
    chat = {**HELLO, "max_tokens": tokens}
    grant = {"external_user_id": "u", "amount": cents / 100}
    assert unplain(CHAT, request(chat)) == [] == unplain(GRANT, request(grant))
    floated, extra = {**chat, "max_tokens": float(tokens)}, {**grant, "zz_extra": 1}
    assert broken(CHAT, request(floated)) == [] == broken(GRANT, request(extra))  # JSON Schema accepts them...
    assert len(unplain(CHAT, request(floated))) == 1 == len(unplain(GRANT, request(extra)))  # ...the docs do not


@pytest.mark.parametrize("body", [{"external_user_id": "u", "amount": 0.5}, {"external_user_id": "u", "amount": 1}])
def test_plain_grants(body):
    assert unplain(GRANT, request(body)) == [] == broken(GRANT, request(body))
