"""Chat completions as OpenAI's clients send them: every role, content parts, tools,
response formats, n, logprobs, stop, streaming with usage, and the per-operation body limits.
"""

from __future__ import annotations

import json

import jsonschema_rs
import pytest

from mockserver.contract import default_contract
from mockserver.domain.completions import AUDIO_TOKENS, FILE_TOKENS, IMAGE_TOKENS

from ..conftest import AUTH

PATH = "/v1/users/user_123/chat/completions"
BASE = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def post(client, body, path=PATH, **headers):
    return client.post(path, json=body, headers={**AUTH, **headers})


def ok(client, body, path=PATH):
    response = post(client, body, path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def events(response) -> list[dict]:
    raw = [line.removeprefix("data: ") for line in response.get_data(as_text=True).split("\n\n") if line]
    assert raw[-1] == "[DONE]"
    return [json.loads(event) for event in raw[:-1]]


def test_every_role_with_an_assistant_tool_call_and_null_content(client):
    body = ok(
        client,
        {
            **BASE,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in Paris?", "name": "ann"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
            ],
            "tools": [WEATHER],
        },
    )
    # The tool's result is in: under tool_choice auto the answer is text, ending the round-trip.
    assert body["choices"][0]["message"]["content"].startswith(("Sure.", "Here", "Certainly.", "Of course."))
    assert body["choices"][0]["finish_reason"] == "stop"


def test_integral_floats_are_integers(client):
    body = ok(client, {**BASE, "max_tokens": 3.0, "n": 2.0, "max_completion_tokens": 5.0})
    assert len(body["choices"]) == 2
    assert all(c["finish_reason"] == "length" for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 6  # the smaller limit, per choice
    assert post(client, {**BASE, "max_tokens": 3.5}).status_code == 400


def test_optional_fields_may_be_null_as_in_openai(client):
    nulls = ("max_tokens", "temperature", "top_p", "n", "stop", "seed", "logprobs", "stream", "metadata", "user")
    body = ok(client, {**BASE, **dict.fromkeys(nulls)})
    assert body["object"] == "chat.completion"


def test_the_sampling_fields_are_accepted(client):
    body = ok(
        client,
        {
            **BASE,
            "temperature": 0.2,
            "top_p": 0.9,
            "frequency_penalty": -0.5,
            "presence_penalty": 1.5,
            "seed": 42,
            "user": "end-user-1",
            "metadata": {"session": "s1"},
            "parallel_tool_calls": False,
            "stream_options": None,
        },
    )
    assert body["choices"][0]["finish_reason"] == "stop"


def test_an_unknown_field_is_refused_as_openai_refuses_it(client):
    response = post(client, {**BASE, "temprature": 0.2})
    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "bad_request",
        "message": "Unrecognized request argument supplied: temprature",
    }
    nested = post(client, {**BASE, "messages": [{"role": "user", "content": "x", "colour": "red"}]})
    assert nested.status_code == 400 and "colour" in nested.json["error"]["message"]


