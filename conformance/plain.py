"""Is a generated request *plainly documented*?

A refusal (or an unexpected status) is a documented failure only when the request is one the
vendor's docs plainly cover: fields the docs list (``x-quota-provenance: documented`` in
openapi.yaml), each in its canonical JSON type, with ordinary values. JSON Schema is more
generous than the docs: it calls ``803.0`` an integer and allows any extra field; the contract
also adds fields and limits of its own. A correct server may refuse what the docs never
promised, so such a refusal is the contract's call (a warning under ``documented``), reported
with its true reason, never with a guess.

:func:`unplain` lists every way a request leaves the plainly documented; :func:`broken` lists
every way a request breaks openapi.yaml, each with the mark of the element broken (what a
negative case's acceptance is judged by).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jsonschema_rs

from mockserver.contract import CONTRACT, Operation

from .profiles import MARK, mark_on_schema_path

# Above this many bytes a body is large: the docs set no size limit, and every server has its
# own (the contract lists 413 for it).
LARGE_BODY_BYTES = 16 * 1024
# openapi.yaml's mark on a string the docs show only by example: the shape of those examples.
PLAIN_PATTERN = "x-quota-plain-pattern"
# Control characters other than tab, newline and carriage return (which chat text carries).
_CONTROL = frozenset(chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 127))
_BOUNDS = (("maxLength", "characters", len), ("maxItems", "items", len))
# Past these a value is not plain even far below a limit the contract chose (chat text's is
# OpenAI's 10 MiB): the docs set none, and a real server may cap long before.
_PLAIN_MOST = {"maxLength": 4096, "maxItems": 128}


@dataclass(frozen=True)
class Broken:
    """One way a request breaks openapi.yaml: where, the mark of the element broken, and how."""

    where: str
    mark: str
    message: str


def unplain(operation: Operation, case: Any) -> list[str]:
    """Every way ``case`` leaves what the docs plainly cover (empty: a plainly documented request)."""
    reasons: list[str] = []
    for parameter in operation.parameters:
        value = _parameter_value(case, parameter)
        if value is None:
            continue
        where = f"{parameter.get('in')} parameter {parameter.get('name')}"
        mark = parameter.get(MARK, operation.provenance)
        if mark == CONTRACT:
            reasons.append(f"{where} is the contract's addition: the docs do not list it")
        reasons += _value_reasons(value, parameter.get("schema", {}), parameter.get("schema", {}).get(MARK, mark),
                                  where)
    body = getattr(case, "body", None)
    if operation.body_schema is not None and isinstance(body, dict | list):
        reasons += _value_reasons(body, operation.body_schema, operation.body_schema.get(MARK, operation.provenance),
                                  "body")
        size = len(json.dumps(body).encode())
        if size > LARGE_BODY_BYTES:
            reasons.append(f"the body is {size} bytes: the docs set no size limit, and a server may refuse "
                           "bodies above its own (openapi.yaml lists 413 for it)")
    return reasons


def broken(operation: Operation, case: Any) -> list[Broken]:
    """Every way ``case``'s JSON body and parameters break openapi.yaml, with the mark of the
    deepest marked element on each error's schema path."""
    found: list[Broken] = []
    body = getattr(case, "body", None)
    if operation.body_schema is not None and isinstance(body, dict | list | str | int | float | bool):
        found += _errors(operation.body_schema, body, operation.body_schema.get(MARK, operation.provenance), "body")
    for parameter in operation.parameters:
        value = _parameter_value(case, parameter)
        if value is None:
            continue
        schema = parameter.get("schema", {})
        where = f"{parameter.get('in')} parameter {parameter.get('name')}"
        found += _errors(schema, value, parameter.get(MARK, operation.provenance), where)
    return found


# -- values ---------------------------------------------------------------------------


