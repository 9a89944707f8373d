"""The chat request in openapi.yaml: every field OpenAI's SDK can send, each one marked."""

from __future__ import annotations

import typing

import jsonschema_rs
from openai.types.chat import completion_create_params

from mockserver.contract import CONTRACT, DOCUMENTED, default_contract

CONTRACT_OBJ = default_contract()
REQUEST = CONTRACT_OBJ.document["components"]["schemas"]["ChatCompletionRequest"]
# The fields the vendor's public docs name; every other one follows OpenAI, the contract's choice.
VENDOR_FIELDS = {"model", "messages", "max_tokens", "stream"}


def test_every_field_is_marked_documented_or_contract():
    for name, field in REQUEST["properties"].items():
        mark = field.get("x-quota-provenance") or CONTRACT_OBJ.resolve(field).get("x-quota-provenance")
        assert mark == (DOCUMENTED if name in VENDOR_FIELDS else CONTRACT), name


def test_unknown_fields_are_refused_by_a_marked_list_of_exactly_the_fields():
    (closed,) = [part for part in REQUEST["allOf"] if "propertyNames" in part]
    assert closed["x-quota-provenance"] == CONTRACT
    assert "Unrecognized request argument supplied" in closed["description"]
    assert sorted(closed["propertyNames"]["enum"]) == sorted(REQUEST["properties"])


def test_every_argument_of_the_openai_sdk_is_a_field():
    # The SDK's own list of what `client.chat.completions.create` may send.
    sdk = set(typing.get_type_hints(completion_create_params.CompletionCreateParamsBase)) | {"stream"}
    missing = sdk - set(REQUEST["properties"])
    assert not missing, f"the openai SDK can send {sorted(missing)}, which the contract would refuse"


def test_the_request_body_examples_cover_parts_and_a_tool_round_trip():
    examples = CONTRACT_OBJ.document["components"]["requestBodies"]["ChatCompletion"]["content"]["application/json"][
        "examples"
    ]
    validator = jsonschema_rs.Draft202012Validator(CONTRACT_OBJ.resolve(REQUEST))
    shapes = set()
    for example in examples.values():
        body = example["value"]
        assert validator.is_valid(body)
        for message in body["messages"]:
            shapes.add(message["role"])
            if isinstance(message.get("content"), list):
                shapes.update(part["type"] for part in message["content"])
    assert {"system", "user", "assistant", "tool", "text", "image_url"} <= shapes