@pytest.mark.parametrize(
    ("part", "flat"),
    [
        ({"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}, IMAGE_TOKENS),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}, IMAGE_TOKENS),
        ({"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}, AUDIO_TOKENS),
        (
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
            FILE_TOKENS,
        ),
    ],
)
def test_parts_count_text_as_text_and_media_at_their_flat_token_count(client, part, flat):
    text = {"type": "text", "text": "What is the weather in Paris?"}
    as_string = ok(client, BASE)["usage"]["prompt_tokens"]
    as_part = ok(client, {**BASE, "messages": [{"role": "user", "content": [text]}]})["usage"]["prompt_tokens"]
    with_media = ok(client, {**BASE, "messages": [{"role": "user", "content": [text, part]}]})
    assert as_part == as_string
    assert with_media["usage"]["prompt_tokens"] == as_string + flat


def test_a_forced_tool_call_has_arguments_that_fit_the_schema(client):
    body = ok(
        client,
        {**BASE, "tools": [CLOCK, WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    )
    choice = body["choices"][0]
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert call["id"].startswith("call_")
    arguments = json.loads(call["function"]["arguments"])
    assert jsonschema_rs.validator_for(WEATHER["function"]["parameters"]).is_valid(arguments)
    assert choice["finish_reason"] == "stop"  # OpenAI ends a call to a named tool with "stop"


def test_tool_choice_auto_required_none_and_allowed_tools(client):
    auto = ok(client, {**BASE, "tools": [CLOCK, WEATHER]})["choices"][0]
    assert auto["finish_reason"] == "tool_calls" and auto["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    required = ok(client, {**BASE, "tools": [WEATHER], "tool_choice": "required"})["choices"][0]
    assert required["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = ok(client, {**BASE, "tools": [WEATHER], "tool_choice": "none"})["choices"][0]
    assert "tool_calls" not in none["message"] and none["message"]["content"]
    allowed = {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    restricted = ok(
        client, {**BASE, "tools": [CLOCK, WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": allowed}}
    )
    assert restricted["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_fields_that_need_another_are_refused_alone_as_openai_refuses_them(client):
    alone = post(client, {**BASE, "tool_choice": "required"})
    assert alone.status_code == 400 and "tools" in alone.json["error"]["message"]
    legacy = post(client, {**BASE, "function_call": "auto"})
    assert legacy.status_code == 400 and "functions" in legacy.json["error"]["message"]
    top = post(client, {**BASE, "top_logprobs": 2})
    assert top.status_code == 400 and "logprobs" in top.json["error"]["message"]
    options = post(client, {**BASE, "stream_options": {"include_usage": True}})
    assert options.status_code == 400 and "stream" in options.json["error"]["message"]


def test_a_named_tool_missing_from_tools_gets_a_text_answer(client):
    # Every request the schema accepts is answered; which names exist is beyond a schema.
    choice = {"type": "function", "function": {"name": "nope"}}
    answer = ok(client, {**BASE, "tools": [WEATHER], "tool_choice": choice})["choices"][0]
    assert answer["message"]["content"] and "tool_calls" not in answer["message"]


def test_custom_tools_and_the_deprecated_functions(client):
    custom = {"type": "custom", "custom": {"name": "shell", "description": "Runs a command."}}
    call = ok(client, {**BASE, "tools": [custom], "tool_choice": "required"})["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "custom" and call["custom"]["name"] == "shell" and call["custom"]["input"]
    legacy = ok(client, {**BASE, "functions": [WEATHER["function"]], "function_call": {"name": "get_weather"}})
    choice = legacy["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert json.loads(choice["message"]["function_call"]["arguments"])["city"]


def test_json_object_answers_are_json_objects_for_every_choice(client):
    body = ok(client, {**BASE, "response_format": {"type": "json_object"}, "n": 3})
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    for choice in body["choices"]:
        assert isinstance(json.loads(choice["message"]["content"]), dict)


def test_json_schema_answers_fit_the_schema_refs_included(client):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "age": {"type": "integer", "minimum": 18},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "address": {"$ref": "#/$defs/Address"},
        },
        "required": ["name", "age", "tags", "address"],
        "additionalProperties": False,
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    content = ok(client, {**BASE, "response_format": response_format})["choices"][0]["message"]["content"]
    assert jsonschema_rs.validator_for(schema).is_valid(json.loads(content))


def test_n_choices_are_all_charged(client, state):
    one = ok(client, BASE)
    three = ok(client, {**BASE, "n": 3})
    assert len(three["choices"]) == 3
    assert three["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"]
    completion = sum(
        len(c["message"]["content"]) // 4 + (len(c["message"]["content"]) % 4 > 0) for c in three["choices"]
    )
    assert three["usage"]["completion_tokens"] == completion
    cost = state.service.seed.prices.cost("gpt-4o-mini", three["usage"]["prompt_tokens"], completion)
    assert three["quota"]["credits_used"] == cost


def test_stop_sequences_end_the_answer_before_them(client):
    body = ok(client, {**BASE, "stop": ["mock"]})
    assert body["choices"][0]["message"]["content"].endswith("This is a ")


def test_logprobs_give_one_entry_per_answer_token(client):
    choice = ok(client, {**BASE, "logprobs": True, "top_logprobs": 2})["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    assert all(len(e["top_logprobs"]) == 2 and e["logprob"] <= 0 for e in entries)


def _streamed(chunks: list[dict]) -> dict[int, dict]:
    """Each choice's text, tool calls and finish, put back together from the deltas."""
    choices: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            into = choices.setdefault(choice["index"], {"content": "", "calls": {}, "finish": None})
            delta = choice["delta"]
            into["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls", []):
                slot = into["calls"].setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id", slot["id"])
                slot["name"] += call.get("function", {}).get("name", "")
                slot["arguments"] += call.get("function", {}).get("arguments", "")
            into["finish"] = choice["finish_reason"] or into["finish"]
    return choices


@pytest.mark.parametrize(
    "extra",
    [{"n": 2}, {"tools": [WEATHER], "tool_choice": "required"}, {"response_format": {"type": "json_object"}}],
    ids=["text", "tool call", "json"],
)
def test_streamed_and_plain_answers_agree_in_content_usage_and_charge(client, state, extra):
    plain = ok(client, {**BASE, **extra})
    before = state.service.user_balance("user_123")
    response = post(client, {**BASE, **extra, "stream": True, "stream_options": {"include_usage": True}})
    assert response.mimetype == "text/event-stream"
    chunks = events(response)
    *body, last = chunks
    assert all(chunk["usage"] is None for chunk in body)  # null on every chunk but the last
    assert last["choices"] == [] and last["usage"] == plain["usage"]
    assert last["quota"]["credits_used"] == plain["quota"]["credits_used"]
    assert before - state.service.user_balance("user_123") == plain["quota"]["credits_used"]
    streamed = _streamed(body)
    for choice in plain["choices"]:
        again = streamed[choice["index"]]
        assert again["content"] == (choice["message"]["content"] or "")
        assert again["finish"] == choice["finish_reason"]
        calls = [
            {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in choice["message"].get("tool_calls", [])
        ]
        assert list(again["calls"].values()) == calls


def test_every_chunk_fits_the_contracts_chunk_schema(client):
    schema = default_contract().resolve({"$ref": "#/components/schemas/ChatCompletionChunk"})
    validator = jsonschema_rs.Draft202012Validator(schema)
    for extra in ({}, {"stream_options": {"include_usage": True}, "logprobs": True}, {"tools": [WEATHER]}):
        for chunk in events(post(client, {**BASE, **extra, "stream": True})):
            errors = [e.message for e in validator.iter_errors(chunk)]
            assert not errors, (chunk, errors)


def test_a_chat_body_far_above_64_kib_is_served(client):
    long = [{"role": "user", "content": "word " * 3000}] * 40  # about 600 KB
    assert len(json.dumps({**BASE, "messages": long})) > 500_000
    assert post(client, {**BASE, "messages": long}).status_code == 200


@pytest.mark.parametrize(
    ("operation", "path"), [("grantUserBalance", "/v1/funding/grant"), ("createChatCompletion", "/v1/chat/completions")]
)
def test_each_operation_refuses_a_body_past_its_own_contract_limit(client, operation, path):
    limit = default_contract().by_id[operation].max_body_bytes
    response = client.post(
        path,
        data=b"{}",
        headers={**AUTH, "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": str(limit + 1)},
    )
    assert response.status_code == 413
    assert response.json["error"] == {"code": "payload_too_large", "message": f"Request body exceeds {limit} bytes"}
