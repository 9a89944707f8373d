"""Request validation compiled from openapi.yaml once, at start-up.

Each operation's parameter and body schemas become compiled ``jsonschema_rs`` validators
(microseconds a request, where openapi-core takes milliseconds). Bodies are parsed with
``parse_float=Decimal`` so that money is never a binary float and ``multipleOf: 0.01``
is decided exactly. Every failure is a ``bad_request`` naming the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema_rs

from ..contract import Operation
from ..domain.errors import BAD_REQUEST, QuotaError
from .json_input import parse_json

# Keywords JSON Schema validators need not see; dropping them keeps compiled schemas small.
_ANNOTATIONS = ("description", "examples", "example")
# Keywords whose keys are names chosen by the author, not keywords.
_NAME_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")


@dataclass
class ValidatedRequest:
    """A request that passed the contract: typed parameters and the parsed body."""

    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    raw_body: bytes = b""


@dataclass(frozen=True)
class _Parameter:
    name: str  # as the request carries it: header names lower-cased
    label: str  # as the contract spells it, for messages
    location: str
    required: bool
    schema_type: str | None
    validator: Any


class RequestValidator:
    """Validates one operation's requests."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self._parameters = tuple(_compile_parameter(p) for p in operation.parameters)
        self._body_validator = (
            jsonschema_rs.Draft202012Validator(_strip(operation.body_schema))
            if operation.body_schema is not None
            else None
        )

    def validate(
        self,
        path_args: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw_body: bytes,
    ) -> ValidatedRequest:
        """Check one request; ``headers`` must answer ``get`` for lower-case names."""
        result = ValidatedRequest(raw_body=raw_body)
        sources = {"path": path_args, "query": query, "header": headers}
        for parameter in self._parameters:
            raw = sources[parameter.location].get(parameter.name)
            if raw is None:
                if parameter.required:
                    raise QuotaError(
                        BAD_REQUEST, f"Missing required {parameter.location} parameter '{parameter.label}'"
                    )
                continue
            if parameter.location == "header":
                raw = header_text(raw, parameter.label)
            value = _coerce(raw, parameter)
            if not parameter.validator.is_valid(value):  # the fast yes/no first; details only on failure
                if value == "" and parameter.location == "header":
                    raise QuotaError(BAD_REQUEST, _empty_header_message(parameter.label))
                _check(parameter.validator, value, f"{parameter.location} parameter '{parameter.label}'")
            getattr(result, "headers" if parameter.location == "header" else parameter.location)[parameter.name] = value
        if self._body_validator is not None:
            if not raw_body.strip():
                if self.operation.body_required:
                    raise QuotaError(BAD_REQUEST, "Missing required fields: the request body must be a JSON object")
            else:
                result.body = parse_json_body(raw_body)
                if not self._body_validator.is_valid(result.body):
                    _check_body(self._body_validator, result.body)
        return result


def parse_json_body(raw_body: bytes) -> Any:
    """Parse JSON exactly and strictly (``json_input``): decimals stay Decimal, integral numbers
    are integers; duplicate fields, NaN, lone surrogates, bad bytes and unbounded depth or
    numbers are refused."""
    return parse_json(raw_body)


def header_text(raw: str, label: str) -> str:
    """A header's value as text: its bytes read as UTF-8, or a 400 naming the header.

    WSGI hands header bytes over as latin-1 text (PEP 3333); clients send non-ASCII values
    as UTF-8, so ``X-External-User-ID: café`` is read back as ``café``.
    """
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise QuotaError(BAD_REQUEST, f"Invalid header '{label}': its value is not UTF-8 text") from None


def _empty_header_message(label: str) -> str:
    # granian (quota-mock's server) passes a header value that is not ASCII on as empty: say
    # so, rather than only that "" is too short.
    return (
        f"Invalid header '{label}': the value is empty. Header values that are not ASCII reach the "
        "mock empty under some servers (quota-mock's among them): send ASCII, or use the path form"
    )


def _check_body(validator: Any, body: Any) -> None:
    errors = list(validator.iter_errors(body))
    if not errors:
        return
    if not isinstance(body, dict):
        raise QuotaError(BAD_REQUEST, "Request body must be a JSON object")
    missing = [
        e.kind.property
        for e in errors
        if not e.instance_path and isinstance(e.kind, jsonschema_rs.ValidationErrorKind.Required)
    ]
    if missing:
        raise QuotaError(BAD_REQUEST, f"Missing required fields: {', '.join(missing)}")
    first = min(errors, key=lambda e: len(e.instance_path))
    raise QuotaError(BAD_REQUEST, f"Invalid field '{_pointer(first.instance_path)}': {first.message}")


def _check(validator: Any, value: Any, what: str) -> None:
    error = next(iter(validator.iter_errors(value)), None)
    if error is not None:
        raise QuotaError(BAD_REQUEST, f"Invalid {what}: {error.message}")


def _pointer(path: list[Any]) -> str:
    return ".".join(str(part) for part in path) or "(body)"


def _compile_parameter(parameter: dict[str, Any]) -> _Parameter:
    schema = _strip(parameter.get("schema", {}))
    location = parameter["in"]
    label = parameter["name"]
    return _Parameter(
        name=label.lower() if location == "header" else label,  # header names are case-insensitive
        label=label,
        location=location,
        required=bool(parameter.get("required")),
        schema_type=schema.get("type") if isinstance(schema.get("type"), str) else None,
        validator=jsonschema_rs.Draft202012Validator(schema),
    )


def _coerce(raw: str, parameter: _Parameter) -> Any:
    """Parameters arrive as text; turn them into the type their schema names."""
    try:
        if parameter.schema_type == "integer":
            return int(raw)
        if parameter.schema_type == "number":
            return Decimal(raw)
        if parameter.schema_type == "boolean" and raw in ("true", "false"):
            return raw == "true"
    except (ValueError, ArithmeticError):
        pass
    return raw


def _strip(schema: Any) -> Any:
    """Drop annotations and extensions from a schema (but not properties so named)."""
    if isinstance(schema, list):
        return [_strip(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    stripped = {}
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword.startswith("x-"):
            continue
        if keyword in _NAME_MAPS and isinstance(value, dict):
            stripped[keyword] = {name: _strip(sub) for name, sub in value.items()}
        else:
            stripped[keyword] = _strip(value)
    return stripped
