"""The strict, bounded, canonical reading of JSON (and YAML) documents at the edge."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.domain.errors import QuotaError
from mockserver.web.json_input import MAX_DEPTH, MAX_VALUES, canonical, parse_json, parse_yaml


def refusal(raw: bytes) -> str:
    with pytest.raises(QuotaError) as caught:
        parse_json(raw)
    assert caught.value.code == "bad_request"
    return caught.value.message


def test_integral_numbers_become_integers_and_the_rest_stay_exact():
    document = parse_json(b'{"a": 3.0, "b": 0.50, "c": 1e2, "d": -0.0, "e": [2.000, 7]}')
    assert document == {"a": 3, "b": Decimal("0.50"), "c": 100, "d": 0, "e": [2, 7]}
    assert [type(document[k]) for k in "acd"] == [int, int, int]
    assert isinstance(document["b"], Decimal)


def test_field_order_is_kept():
    assert list(parse_json(b'{"z": 1, "a": 2, "m": 3}')) == ["z", "a", "m"]


def test_duplicates_nan_and_bad_bytes_are_refused():
    assert "'amount'" in refusal(b'{"amount": 1, "x": 2, "amount": 3}')
    assert "'k'" in refusal(b'{"o": {"k": 1, "k": 1}}')
    assert "not a JSON number" in refusal(b'{"a": NaN}')
    assert "UTF-8" in refusal(b'{"a": "\xff"}')


def test_depth_and_value_count_are_bounded():
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    assert "nested too deeply" in refusal(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert "nested too deeply" in refusal(b"[" * 100_000 + b"]" * 100_000)
    assert len(parse_json(b"[" + b",".join([b"0"] * (MAX_VALUES - 1)) + b"]")) == MAX_VALUES - 1
    assert "too many values" in refusal(b"[" + b",".join([b"0"] * MAX_VALUES) + b"]")


def test_lone_surrogates_are_refused_with_their_place_escaped():
    message = refusal(b'{"a": [{"b\\udfff": 1}]}')
    assert "'a.0.b\\udfff'" in message and "surrogate" in message
    assert parse_json(b'"\\ud83d\\udcb8"') == "💸"


def test_a_parsed_document_is_not_changed_in_place():
    document = {"a": Decimal("3.0"), "b": [Decimal("1.0")]}
    assert canonical(document) == {"a": 3, "b": [1]}
    assert document == {"a": Decimal("3.0"), "b": [Decimal("1.0")]} and isinstance(document["a"], Decimal)


def test_yaml_is_read_as_strictly():
    assert parse_yaml(b"pool: 1.5\nusers: {a: 2.0}\n") == {"pool": Decimal("1.5"), "users": {"a": 2}}
    with pytest.raises(QuotaError, match="'pool'"):
        parse_yaml(b"pool: 1\npool: 2\n")
    with pytest.raises(QuotaError, match="too many values"):
        parse_yaml(b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
            f"{c}: &{c} [{', '.join([f'*{chr(ord(c) - 1)}'] * 10)}]\n".encode() for c in "bcdefgh"
        ))  # fmt: skip
    with pytest.raises(QuotaError, match="date"):
        parse_yaml(b"when: 2024-01-01\n")
    assert parse_yaml(b'{"pool": 0.1}') == {"pool": Decimal("0.1")}  # JSON text read as JSON


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
)


@given(JSON_VALUES)
def test_any_json_value_without_fractions_parses_to_itself(value):
    assert parse_json(json.dumps(value).encode()) == value
