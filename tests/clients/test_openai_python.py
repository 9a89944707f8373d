"""The official `openai` Python package against a live mock, used as apps use it.

Both billing paths and the header form, streaming with and without usage, content parts,
tools and a whole tool round-trip, structured outputs, and the SDK's error classes.
"""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from mockserver.domain.completions import AUDIO_TOKENS, IMAGE_TOKENS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
MODEL = "gpt-4o-mini"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def client_for(quota_mock, path: str = "/v1", **options) -> OpenAI:
    # No retries: a refusal must reach the test as the SDK raises it, at once.
    return OpenAI(base_url=quota_mock.base_url + path, api_key=quota_mock.api_key, max_retries=0, **options)


def quota(completion) -> dict:
    """The vendor's `quota` block, which the SDK keeps as an extra field of the response."""
    return completion.model_extra["quota"]


def test_the_plain_path_bills_the_developer(quota_mock):
    pool = quota_mock.state.service.developer_balance()
    completion = client_for(quota_mock).chat.completions.create(model=MODEL, messages=ASK)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content.endswith("What is the weather in Paris?")
    assert quota(completion)["billing_mode"] == "developer"
    assert quota_mock.state.service.developer_balance() == pool - quota(completion)["credits_used"]
    assert quota_mock.balance("user_123") == "$5.00"


def test_the_user_path_bills_the_user(quota_mock):
    completion = client_for(quota_mock, "/v1/users/user_123").chat.completions.create(model=MODEL, messages=ASK)
    assert quota(completion)["billing_mode"] == "user"
    assert quota_mock.balance_microdollars("user_123") == 5_000_000 - quota(completion)["credits_used"]
    assert quota(completion)["balance_after"] == quota_mock.balance("user_123")


def test_the_header_form_bills_that_user(quota_mock):
    client = client_for(quota_mock, default_headers={"X-External-User-ID": "user_123"})
    completion = client.chat.completions.create(model=MODEL, messages=ASK)
    assert quota(completion)["billing_mode"] == "user"
    per_request = client_for(quota_mock).chat.completions.create(
        model=MODEL, messages=ASK, extra_headers={"X-External-User-ID": "user_123"}
    )
    assert quota(per_request)["billing_mode"] == "user"
    spent = quota(completion)["credits_used"] + quota(per_request)["credits_used"]
    assert quota_mock.balance_microdollars("user_123") == 5_000_000 - spent


def test_integral_floats_and_the_newer_token_limit(quota_mock):
    client = client_for(quota_mock)
    assert client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3.0).usage.completion_tokens == 3
    limited = client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=2, n=2)
    assert [c.finish_reason for c in limited.choices] == ["length", "length"]


def test_streaming_without_usage_matches_the_plain_answer(quota_mock):
    client = client_for(quota_mock, "/v1/users/user_123")
    plain = client.chat.completions.create(model=MODEL, messages=ASK)
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)
    # The charge rides on the last chunk, and equals the plain answer's.
    assert chunks[-1].model_extra["quota"]["credits_used"] == quota(plain)["credits_used"]


def test_streaming_with_include_usage_ends_with_the_usage_chunk(quota_mock):
    client = client_for(quota_mock, "/v1/users/user_123")
    plain = client.chat.completions.create(model=MODEL, messages=ASK)
    before = quota_mock.balance_microdollars("user_123")
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage == plain.usage
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert before - quota_mock.balance_microdollars("user_123") == quota(plain)["credits_used"]


def test_the_streaming_helper_accumulates_the_answer(quota_mock):
    client = client_for(quota_mock)
    with client.chat.completions.stream(model=MODEL, messages=ASK, stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert (
        final.choices[0].message.content
        == client.chat.completions.create(model=MODEL, messages=ASK).choices[0].message.content
    )
    assert final.usage.total_tokens > 0


def test_content_parts_text_image_and_audio(quota_mock):
    client = client_for(quota_mock)
    text_only = client.chat.completions.create(model=MODEL, messages=ASK).usage.prompt_tokens
    parts = [
        {"type": "text", "text": "What is the weather in Paris?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
    ]
    with_media = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": parts}])
    assert with_media.usage.prompt_tokens == text_only + IMAGE_TOKENS + AUDIO_TOKENS


def test_a_tool_round_trip(quota_mock):
    client = client_for(quota_mock, "/v1/users/user_123")
    messages: list = [{"role": "system", "content": "Use the tools."}, *ASK]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message
    (call,) = message.tool_calls
    assert call.function.name == "get_weather"
    arguments = __import__("json").loads(call.function.arguments)
    assert set(arguments) == {"city", "unit"} and arguments["unit"] in ("celsius", "fahrenheit")
    # As apps do: the SDK's own message object goes back, then the tool's result.
    messages += [message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_a_forced_tool_call_streams_like_the_plain_one(quota_mock):
    client = client_for(quota_mock)
    choice = {"type": "function", "function": {"name": "get_weather"}}
    plain = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice=choice)
    with client.chat.completions.stream(model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice=choice) as stream:
        streamed = stream.get_final_completion()
    (expected,), (got,) = plain.choices[0].message.tool_calls, streamed.choices[0].message.tool_calls
    assert (got.id, got.function.name, got.function.arguments) == (
        expected.id,
        expected.function.name,
        expected.function.arguments,
    )


class Weather(BaseModel):
    city: str
    celsius: int
    sunny: bool


def test_structured_outputs_parse_into_the_apps_model(quota_mock):
    parsed = client_for(quota_mock).chat.completions.parse(model=MODEL, messages=ASK, response_format=Weather)
    assert isinstance(parsed.choices[0].message.parsed, Weather)
    json_mode = client_for(quota_mock).chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(__import__("json").loads(json_mode.choices[0].message.content), dict)


def test_the_error_classes(quota_mock):
    client = client_for(quota_mock)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=ASK, extra_body={"temprature": 0.2})
    assert bad.value.status_code == 400 and bad.value.code == "bad_request"
    assert "Unrecognized request argument supplied: temprature" in bad.value.message
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        OpenAI(base_url=quota_mock.base_url + "/v1", api_key="sk-quota-wrong", max_retries=0).chat.completions.create(
            model=MODEL, messages=ASK
        )
    assert unauthorized.value.code == "invalid_api_key"
    with pytest.raises(openai.APIStatusError) as broke:
        client_for(quota_mock, "/v1/users/user_456").chat.completions.create(model=MODEL, messages=ASK)
    assert broke.value.status_code == 402 and broke.value.code == "insufficient_balance"
    with pytest.raises(openai.NotFoundError) as missing:
        client_for(quota_mock, "/v1/users/nobody").chat.completions.create(model=MODEL, messages=ASK)
    assert missing.value.code == "user_not_found"
    assert quota_mock.conservation().holds


def test_the_readme_example_runs(quota_mock, capsys):
    section = README.split("### With the official `openai` client", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    exec(compile(code.replace("http://127.0.0.1:8080", quota_mock.base_url), "README.md", "exec"), {})
    assert re.fullmatch(r".+ \$4\.99\n", capsys.readouterr().out)  # user_123 had $5.00
