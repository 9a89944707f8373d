"""Chats as large as apps send them are served: a pasted document, a long history, an inline
image, a long tool result. openapi.yaml bounds each string at OpenAI's own cap (10,485,760
characters) and a conversation at 2,048 messages; past those, and past the body limit, the
refusal states the limit and the size, and never echoes the value back.
"""

from __future__ import annotations

import base64
import os

from mockserver.contract import default_contract

from ..conftest import AUTH

PATH = "/v1/users/user_123/chat/completions"
STRING_CAP = 10_485_760


def post(client, messages):
    return client.post(PATH, json={"model": "gpt-4o-mini", "messages": messages, "max_tokens": 8}, headers=AUTH)


def served(client, messages):
    response = post(client, messages)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.json


def test_a_pasted_document_of_20_kb_is_served(client):
    answer = served(client, [{"role": "user", "content": "word " * 4_000}])
    assert answer["usage"]["prompt_tokens"] > 4_000 / 4  # it was read, not cut


def test_a_history_of_500_messages_is_served(client):
    turns = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}"} for i in range(499)]
    served(client, [*turns, {"role": "user", "content": "and now?"}])


def test_long_text_parts_tool_results_and_tool_arguments_are_served(client):
    served(client, [
        {"role": "user", "content": [{"type": "text", "text": "x" * 3_000}, {"type": "text", "text": "y" * 3_000}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "fetch_page", "arguments": '{"q": "' + "z" * 5_000 + '"}'}},  # noqa: E501
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "page text " * 2_000},
        {"role": "user", "content": "Summarise it."},
    ])  # fmt: skip


def test_an_inline_image_of_100_kb_is_served(client):
    image = "data:image/jpeg;base64," + base64.b64encode(os.urandom(100_000)).decode()
    served(client, [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": image}},
    ]}])  # fmt: skip


def test_past_the_string_cap_the_refusal_states_the_size_without_echoing_it(client):
    response = post(client, [{"role": "user", "content": [{"type": "text", "text": "x" * (STRING_CAP + 1)}]}])
    assert response.status_code in (400, 413)
    message = response.json["error"]["message"]
    assert len(message) < 400 and "x" * 100 not in message


def test_past_2048_messages_the_refusal_names_the_limit_and_the_count(client):
    response = post(client, [{"role": "user", "content": "hi"}] * 2_049)
    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "bad_request",
        "message": "Invalid field 'messages': messages must hold at most 2048 items, not 2049",
    }


def test_a_too_long_description_is_refused_with_its_length_not_its_text(client):
    body = {"external_user_id": "user_123", "amount": 0.5, "description": "d" * 501}
    response = client.post("/v1/funding/grant", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["message"] == (
        "Invalid field 'description': description must be at most 500 characters long, not 501"
    )


def test_the_contract_caps_chat_strings_at_openais_own_limit():
    schemas = default_contract().document["components"]["schemas"]
    content = schemas["ChatUserMessage"]["properties"]["content"]["anyOf"]
    assert next(b["maxLength"] for b in content if b.get("type") == "string") == STRING_CAP
    assert schemas["ChatTextPart"]["properties"]["text"]["maxLength"] == STRING_CAP
    assert schemas["ChatInlineData"]["maxLength"] == STRING_CAP


def test_a_response_format_asking_for_10_20_characters_is_answered_not_a_500(client):
    schema = {"type": "object", "properties": {"a": {"type": "string", "minLength": 10**20}}, "required": ["a"]}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}  # fmt: skip
    response = client.post(PATH, json=body, headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert len(response.get_data()) < 1_000_000
