"""Edge inputs: the values real servers trip on, derived from openapi.yaml for every field.

Random generation finds these only by luck (stock Schemathesis found the mock's 500 on
``"max_tokens": 3.0`` once in about a thousand cases). Here each field of each operation gets
them on purpose, one edge per request, on top of a plain valid request (the contract's
example): integral floats where integers go, huge and float-precision-breaking numbers,
amounts at and around the limits, empty, long and non-ASCII strings (accents, CJK, emoji,
combining marks, right-to-left, NUL), empty arrays and objects, ``null``, an unknown field,
and a very large body. Whether each edge is valid is decided by openapi.yaml afterwards
(:func:`~conformance.plain.broken`), never assumed here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.case import Case
from schemathesis.generation.meta import (
    CaseMetadata,
    ComponentInfo,
    ExamplesPhaseData,
    GenerationInfo,
    PhaseInfo,
    TestPhase,
)

from mockserver.contract import CONTRACT, DOCUMENTED, Contract, Operation

from .plain import MARK, applicable, broken

# Strings servers trip on: encodings, normalisation, escaping, storage.
TEXT_EDGES: tuple[tuple[str, str], ...] = (
    ("empty string", ""),
    ("whitespace only", "   "),
    ("accented Latin", "Zoë Ångström"),
    ("CJK", "日本語のユーザー"),
    ("emoji (outside the BMP)", "fund 🚀🇺🇸"),
    ("combining mark", "e\u0301"),
    ("right-to-left", "مرحبا"),
    ("zero-width joiner", "a\u200db"),
    ("URL-significant characters", "a b/c%20d?e#f@g+h"),
    ("quotes and backslashes", "\"'\\`"),
    ("NUL", "a\u0000b"),
)
NUMBER_EDGES: tuple[tuple[str, Any], ...] = (
    ("zero", 0),
    ("negative zero", -0.0),
    ("negative", -1),
    ("sub-cent", 0.001),
    ("half a cent", 0.005),
    ("a denormal", 5e-324),
    ("beyond float precision", 9007199254740993),
    ("beyond 64 bits", 2**64),
    ("huge float", 1e308),
)
LONG_TEXT = 10_000
HUGE_BODY_BYTES = 1024 * 1024
UNKNOWN_FIELD = "x_conformance_unknown_field"
# How an edge on a path parameter is described (the fuzzer keeps such a path as it is).
EDGE_ON_PATH = "edge: path "


def edge_cases(api_operation: Any, operation: Operation, contract: Contract) -> Iterator[tuple[str, Case]]:
    """One case per edge input of ``operation``, each a plain request with one thing changed."""
    base_body = _base_body(operation, contract)
    base_path = {p["name"]: _example(p) for p in operation.parameters if p.get("in") == "path"}
    for description, body, path, query in _variants(operation, base_body, base_path):
        request = {"path_parameters": path, "query": query,
                   # A placeholder the real key replaces before sending.
                   "headers": {"Authorization": "Bearer generated"},
                   **({"body": body, "media_type": "application/json"} if body is not _NO_BODY else {})}
        meta = _meta(operation, request, f"edge: {description}")  # "edge: path ..." for a path edge
        yield description, api_operation.Case(**request, _meta=meta)


_NO_BODY = object()


def _variants(operation: Operation, body: Any, path: dict[str, Any]) -> Iterator[tuple[str, Any, dict, dict]]:
    query_params = [p for p in operation.parameters if p.get("in") == "query"]
    if body is not _NO_BODY:
        for where, value in _field_edges(operation.body_schema or {}, body, ()):
            yield f"{_label(where)} {value[0]}", _replace(body, where, value[1]), path, {}
        if isinstance(body, dict):
            yield "an unknown extra field", {**body, UNKNOWN_FIELD: 1}, path, {}
            yield "a very large body", {**body, UNKNOWN_FIELD: "x" * HUGE_BODY_BYTES}, path, {}
    for name in path:
        for label, text in (*TEXT_EDGES, ("very long", "u" * 300), ("dot segments", "..")):
            # Percent-encoded as a client must (Schemathesis puts path values in as they are).
            yield f"path {name}: {label}", body, {**path, name: quote(text, safe="")}, {}
    for parameter in query_params:
        for label, text in (*TEXT_EDGES, ("very long", "u" * 300)):
            yield f"query {parameter['name']}: {label}", body, path, {parameter["name"]: text}
    if operation.method == "GET":
        yield "an unknown query parameter", body, path, {UNKNOWN_FIELD: "1"}


def _field_edges(schema: dict[str, Any], value: Any, where: tuple[Any, ...], mark: str = DOCUMENTED,
                 full: bool = True) -> Iterator[tuple[tuple, tuple[str, Any]]]:
    """The edges of one field (and of its fields). A field the contract added, optional where
    the docs are silent, gets the few edges that crash servers most (null, an integral float,
    empty values) rather than all of them: its turn is shared with the documented ones."""
    nodes = applicable(schema, mark, value)
    types = {t for node, _ in nodes for t in ([node["type"]] if isinstance(node.get("type"), str)
                                              else node.get("type", []))}
    bounds = [node for node, _ in nodes]
    if where:
        yield where, ("null", None)
    if "integer" in types:
        sample = value if isinstance(value, int) and not isinstance(value, bool) else _bound(bounds, "minimum", 1)
        yield where, ("as an integral float", float(sample))
        low = _bound(bounds, "minimum", None)
        if low is not None and low != sample:
            yield where, ("its minimum as an integral float", float(low))
        if full:
            yield where, ("as a numeric string", str(sample))
            for label, number in NUMBER_EDGES:
                if isinstance(number, int):
                    yield where, (label, number)
    elif "number" in types and full:
        yield where, ("as an integral float", 1.0)
        yield where, ("as an integer", 1)
        yield where, ("as a numeric string", str(value))
        for label, number in NUMBER_EDGES:
            yield where, (label, number)
    if "string" in types:
        for label, text in TEXT_EDGES if full else TEXT_EDGES[:1]:
            yield where, (label, text)
        limit = _bound(bounds, "maxLength", None)
        if full and (limit is None or limit > LONG_TEXT):
            # No limit, or one megabytes away (a chat message's): a long text, within it.
            yield where, ("very long", "x" * LONG_TEXT)
        elif full:
            yield where, ("very long", "x" * (limit + 1))
            yield where, ("at its maximum length", "x" * limit)
    if "boolean" in types and full:
        yield where, ("as a string", "true")
    if "array" in types:
        yield where, ("empty array", [])
        if full:
            yield where, ("an empty object as an item", [{}])
        items = next(((node["items"], node_mark) for node, node_mark in nodes if isinstance(node.get("items"), dict)),
                     None)
        if full and isinstance(value, list) and value and items is not None:
            yield from _field_edges(items[0], value[0], (*where, 0), items[1], full)
    if "object" in types or any("properties" in node for node, _ in nodes):
        if where:
            yield where, ("empty object", {})
        if not full:
            return
        properties = {name: (child, node_mark) for node, node_mark in nodes
                      for name, child in node.get("properties", {}).items()}
        required = {name for node, _ in nodes for name in node.get("required", [])}
        for name, (child, parent_mark) in properties.items():
            present = value.get(name, _MISSING) if isinstance(value, dict) else _MISSING
            if present is _MISSING:
                present = _sample(child)
            child_mark = child.get(MARK, parent_mark) if isinstance(child, dict) else parent_mark
            added = child_mark == CONTRACT and name not in required
            yield from _field_edges(child, present, (*where, name), child_mark, full and not added)


_MISSING = object()


def _replace(body: Any, where: tuple[Any, ...], value: Any) -> Any:
    if not where:
        return copy.deepcopy(value)
    result = copy.deepcopy(body)
    node = result
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = copy.deepcopy(value)
    return result


def _label(where: tuple[Any, ...]) -> str:
    return "body" if not where else "body." + ".".join(str(step) for step in where) + ":"


def _all_of(schema: Any) -> list[dict[str, Any]]:
    if not isinstance(schema, dict):
        return []
    nodes = [schema]
    for branch in schema.get("allOf", []):
        nodes += _all_of(branch)
    return nodes


def _bound(nodes: list[dict[str, Any]], keyword: str, default: Any) -> Any:
    return next((node[keyword] for node in nodes if keyword in node), default)


def _example(parameter: dict[str, Any]) -> Any:
    schema = parameter.get("schema", {})
    return parameter.get("example") or next(iter(schema.get("examples", [])), None) or "user_123"


def _sample(schema: Any) -> Any:
    """A plain valid value for a field the example leaves out."""
    nodes = _all_of(schema)
    for node in nodes:
        if node.get("examples"):
            return node["examples"][0]
        if "default" in node:
            return node["default"]
        if node.get("enum"):
            return node["enum"][0]
        if "const" in node:
            return node["const"]
    types = {t for node in nodes for t in ([node["type"]] if isinstance(node.get("type"), str)
                                           else node.get("type", []))}
    if "integer" in types or "number" in types:
        return _bound(nodes, "minimum", 1) or 1
    if "boolean" in types:
        return False
    if "array" in types:
        return []
    if "object" in types:
        return {}
    return "x" if "string" in types else None


def _base_body(operation: Operation, contract: Contract) -> Any:
    """The contract's first request example, or a body of the required fields' samples."""
    if operation.body_schema is None:
        return _NO_BODY
    request_body = contract.resolve(operation.spec.get("requestBody", {}))
    media = request_body.get("content", {}).get("application/json", {})
    if "example" in media:
        return copy.deepcopy(media["example"])
    for example in media.get("examples", {}).values():
        if isinstance(example, dict) and "value" in example:
            return copy.deepcopy(example["value"])
    schema = operation.body_schema
    return {name: _sample(schema.get("properties", {}).get(name, {})) for name in schema.get("required", [])}


def _meta(operation: Operation, request: dict[str, Any], description: str) -> CaseMetadata:
    """Schemathesis' metadata for an edge case (the generated-data checks read it): each part
    positive exactly when openapi.yaml accepts it."""
    errors = broken(operation, SimpleNamespace(**request))
    components = {}
    for location, container, prefix in ((ParameterLocation.BODY, "body", "body"),
                                        (ParameterLocation.PATH, "path_parameters", "path parameter"),
                                        (ParameterLocation.QUERY, "query", "query parameter")):
        if request.get(container):
            negative = any(error.where.startswith(prefix) for error in errors)
            components[location] = ComponentInfo(mode=GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE)
    mode = GenerationMode.NEGATIVE if errors else GenerationMode.POSITIVE
    return CaseMetadata(
        generation=GenerationInfo(time=0.0, mode=mode),
        components=components,
        phase=PhaseInfo(name=TestPhase.EXAMPLES, data=ExamplesPhaseData(
            description=description, parameter=None, parameter_location=None, location=None)),
    )
