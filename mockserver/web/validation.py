"""Request validation compiled from openapi.yaml once, at start-up.

Each operation's parameter and body schemas become compiled ``jsonschema_rs`` validators
(microseconds a request, where openapi-core takes milliseconds). Bodies are parsed with
``parse_float=Decimal`` so that money is never a binary float and ``multipleOf: 0.01``
is decided exactly. Every failure is a ``bad_request`` naming the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema_rs

from ..contract import Operation
from ..domain.errors import BAD_REQUEST, QuotaError

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
            value = _coerce(raw, parameter)
            if not parameter.validator.is_valid(value):  # the fast yes/no first; details only on failure
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
    """Parse JSON exactly: decimals stay Decimal; NaN, Infinity and bad bytes are refused."""
    try:
        text = raw_body.decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise QuotaError(BAD_REQUEST, "Request body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise QuotaError(BAD_REQUEST, "Request body is nested too deeply") from exc
    except ValueError as exc:
        raise QuotaError(BAD_REQUEST, f"Request body is not valid JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
    # A top-level propertyNames list is how the contract closes a body (the chat request):
    # say it as OpenAI does, naming the fields.
    unknown = [
        e.kind.error.instance
        for e in errors
        if not e.instance_path and isinstance(e.kind, jsonschema_rs.ValidationErrorKind.PropertyNames)
    ]
    if unknown:
        raise QuotaError(BAD_REQUEST, f"Unrecognized request argument supplied: {', '.join(map(str, unknown))}")
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
