"""Request validation compiled from openapi.yaml once, at start-up.

Each operation's parameter and body schemas become compiled ``jsonschema_rs`` validators
(microseconds a request, where openapi-core takes milliseconds). Bodies are parsed with
``parse_float=Decimal`` so that money is never a binary float and ``multipleOf: 0.01``
is decided exactly. Every failure is a ``bad_request`` naming the offending field.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import jsonschema_rs

from ..contract import Operation
from ..domain.errors import BAD_REQUEST, QuotaError
from .json_input import canonical, parse_json

# Keywords JSON Schema validators need not see; dropping them keeps compiled schemas small.
_ANNOTATIONS = ("description", "examples", "example")
# What text may be read as a number: JSON's own number grammar, nothing Python adds.
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
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
        # Query parameters that take one value: the same name twice is refused, not read as
        # its first value (a proxy or a framework keeping the last would read another user).
        self._single_query_names = tuple(
            p.name for p in self._parameters if p.location == "query" and p.schema_type != "array"
        )
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
        target: tuple[str, str] = ("", ""),
    ) -> ValidatedRequest:
        """Check one HTTP request; ``headers`` must answer ``get`` for lower-case names;
        ``target``: the raw PATH_INFO and QUERY_STRING the path and query were read from."""
        check_target_text(*target)
        result = self.validate_parameters(path_args, query, headers, target[1])
        result.raw_body = raw_body
        if self._body_validator is not None:
            # parse_json_body returns a canonical document already: only the schema is left.
            result.body = self._check_canonical(parse_json_body(raw_body) if raw_body.strip() else None)
        return result

    def validate_parameters(
        self,
        path_args: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        query_string: str = "",
    ) -> ValidatedRequest:
        """Check the path, query and header parameters (as text, as a request carries them);
        ``query_string``, the raw query ``query`` was read from, shows repeated names."""
        if "&" in query_string and self._single_query_names:  # one pair cannot repeat a name
            _check_single_values(query_string, self._single_query_names)
        result = ValidatedRequest()
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
            value = _coerce(raw, parameter.schema_type)
            if not parameter.validator.is_valid(value):  # the fast yes/no first; details only on failure
                if value == "" and parameter.location == "header":
                    raise QuotaError(BAD_REQUEST, _empty_header_message(parameter.label))
                _check(parameter.validator, value, parameter.label, f"{parameter.location} parameter")
            getattr(result, "headers" if parameter.location == "header" else parameter.location)[parameter.name] = value
        return result

    def validate_document(
        self, path_args: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str], body: Any
    ) -> ValidatedRequest:
        """Check a request whose body is already a document (a form read, or built in code)."""
        result = self.validate_parameters(path_args, query, headers)
        result.body = self.check_body(body)
        return result

    def check_body(self, body: Any) -> Any:
        """Check a body already parsed (JSON, YAML, or a form made a document); None is no body.

        The control API's commands call this directly, so that the dashboard's forms and the
        pytest fixture meet exactly the checks of the JSON routes.
        """
        return self._check_canonical(None if body is None else canonical(body))

    def _check_canonical(self, body: Any) -> Any:
        if body is None:
            if self.operation.body_required:
                raise QuotaError(BAD_REQUEST, "Missing required fields: the request body must be a JSON object")
            return None
        if self._body_validator is None:
            return body
        try:
            valid = self._body_validator.is_valid(body)
        except (ValueError, TypeError) as exc:  # a YAML document JSON cannot hold (keys that are not text)
            raise QuotaError(BAD_REQUEST, f"Request body is not a JSON document: {exc}") from exc
        if not valid:
            _check_body(self._body_validator, body)
        return body

    def form_document(self, form: Mapping[str, str]) -> dict[str, Any]:
        """An HTML form's fields as the document the body schema describes.

        Forms carry text: a field whose schema is a number, a whole number or a boolean is
        read as one when it can be (otherwise it stays text, and the schema refuses it naming
        the field). Blank fields are left out, as a JSON client would leave them out.
        """
        properties = (self.operation.body_schema or {}).get("properties", {})
        document: dict[str, Any] = {}
        for name, text in form.items():
            if not text.strip():
                continue
            schema_type = properties.get(name, {}).get("type")
            document[name] = _coerce(text.strip(), schema_type if isinstance(schema_type, str) else None)
        return document


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


def _check_single_values(query_string: str, names: tuple[str, ...]) -> None:
    """A 400 when a query parameter that takes one value is given more than once."""
    counts = Counter(name for name, _ in parse_qsl(query_string, keep_blank_values=True))
    for name in names:
        if counts[name] > 1:
            raise QuotaError(
                BAD_REQUEST, f"Invalid query parameter '{name}': given {counts[name]} times, it takes one value"
            )


def check_target_text(path_info: str, query_string: str) -> None:
    """A 400 unless the request's path and query are UTF-8 text once percent-decoded.

    Routing and the query parser read them leniently: invalid bytes became U+FFFD in a path
    (``/v1/users/%ff/balance`` was user "\ufffd"'s) and stayed as written in a query
    (``?external_user_id=%fe`` was user "%FE"'s), so two different ids were read as one.
    ``path_info`` is WSGI's latin-1 text of the decoded bytes; ``query_string`` is still encoded.
    """
    try:
        path_info.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        pass  # already text: a server that decoded it
    except UnicodeDecodeError:
        raise QuotaError(BAD_REQUEST, "The request path is not UTF-8 text once percent-decoded") from None
    if query_string.isascii() and "%" not in query_string:
        return
    try:
        unquote_to_bytes(query_string.encode("latin-1").replace(b"+", b" ")).decode("utf-8")
    except UnicodeEncodeError:
        pass
    except UnicodeDecodeError:
        raise QuotaError(BAD_REQUEST, "The query string is not UTF-8 text once percent-decoded") from None


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
    missing = [e.kind.property for e in errors if not e.instance_path and isinstance(e.kind, _kind.Required)]
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
    first = _most_telling(errors)
    if isinstance(first.kind, _kind.AdditionalProperties):
        where = f" in '{_pointer(first.instance_path)}'" if first.instance_path else ""
        raise QuotaError(BAD_REQUEST, f"Unknown field(s){where}: {', '.join(first.kind.unexpected)}")
    field = _pointer(first.instance_path)
    raise QuotaError(BAD_REQUEST, f"Invalid field '{field}': {_plain(first, field)}")


def _most_telling(errors: list[Any]) -> Any:
    """The shallowest error, an unresolved oneOf/anyOf last: a sibling error (the role's enum
    beside the message's oneOf by role) says more than "valid under none of the schemas"."""
    resolved = [_chosen_branch_error(e) for e in errors]
    return min(resolved, key=lambda e: (isinstance(e.kind, _kind.OneOfNotValid | _kind.AnyOf), len(e.instance_path)))


def _chosen_branch_error(error: Any) -> Any:
    """Under oneOf or anyOf (a chat message by its role, a content part by its type), the error
    of the one branch the value itself chose: every other branch fails on the value's type or
    on its tag (a const or enum of one of its fields). Then its own error names what is wrong,
    ("messages.0.content must be at most ... characters") rather than "none of the shapes"."""
    if not isinstance(error.kind, _kind.OneOfNotValid | _kind.AnyOf) or not error.kind.context:
        return error
    here = len(error.instance_path)
    chosen = [branch for branch in error.kind.context if branch and not any(_rules_out(sub, here) for sub in branch)]
    return _most_telling(chosen[0]) if len(chosen) == 1 else error


def _rules_out(sub: Any, depth: int) -> bool:
    """Whether a branch's error says the value is not of that branch at all."""
    at = len(sub.instance_path)
    if isinstance(sub.kind, _kind.Type):
        return at == depth
    return isinstance(sub.kind, _kind.Constant | _kind.Enum) and at in (depth, depth + 1)


def _check(validator: Any, value: Any, label: str, what: str) -> None:
    error = next(iter(validator.iter_errors(value)), None)
    if error is not None:
        raise QuotaError(BAD_REQUEST, f"Invalid {what} '{label}': {_plain(error, label)}")


_kind = jsonschema_rs.ValidationErrorKind
_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _plain(error: Any, name: str) -> str:
    """The failure in words a person reads: what ``name`` must be, and what it was."""
    kind = error.kind
    shown = json.dumps(error.instance, default=str)[:80]
    if isinstance(kind, _kind.Type):
        return f"{name} must be {' or '.join(_TYPE_WORDS.get(t, t) for t in kind.types)}, not {shown}"
    if isinstance(kind, _kind.Enum):
        return f"{name} must be one of {', '.join(map(str, kind.options))}; {shown} is not one of them"
    limits = {
        _kind.Minimum: "at least",
        _kind.Maximum: "at most",
        _kind.ExclusiveMinimum: "more than",
        _kind.ExclusiveMaximum: "less than",
    }
    for limit_kind, words in limits.items():
        if isinstance(kind, limit_kind):
            return f"{name} must be {words} {kind.limit}, not {shown}"
    # Sizes are stated, not echoed: the value may be a 20 KB prompt.
    instance = error.instance
    if isinstance(kind, _kind.MaxLength | _kind.MinLength) and isinstance(instance, str):
        words = "at most" if isinstance(kind, _kind.MaxLength) else "at least"
        return f"{name} must be {words} {kind.limit} characters long, not {len(instance)}"
    if isinstance(kind, _kind.MaxItems | _kind.MinItems) and isinstance(instance, list):
        words = "at most" if isinstance(kind, _kind.MaxItems) else "at least"
        return f"{name} must hold {words} {kind.limit} items, not {len(instance)}"
    if isinstance(kind, _kind.Not) and isinstance(kind.schema, dict):
        refused = kind.schema
        if "enum" in refused:
            return f"{name} may not be {' or '.join(json.dumps(v) for v in refused['enum'])}"
        if "pattern" in refused:
            pattern = refused["pattern"]
            return f"{name} may not contain a character matching {pattern} (it was {_short(shown, error.instance)})"
    if isinstance(kind, _kind.AnyOf):
        return f"{name} has none of the shapes the contract allows for it ({_short(shown, error.instance)})"
    message = str(error.message)
    return message if len(message) <= _MESSAGE_LIMIT else message[:_MESSAGE_LIMIT] + "…"


_MESSAGE_LIMIT = 300  # characters of a validator's own message, which quotes the whole value


def _short(shown: str, instance: Any) -> str:
    """``shown`` (the value's first 80 characters of JSON), marked when the value went on."""
    return shown + "…" if len(json.dumps(instance, default=str)) > len(shown) else shown


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


def _coerce(raw: str, schema_type: str | None) -> Any:
    """Parameters and form fields arrive as text; read them as the type their schema names."""
    try:
        if schema_type == "integer" and _INTEGER.fullmatch(raw):
            return int(raw)
        if schema_type in ("integer", "number") and _NUMBER.fullmatch(raw):
            # As in a JSON body: "2.0" is the integer 2; past the number bounds it stays text
            # (and the schema refuses it as not a number).
            value = canonical(Decimal(raw))
            return value if schema_type == "number" or isinstance(value, int) else raw
        if schema_type == "boolean" and raw in ("true", "false"):
            return raw == "true"
    except (ValueError, ArithmeticError, QuotaError):
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