def _value_reasons(value: Any, schema: Any, mark: str, where: str) -> list[str]:
    if not isinstance(schema, dict):
        return []
    nodes = applicable(schema, mark, value)
    reasons: list[str] = []
    types = {t for node, _ in nodes for t in _types(node)}
    if isinstance(value, float) and value.is_integer() and "integer" in types and "number" not in types:
        reasons.append(f"{where} is {value!r}, an integral float: JSON Schema counts it an integer, but the docs "
                       f"show integers (like {int(value)}) and many servers (Go, Rust, Java) refuse a float there")
    if value is None and "null" in types and len(types) > 1:
        shown = " or ".join(sorted(types - {"null"}))
        article = "an" if shown[0] in "aeiou" else "a"
        reasons.append(f"{where} is null: the docs show {article} {shown} there (null is the contract's allowance)")
    if isinstance(value, str):
        reasons += _string_reasons(value, where)
        for node, _ in nodes:
            shape = node.get(PLAIN_PATTERN)
            if isinstance(shape, str) and not re.search(shape, value):
                examples = ", ".join(str(e) for e in node.get("examples", [])) or shape
                reasons.append(f"{where} is {value!r}: the docs show values like {examples}; openapi.yaml allows "
                               f"others ({PLAIN_PATTERN} {shape}), and a server may refuse them")
    for node, node_mark in nodes:
        if node_mark != CONTRACT:
            continue
        for keyword, unit, measure in _BOUNDS:
            if keyword in node and isinstance(value, str | list) and (
                measure(value) * 2 > node[keyword] or measure(value) > _PLAIN_MOST[keyword]
            ):
                reasons.append(f"{where} has {measure(value)} {unit}: the docs set no limit, and the contract's "
                               f"{node[keyword]} is its own choice (a server may allow fewer)")
        if "maximum" in node and _is_number(value) and value * 2 > node["maximum"] > 0:
            reasons.append(f"{where} is {value!r}: the docs set no maximum, and the contract's {node['maximum']} "
                           "is its own choice")
    if isinstance(value, dict):
        properties = {name: (child, node_mark) for node, node_mark in nodes
                      for name, child in node.get("properties", {}).items()}
        # A field its object requires is part of the shape the docs show (a message's role and
        # content), whatever marks its limits; an optional field the contract marks is its addition.
        required = {name for node, _ in nodes for name in node.get("required", [])}
        for name, item in value.items():
            if name not in properties:
                reasons.append(f"{where} has the field {name!r}, which openapi.yaml does not define: the docs "
                               "list the fields, not what a server does with others (OpenAI refuses them)")
                continue
            child, parent_mark = properties[name]
            child_mark = child.get(MARK, parent_mark) if isinstance(child, dict) else parent_mark
            if child_mark == CONTRACT and name not in required:
                reasons.append(f"{where}.{name} is the contract's addition: the docs do not list it")
            reasons += _value_reasons(item, child, child_mark, f"{where}.{name}")
    elif isinstance(value, list):
        items = [(node["items"], node_mark) for node, node_mark in nodes if isinstance(node.get("items"), dict)]
        for index, item in enumerate(value):
            for child, child_mark in items:
                reasons += _value_reasons(item, child, child.get(MARK, child_mark), f"{where}[{index}]")
    return _unique(reasons)


def _string_reasons(value: str, where: str) -> list[str]:
    reasons = []
    if not value.strip():
        reasons.append(f"{where} is {'empty' if not value else 'only whitespace'}: the docs show text there, and a "
                       "server may require some")
    surrogate = next((ch for ch in value if 0xD800 <= ord(ch) <= 0xDFFF), None)
    if surrogate is not None:
        reasons.append(f"{where} holds an unpaired surrogate (U+{ord(surrogate):04X}): it is no Unicode text, and "
                       "RFC 8259 leaves such strings to the server")
    control = next((ch for ch in value if ch in _CONTROL), None)
    if control is not None:
        reasons.append(f"{where} holds the control character U+{ord(control):04X}: the docs do not say text may "
                       "carry it (many stores refuse NUL)")
    return reasons


def applicable(schema: dict[str, Any], mark: str, value: Any) -> list[tuple[dict[str, Any], str]]:
    """The parts of a schema that apply to ``value``, each with its own mark (inherited when
    unmarked): the schema, its ``allOf`` branches, the ``anyOf``/``oneOf`` branches the value
    matches, and the ``then`` (or ``else``) its ``if`` picks."""
    mark = schema.get(MARK, mark)
    found = [(schema, mark)]
    for branch in schema.get("allOf", []):
        if isinstance(branch, dict):
            found += applicable(branch, mark, value)
    for keyword in ("anyOf", "oneOf"):
        for branch in schema.get(keyword, []):
            if isinstance(branch, dict) and _valid(branch, value):
                found += applicable(branch, mark, value)
    if isinstance(schema.get("if"), dict):
        chosen = schema.get("then") if _valid(schema["if"], value) else schema.get("else")
        if isinstance(chosen, dict):
            found += applicable(chosen, mark, value)
    return found


def _valid(schema: dict[str, Any], value: Any) -> bool:
    validator = _validator(_Same(schema))
    return validator is not None and validator.is_valid(value)


class _Same:
    """A schema compared by identity: the key of its compiled validator. Serialising a large
    schema to find its validator cost more than the validation (6% of a run's CPU); the
    schemas come from openapi.yaml, read once and never changed, and the cache's key keeps
    each alive, so an identity found again is the same schema."""

    __slots__ = ("schema",)

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def __hash__(self) -> int:
        return id(self.schema)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.schema is self.schema


@functools.lru_cache(maxsize=512)
def _validator(key: _Same) -> Any:
    """A compiled validator per schema (memoised: openapi.yaml's schemas never change in a run)."""
    try:
        return jsonschema_rs.validator_for(key.schema)
    except (ValueError, jsonschema_rs.ValidationError):  # a schema its own draft rejects judges nothing
        return None


def _types(node: dict[str, Any]) -> list[str]:
    declared = node.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- errors -------------------------------------------------------------------------------


def _errors(schema: dict[str, Any], value: Any, mark: str, where: str) -> list[Broken]:
    validator = _validator(_Same(schema))
    if validator is None:
        return []
    found = []
    for error in validator.iter_errors(value):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
        found.append(Broken(f"{where}{path}", mark_on_schema_path(schema, list(error.schema_path), mark),
                            error.message))
    return found


def _parameter_value(case: Any, parameter: dict[str, Any]) -> Any:
    location, name = parameter.get("in"), str(parameter.get("name", ""))
    container = {"path": getattr(case, "path_parameters", None), "query": getattr(case, "query", None),
                 "header": getattr(case, "headers", None)}.get(location)
    if not container:
        return None
    for key, value in dict(container).items():
        if str(key).lower() == name.lower():
            # A path value travels percent-encoded (Schemathesis generates it so): judge the text.
            return unquote(value) if location == "path" and isinstance(value, str) else value
    return None
