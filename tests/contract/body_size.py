"""The largest JSON body a request schema allows, as ``json.dumps`` writes it.

``json.dumps`` with its defaults is what Schemathesis (through requests) sends: ``", "`` and
``": "`` between members, and every non-ASCII character escaped, so that one character of a
string may take 12 bytes (a character outside the BMP becomes a surrogate pair,
``\\ud83d\\ude00``). A string whose pattern admits only printable ASCII other than ``"`` and
``\\`` (base64, names) takes one byte a character.

A part of a schema that bounds nothing (a free-form object: a tool's parameter schema, a
grant's unknown fields) cannot be measured; it is listed by its path, and the caller decides
how much room the limit must leave it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

WORST_BYTES_PER_CHARACTER = 12
# What Python writes for a float at its longest: -1.7976931348623157e+308.
LONGEST_NUMBER = 24
_UNSAFE_SAMPLES = ('"', "\\", "\x00", "\x7f", " ", "é", "\u2028", "😀")


@dataclass
class BodySize:
    bytes: int = 0
    free_form: list[str] = field(default_factory=list)


def largest_body(schema: Any) -> BodySize:
    """The largest serialized size of any instance of ``schema`` (``$ref`` already resolved)."""
    size = BodySize()
    size.bytes = _largest(schema, "#", size.free_form)
    return size


def _largest(schema: Any, where: str, free: list[str]) -> int:
    if schema is True or schema == {}:
        free.append(where)
        return 0
    if schema is False:
        return 0
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    if "enum" in schema:
        return max(len(json.dumps(value)) for value in schema["enum"])
    dispatched = _dispatch(schema, where, free)
    if dispatched is not None:
        return dispatched
    own = _own_types(schema)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches is not None:
        # Alternatives widen: the largest of them, each with what the schema says beside them
        # (a type of its own narrows every branch; a oneOf by a tag has whole schemas as branches).
        return max(
            _largest({**_own(schema), **branch}, f"{where}/anyOf/{i}", free) for i, branch in enumerate(branches)
        )
    if not own:
        # No type of its own: narrowed by allOf parts that carry one (or free-form).
        typed = [part for part in schema.get("allOf", []) if _own_types(part)]
        if not typed:
            free.append(where)
            return 0
        return min(_largest({**_own(schema), **part}, where, free) for part in typed)
    return max(_largest_of_type(kind, _merged(schema), where, free) for kind in own)


def _dispatch(schema: dict[str, Any], where: str, free: list[str]) -> int | None:
    """``allOf`` of ``if``/``then`` on a required enum property: the instance is one of the ``then``s."""
    conditionals = [part for part in schema.get("allOf", []) if "if" in part]
    if not conditionals:
        return None
    sizes = [_largest(part["then"], f"{where}/then/{i}", free) for i, part in enumerate(conditionals)]
    sizes += [
        _largest(part["else"], f"{where}/else/{i}", free) for i, part in enumerate(conditionals) if "else" in part
    ]
    return max(sizes)


def _own(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "allOf")}


def _own_types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return []
    return [kind] if isinstance(kind, str) else list(kind)


def _merged(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the keywords of its ``allOf`` parts (contract-marked limits) folded in."""
    merged = _own(schema)
    for part in schema.get("allOf", []):
        for keyword, value in part.items():
            if keyword in ("maxItems", "maxLength", "maxProperties", "maximum"):
                merged[keyword] = min(value, merged.get(keyword, value))
            elif keyword in ("minimum",):
                merged[keyword] = max(value, merged.get(keyword, value))
            elif keyword == "propertyNames":
                merged[keyword] = value
    return merged


def _largest_of_type(kind: str, schema: dict[str, Any], where: str, free: list[str]) -> int:
    if kind == "null":
        return 4
    if kind == "boolean":
        return 5
    if kind == "integer":
        if "minimum" in schema and "maximum" in schema:
            return max(len(str(schema["minimum"])), len(str(schema["maximum"])))
        return LONGEST_NUMBER
    if kind == "number":
        return LONGEST_NUMBER
    if kind == "string":
        if "maxLength" not in schema:
            raise ValueError(f"{where}: a string without maxLength has no largest size")
        return 2 + schema["maxLength"] * _bytes_per_character(schema.get("pattern"))
    if kind == "array":
        if "maxItems" not in schema:
            raise ValueError(f"{where}: an array without maxItems has no largest size")
        item = _largest(schema.get("items", True), f"{where}/items", free)
        return 2 + schema["maxItems"] * (item + 2)
    if kind == "object":
        return _largest_object(schema, where, free)
    raise ValueError(f"{where}: unknown type {kind!r}")


def _largest_object(schema: dict[str, Any], where: str, free: list[str]) -> int:
    properties = schema.get("properties", {})
    members = [
        len(json.dumps(name)) + 2 + _largest(sub, f"{where}/{name}", free) + 2 for name, sub in properties.items()
    ]
    names = schema.get("propertyNames", {})
    closed = schema.get("additionalProperties", True) is False or (
        set(names.get("enum", ())) <= set(properties) and "enum" in names
    )
    extra = schema.get("additionalProperties", True)
    if not closed and isinstance(extra, dict) and "maxProperties" in schema:
        key = _largest({"type": "string", **names}, f"{where}/propertyNames", free)
        value = _largest(extra, f"{where}/additionalProperties", free)
        members.append(schema["maxProperties"] * (key + 2 + value + 2))
    elif not closed:
        free.append(where)
    return 2 + sum(members)


def _bytes_per_character(pattern: str | None) -> int:
    """1 when the pattern is one character class (``^[...]*$``) of safe printable ASCII."""
    if pattern is None:
        return WORST_BYTES_PER_CHARACTER
    match = re.fullmatch(r"\^(\[[^\]]*(?:\\\][^\]]*)*\])(?:\*|\+|\{\d+(?:,\d*)?\})\$", pattern)
    if match is None:
        return WORST_BYTES_PER_CHARACTER
    character = re.compile(match.group(1))
    allowed = [chr(c) for c in range(128) if character.fullmatch(chr(c))]
    if any(c in _UNSAFE_SAMPLES or not c.isprintable() for c in allowed):
        return WORST_BYTES_PER_CHARACTER
    if any(character.fullmatch(sample) for sample in _UNSAFE_SAMPLES):
        return WORST_BYTES_PER_CHARACTER
    return 1
