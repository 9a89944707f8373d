"""The fake model: pricing of every message shape, tool choice, response formats, n, stop."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.domain.chat_request import parse_chat_request
from mockserver.domain.completions import (
    AUDIO_TOKENS,
    FILE_TOKENS,
    IMAGE_TOKENS,
    ChatOptions,
    Message,
    Tool,
    ToolChoice,
    complete,
    count_tokens,
    message_tokens,
)
from mockserver.domain.json_sample import sample_value

ASK = (Message("user", "What is the weather?"),)
WEATHER = Tool("function", "get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}})
CLOCK = Tool("function", "get_time")


def test_media_parts_cost_their_flat_tokens_and_text_costs_its_length():
    text = Message("user", "x" * 40)
    assert message_tokens(text) == 4 + 10
    media = Message("user", "x" * 40, images=2, audio_clips=1, files=1)
    assert message_tokens(media) == 4 + 10 + 2 * IMAGE_TOKENS + AUDIO_TOKENS + FILE_TOKENS


def test_the_parser_counts_parts_refusals_and_tool_calls_as_text():
    request = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {}}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "sunny"}]},
            ],
        }
    )
    user, assistant, tool = request.messages
    assert (user.content, user.images) == ("abcd", 1)
    assert assistant.content == "f{}"
    assert tool.content == "sunny"


@pytest.mark.parametrize(
    ("tools", "choice", "messages", "called"),
    [
        ((WEATHER, CLOCK), None, ASK, "get_weather"),  # auto: the first tool
        ((WEATHER, CLOCK), ToolChoice("auto"), (*ASK, Message("tool", "sunny")), None),  # the result is in
        ((WEATHER, CLOCK), ToolChoice("required"), (*ASK, Message("tool", "sunny")), "get_weather"),
        ((WEATHER, CLOCK), ToolChoice("none"), ASK, None),
        ((WEATHER, CLOCK), ToolChoice("required", "get_time"), ASK, "get_time"),
        ((WEATHER, CLOCK), ToolChoice("required", "missing"), ASK, None),
        ((WEATHER, CLOCK), ToolChoice("required", allowed=("get_time",)), ASK, "get_time"),
        ((), ToolChoice("required"), ASK, None),
    ],
)
def test_which_tool_is_called(tools, choice, messages, called):
    answer = complete("m", messages, None, ChatOptions(tools=tools, tool_choice=choice)).choices[0]
    assert (answer.tool_calls[0].name if answer.tool_calls else None) == called
    assert (answer.text is None) == (called is not None)


def test_tool_definitions_are_part_of_the_prompt():
    bare = complete("m", ASK, None).prompt_tokens
    with_tool = complete("m", ASK, None, ChatOptions(tools=(WEATHER,), tool_choice=ToolChoice("none"))).prompt_tokens
    assert with_tool > bare


def test_n_choices_differ_and_are_all_counted():
    answer = complete("m", ASK, None, ChatOptions(n=3))
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert len({c.text for c in answer.choices}) == 3
    assert answer.completion_tokens == sum(count_tokens(c.text) for c in answer.choices)
    assert answer.total_tokens == answer.prompt_tokens + answer.completion_tokens


def test_stop_and_length():
    stopped = complete("m", ASK, None, ChatOptions(stop=("mock",))).choices[0]
    assert "mock" not in stopped.text and stopped.finish_reason == "stop"
    cut = complete("m", ASK, 2).choices[0]
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 2)


def test_json_object_answers_parse():
    answer = complete("m", ASK, None, ChatOptions(response_format="json_object")).choices[0]
    assert isinstance(json.loads(answer.text), dict)


def test_the_same_request_gets_the_same_answer():
    options = ChatOptions(n=2, tools=(WEATHER,), logprobs=True)
    assert complete("m", ASK, None, options) == complete("m", ASK, None, options)


# Schemas as apps write them for tools and structured outputs.
_leaf = st.one_of(
    st.just({"type": "string"}),
    st.builds(lambda n: {"type": "string", "minLength": n}, st.integers(0, 12)),
    st.builds(lambda lo: {"type": "integer", "minimum": lo}, st.integers(-50, 50)),
    st.builds(lambda hi: {"type": "number", "maximum": hi}, st.integers(-50, 50)),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(lambda values: {"enum": values}, st.lists(st.text(max_size=5), min_size=1, max_size=3)),
    st.builds(lambda value: {"const": value}, st.integers() | st.text(max_size=5)),
    st.just({"type": ["string", "null"]}),
    st.just({"format": "date-time", "type": "string"}),
)


def _container(children: st.SearchStrategy) -> st.SearchStrategy:
    names = st.text(st.characters(codec="ascii", categories=("L",)), min_size=1, max_size=6)
    objects = st.dictionaries(names, children, max_size=4).map(
        lambda props: {"type": "object", "properties": props, "required": sorted(props)}
    )
    arrays = st.builds(lambda item, n: {"type": "array", "items": item, "minItems": n}, children, st.integers(0, 2))
    any_of = st.lists(children, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches})
    return objects | arrays | any_of


SCHEMAS = st.recursive(_leaf, _container, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(SCHEMAS)
def test_a_sampled_value_fits_its_schema(schema):
    assert jsonschema_rs.validator_for(schema).is_valid(sample_value(schema))


@settings(max_examples=50, deadline=None)
@given(SCHEMAS)
def test_refs_into_defs_are_followed(schema):
    wrapped = {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}, "required": ["x"], "$defs": {"X": schema}}
    assert jsonschema_rs.validator_for(wrapped).is_valid(sample_value(wrapped))


# -- a caller's schema that asks for more than a sample can hold ------------------------------


def _timed_sample(schema):
    import time

    started = time.perf_counter()
    value = sample_value(schema)
    return value, time.perf_counter() - started


# Well within this (a fifth of a second alone), with room for a loaded CI machine; without the
# budget these never finish (30^8 values, or a string of 10^9 characters).
SAMPLED_AT_ONCE = 5.0


@pytest.mark.parametrize("length", [10**9, 10**15, 10**20])
def test_a_huge_min_length_gives_a_cut_string_at_once(length):
    value, seconds = _timed_sample({"type": "object", "properties": {"a": {"type": "string", "minLength": length}}})
    assert seconds < SAMPLED_AT_ONCE and 4 <= len(value["a"]) <= 100_004  # cut at the padding budget, no MemoryError


def test_properties_that_all_refer_back_to_the_root_do_not_fan_out():
    # 30 properties, each the whole schema again: 30^8 values at the depth cap without a budget.
    schema = {"type": "object", "properties": {f"p{i}": {"$ref": "#"} for i in range(30)}}
    value, seconds = _timed_sample(schema)
    assert seconds < SAMPLED_AT_ONCE
    assert len(json.dumps(value)) < 2_000_000


@settings(max_examples=50, deadline=2000)
@given(st.integers(0, 40), st.integers(1, 10**30))
def test_any_fan_out_and_min_length_stay_bounded(width, length):
    schema = {"type": "object", "properties": {
        **{f"p{i}": {"$ref": "#"} for i in range(width)}, "s": {"type": "string", "minLength": length},
    }}  # fmt: skip
    value, _ = _timed_sample(schema)
    assert len(json.dumps(value)) < 3_000_000
