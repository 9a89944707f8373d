"""JSON documents as the mock reads them: strict, bounded and canonical, before anything else
looks at them.

Every request body (and every seed document) passes through here once, at the edge, so that
no handler, fingerprint, validator or view ever meets a value it cannot handle:

* a field may appear only once in an object: ``{"amount": 0.01, "amount": 2}`` is refused, so
  money never depends on which duplicate a parser keeps;
* nesting depth and the number of values are bounded *before* anything recurses (the JSON
  Schema validator, the idempotency fingerprint, a dashboard's template);
* numbers are bounded in digits and magnitude before anything converts them
  (``1e1000000`` would overflow ``Decimal.normalize``); an integral number is an integer, as
  JSON Schema says (``3.0`` is ``3``), so that a handler that slices or counts with it works;
* text must be encodable: a lone surrogate (``"\\udfff"``, legal JSON escape, not Unicode
  text) would be stored, then break every view that encodes it; it is refused naming the field.

Each refusal is a ``bad_request`` whose message names the problem and, where there is one,
the field.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import yaml

from ..domain.errors import BAD_REQUEST, QuotaError
from .escaping import printable

# Far beyond any request of the contract (a chat message with tool schemas nests ~10 deep),
# far below where recursion in the validator or fingerprint could fail.
MAX_DEPTH = 64
# Values (objects, arrays, strings, numbers...) in one document: a 64 KiB JSON body holds at
# most ~32,000; a YAML seed with aliases could otherwise expand to billions.
MAX_VALUES = 100_000
# A number's significant digits and decimal exponent. Every number a binary-float JSON encoder
# writes (up to 1.8e308, down to 5e-324) is inside, so clients never meet them; past them a
# number would cost megabytes to write out exactly (the idempotency fingerprint does).
MAX_NUMBER_DIGITS = 400
MAX_NUMBER_EXPONENT = 400


class _DuplicateField(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def parse_json(raw: bytes, what: str = "Request body") -> Any:
    """Parse a JSON document strictly and return it in canonical form (see the module doc)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QuotaError(BAD_REQUEST, f"{what} is not valid UTF-8") from exc
    try:
        document = json.loads(
            text,
            parse_float=Decimal,
            parse_int=_parse_int,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except _DuplicateField as exc:
        raise QuotaError(
            BAD_REQUEST, f"{what} repeats the field {_shown(exc.name)}: each field may appear only once"
        ) from exc
    except RecursionError as exc:
        raise QuotaError(BAD_REQUEST, f"{what} is nested too deeply (at most {MAX_DEPTH} levels)") from exc
    except ValueError as exc:
        raise QuotaError(BAD_REQUEST, f"{what} is not valid JSON: {printable(str(exc))}") from exc
    return canonical(document, what)


def canonical(document: Any, what: str = "Request body") -> Any:
    """A checked, canonical copy of a parsed document: bounds and text checked, integral
    numbers made integers; the document itself is left as it was.

    Works without recursion: the point is to refuse what would make something else recurse
    too deeply. Shared parts (YAML aliases) are copied each time they appear, and counted.
    """
    values = 0
    top: list[Any] = [None]
    # Each entry: a value to copy, where its copy goes (a container and a key or index in
    # it), the value's path and its depth.
    stack: list[tuple[Any, Any, Any, tuple[Any, ...], int]] = [(document, top, 0, (), 0)]
    while stack:
        value, target, slot, path, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            raise QuotaError(BAD_REQUEST, f"{what} holds too many values (at most {MAX_VALUES})")
        if isinstance(value, str):
            _check_text(value, path, what)
            target[slot] = value
        elif isinstance(value, bool) or value is None:
            target[slot] = value
        elif isinstance(value, int | Decimal | float):
            target[slot] = _canonical_number(value, path, what)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                where = f" in {_field(path[:1])}" if path else ""
                raise QuotaError(BAD_REQUEST, f"{what} is nested too deeply{where} (at most {MAX_DEPTH} levels)")
            if isinstance(value, dict):
                copy: Any = dict.fromkeys(value)  # the fields in their order, filled in below
                for name, item in value.items():
                    if not isinstance(name, str):
                        raise QuotaError(BAD_REQUEST, f"{what} has a field name that is not text in {_field(path)}")
                    _check_text(name, (*path, name), what)
                    stack.append((item, copy, name, (*path, name), depth + 1))
            else:
                copy = [None] * len(value)
                stack.extend((item, copy, index, (*path, index), depth + 1) for index, item in enumerate(value))
            target[slot] = copy
        else:  # a YAML date, set or binary: nothing JSON can say
            raise QuotaError(BAD_REQUEST, f"Invalid field {_field(path)}: {type(value).__name__} is not a JSON value")
    return top[0]


def parse_yaml(raw: bytes, what: str = "Request body") -> Any:
    """Parse a YAML document (JSON-looking text strictly as JSON), checked as :func:`canonical`.

    YAML reads ``0.1`` as a binary float and keeps the last of duplicate keys: JSON text is
    parsed as JSON instead, and YAML that repeats a key is refused like JSON that does.
    """
    if raw.lstrip().startswith(b"{"):
        return parse_json(raw, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QuotaError(BAD_REQUEST, f"{what} is not valid UTF-8") from exc
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except _DuplicateField as exc:
        raise QuotaError(
            BAD_REQUEST, f"{what} repeats the field {_shown(exc.name)}: each field may appear only once"
        ) from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise QuotaError(BAD_REQUEST, f"{what} is neither JSON nor YAML: {printable(str(exc)[:300])}") from exc
    return canonical(document, what)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults": keys merged in may be overridden, as YAML says
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                raise _DuplicateField(str(key))
            if isinstance(key, str | int | float | bool):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_int(digits: str) -> int | Decimal:
    # Python refuses to read ints past 4,300 digits with a message about its own limits;
    # Decimal reads any length, and the bounds check that follows names the field.
    return int(digits) if len(digits) <= MAX_NUMBER_DIGITS else Decimal(digits)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateField(name)
            seen.add(name)
    return document


def _canonical_number(value: int | Decimal | float, path: tuple[Any, ...], what: str) -> int | Decimal:
    if isinstance(value, int):
        if abs(value) >= 10**MAX_NUMBER_DIGITS:
            raise _number_out_of_range(value, path, what)
        return value
    if isinstance(value, float):  # from YAML
        if not math.isfinite(value):
            raise QuotaError(BAD_REQUEST, f"Invalid field {_field(path)}: {value} is not a JSON number")
        value = Decimal(repr(value))
    if not value.is_finite():
        raise QuotaError(BAD_REQUEST, f"Invalid field {_field(path)}: {value} is not a JSON number")
    if value and (
        len(value.as_tuple().digits) > MAX_NUMBER_DIGITS or abs(value.adjusted()) > MAX_NUMBER_EXPONENT
    ):
        raise _number_out_of_range(value, path, what)
    # JSON Schema: "3.0" is the integer 3. Handlers that count or slice with it need an int.
    integral = value.to_integral_value()
    return int(integral) if integral == value else value


def _number_out_of_range(value: int | Decimal, path: tuple[Any, ...], what: str) -> QuotaError:
    text = str(value)
    shown = text if len(text) <= 24 else f"{text[:12]}...{text[-8:]}"
    return QuotaError(
        BAD_REQUEST,
        f"Invalid field {_field(path)}: the number {shown} is out of range "
        f"(at most {MAX_NUMBER_DIGITS} digits, magnitude between 1e-{MAX_NUMBER_EXPONENT} and 1e{MAX_NUMBER_EXPONENT})",
    )


def _check_text(text: str, path: tuple[Any, ...], what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = _field(path) if path else what
        raise QuotaError(
            BAD_REQUEST,
            f"Invalid field {where}: it holds a lone surrogate ({printable(exc.object[exc.start : exc.end])}), "
            "which is not Unicode text; send characters as UTF-8 or as a \\uXXXX surrogate pair",
        ) from None


def _field(path: tuple[Any, ...]) -> str:
    """A field's path as the validator names fields: ``messages.0.content``."""
    if not path:
        return "'(body)'"
    text = ".".join(str(part) for part in path)
    if len(text) > 120:
        text = f"{text[:60]}...{text[-40:]}"
    return _shown(text)


def _shown(text: str) -> str:
    return "'" + printable(text) + "'"


