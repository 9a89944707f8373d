"""Each operation's body limit is written in openapi.yaml. A grant the schema accepts is never
refused with 413 for its size; a chat's schema bounds each string (at OpenAI's own cap, so that
a long prompt or history an app sends the vendor is accepted), and the body limit, not the
schema, bounds the whole conversation: one message at the longest the schema allows fits.
"""

from __future__ import annotations

import json

import pytest

from mockserver.contract import BODY_LIMIT, CONTRACT, default_contract

from .body_size import WORST_BYTES_PER_CHARACTER, largest_body

CONTRACT_OBJ = default_contract()
WITH_BODY = [op for op in CONTRACT_OBJ.operations if op.body_schema is not None]
# What each limit must leave for free-form JSON the schema cannot bound (a tool's parameter
# schema, a JSON schema for the answer, unknown grant fields): a sixteenth of the limit.
FREE_FORM_SHARE = 16


def test_every_operation_with_a_body_writes_its_limit_as_the_contracts_choice():
    assert {op.operation_id for op in WITH_BODY} == {
        "grantUserBalance",
        "createUserChatCompletion",
        "createChatCompletion",
    }
    for op in WITH_BODY:
        limit = op.spec[BODY_LIMIT]
        assert limit["x-quota-provenance"] == CONTRACT and limit["description"], op.operation_id
        assert op.max_body_bytes == limit["bytes"] > 0


def test_chat_gets_mebibytes_and_grants_keep_a_small_limit():
    assert CONTRACT_OBJ.by_id["grantUserBalance"].max_body_bytes <= 64 * 1024
    for chat in ("createUserChatCompletion", "createChatCompletion"):
        assert CONTRACT_OBJ.by_id[chat].max_body_bytes >= 4 * 1024 * 1024


CHATS = ("createUserChatCompletion", "createChatCompletion")


def test_the_largest_grant_the_schema_allows_fits_the_limit_with_room_to_spare():
    op = CONTRACT_OBJ.by_id["grantUserBalance"]
    size = largest_body(op.body_schema)
    room = op.max_body_bytes - size.bytes
    assert room >= op.max_body_bytes // FREE_FORM_SHARE, (
        f"{op.operation_id}: the schema allows bodies of {size.bytes} bytes; the limit is {op.max_body_bytes}"
    )


@pytest.mark.parametrize("operation_id", CHATS)
def test_a_message_at_the_longest_the_schema_allows_fits_the_chat_limit(operation_id):
    op = CONTRACT_OBJ.by_id[operation_id]
    user_content = op.body_schema["properties"]["messages"]
    longest = _longest_text(CONTRACT_OBJ.document)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * longest}]}
    assert longest >= 1_000_000, "a chat message holds at least a megabyte of text (a long document, a history)"
    assert len(json.dumps(body)) + op.max_body_bytes // FREE_FORM_SHARE <= op.max_body_bytes
    assert user_content["allOf"][0]["maxItems"] >= 1024, "a long conversation's history is accepted"


def _longest_text(document: dict) -> int:
    """The user message's longest text content, as openapi.yaml writes it."""
    content = document["components"]["schemas"]["ChatUserMessage"]["properties"]["content"]
    return next(branch["maxLength"] for branch in content["anyOf"] if branch.get("type") == "string")


def test_only_caller_defined_json_is_free_form_in_the_chat_request():
    free = largest_body(CONTRACT_OBJ.by_id["createChatCompletion"].body_schema).free_form
    assert free, "the tool parameter schemas are free-form"
    assert all(path.endswith(("parameters", "schema", "function", "custom", "items")) for path in free), free


def test_the_measure_itself_on_small_schemas():
    text = {"type": "string", "maxLength": 3}
    assert largest_body(text).bytes == 2 + 3 * WORST_BYTES_PER_CHARACTER
    assert len(json.dumps("😀😀😀")) == largest_body(text).bytes  # the worst case is reached
    assert largest_body({"type": "string", "maxLength": 3, "pattern": "^[A-Za-z0-9+/=]*$"}).bytes == 5
    assert largest_body({"type": "string", "maxLength": 3, "pattern": "^[^x]*$"}).bytes == 38  # any character but x
    flags = {"type": "array", "maxItems": 2, "items": {"type": "boolean"}}
    assert len(json.dumps([False, False])) <= largest_body(flags).bytes == 16
    closed = {"type": "object", "properties": {"a": {"const": "xy"}}, "additionalProperties": False}
    assert largest_body(closed).bytes >= len(json.dumps({"a": "xy"})) and not largest_body(closed).free_form
    assert largest_body({"type": "object", "properties": {"a": {"type": "null"}}}).free_form == ["#"]
    with pytest.raises(ValueError, match="without maxLength"):
        largest_body({"type": "string"})
