"""A small, deterministic JSON value that fits a caller's JSON Schema.

The fake model answers a forced tool call, or a ``json_schema`` response format, with a value
built from the schema the app sent: every declared property, the first ``enum`` value, a
``const``, one item of an array, bounds respected. It reads the keywords apps actually use
(Pydantic's and zod's output included, with local ``$ref``s into ``$defs``); anything it
does not understand gives a plain value rather than an error, because the schema belongs to
the caller and the mock must not refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_MAX_DEPTH = 8
# What one sample may build: the schema is the caller's, and one whose properties all refer back
# to the root fans out exponentially (30 such properties: 30^8 values), and a minLength may ask
# for 10^20 characters. Past these the sample is cut (a null, a shorter string), never an error.
_MAX_VALUES = 10_000
_MAX_PADDING = 100_000  # characters added to reach minLength, over the whole sample
_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


class _Budget:
    """What is left to build of one sample."""

    __slots__ = ("padding", "values")

    def __init__(self) -> None:
        self.values = _MAX_VALUES
        self.padding = _MAX_PADDING


def sample_value(schema: Any) -> Any:
    """A value for ``schema``; ``{}`` (any value) gives an empty object, as tools expect objects."""
    if not isinstance(schema, Mapping) or not schema:
        return {}
    return _sample(schema, schema, 0, _Budget())


def _sample(schema: Any, root: Mapping[str, Any], depth: int, budget: _Budget) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH or budget.values <= 0:
        return None
    budget.values -= 1
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _sample(_follow(ref, root), root, depth + 1, budget)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for keyword in ("anyOf", "oneOf", "allOf"):
        branches = [b for b in schema.get(keyword) or () if isinstance(b, Mapping)]
        if branches:
            # A real value rather than null, when a branch offers one.
            chosen = next((b for b in branches if b.get("type") != "null"), branches[0])
            return _sample(chosen, root, depth + 1, budget)
    kind = _kind(schema)
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {str(name): _sample(sub, root, depth + 1, budget) for name, sub in properties.items()}
    if kind == "array":
        count = min(max(_int(schema.get("minItems"), 1), 1), 3)
        return [_sample(schema.get("items", {}), root, depth + 1, budget) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, budget)


def _follow(ref: str, root: Mapping[str, Any]) -> Any:
    """A local ``#/...`` reference inside the caller's schema; anything else is unknown."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _int(value: Any, fallback: int) -> int:
    return int(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else fallback


def _number(schema: Mapping[str, Any]) -> int:
    low = _int(schema.get("minimum"), 1 - 2**31)
    high = _int(schema.get("maximum"), 2**31)
    if "exclusiveMinimum" in schema:
        low = max(low, _int(schema["exclusiveMinimum"], low - 1) + 1)
    if "exclusiveMaximum" in schema:
        high = min(high, _int(schema["exclusiveMaximum"], high + 1) - 1)
    return min(max(1, low), high)


def _string(schema: Mapping[str, Any], budget: _Budget) -> str:
    text = _FORMATS.get(str(schema.get("format")), "mock")
    minimum = _int(schema.get("minLength"), 0)
    maximum = _int(schema.get("maxLength"), max(minimum, len(text)))
    if len(text) < minimum:
        padding = min(minimum - len(text), budget.padding)
        budget.padding -= padding
        text += "x" * padding
    return text[: max(maximum, 0)]
