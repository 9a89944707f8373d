"""Verifying what a client sent, from the request journal, with near-miss reports.

What WireMock's ``verify(postRequestedFor(...))`` is to its journal: a test names the
operation and, optionally, what the calls must look like (``where``), and on failure the
message lists the closest calls and, for each, what did not match.

``where`` is either a predicate on the record, or a mapping from a field to the value it
must have (or a predicate on that field). Fields are the record's keys as
``GET /_mock/requests`` shows them, dotted for nested ones (``request.headers.Idempotency-Key``),
plus ``json`` and ``response_json``: the bodies parsed, numbers exact (``Decimal``). A mapping
gives the better message, since each field that differs is named with both values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

Where = Callable[["JournalRequest"], bool] | Mapping[str, Any]
_SHOWN = 5  # closest misses listed in a failure message
_MISSING = object()


class JournalRequest(dict[str, Any]):
    """One journal record: the dict ``GET /_mock/requests`` shows, plus the bodies parsed."""

    @property
    def json(self) -> Any:
        """The request body as JSON (numbers as ``Decimal``), or None when it is not JSON."""
        return _parse(self["request"])

    @property
    def response_json(self) -> Any:
        return _parse(self["response"])

    def field(self, path: str) -> Any:
        """A dotted field (``request.headers.Idempotency-Key``, ``json.amount``), or raise KeyError."""
        head, _, rest = path.partition(".")
        value: Any = getattr(self, head) if head in ("json", "response_json") else self[head]
        for part in rest.split(".") if rest else ():
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise KeyError(path)
        return value

    def summary(self) -> str:
        """One line: ``#3 POST /v1/funding/grant -> 422 (idempotency conflict, key 'k')``."""
        notes = []
        if self.get("idempotency_key") is not None:
            notes.append(f"idempotency {self['idempotency']}, key {self['idempotency_key']!r}")
        if self.get("dropped"):
            notes.append("connection dropped")
        if self.get("problem"):
            notes.append(str(self["problem"]))
        query = f"?{self['query']}" if self.get("query") else ""
        line = f"#{self['id']} {self['method']} {self['path']}{query} -> {self['status']}"
        return f"{line} ({'; '.join(notes)})" if notes else line


def mismatches(record: JournalRequest, operation_id: str | None, where: Where | None) -> list[str]:
    """Why ``record`` is not a call of ``operation_id`` satisfying ``where``; empty when it is."""
    reasons = []
    if operation_id is not None and record["operation_id"] != operation_id:
        reasons.append(f"operation_id: expected {operation_id!r}, got {record['operation_id']!r}")
    if where is None:
        return reasons
    if isinstance(where, Mapping):
        for path, expected in where.items():
            reason = _field_mismatch(record, path, expected)
            if reason is not None:
                reasons.append(reason)
        return reasons
    try:
        if not where(record):
            reasons.append(f"where {_name(where)} returned false")
    except Exception as exc:
        reasons.append(f"where {_name(where)} raised {type(exc).__name__}: {exc}")
    return reasons


def verify(
    records: Iterable[JournalRequest], operation_id: str | None, times: int | None, where: Where | None
) -> list[JournalRequest]:
    """The matching calls, oldest first; AssertionError with a near-miss report when their
    number is not ``times`` (or, without ``times``, when there is none)."""
    records = list(records)
    matched, missed = [], []
    for record in records:
        reasons = mismatches(record, operation_id, where)
        if reasons:
            missed.append((record, reasons))
        else:
            matched.append(record)
    if (times is None and matched) or len(matched) == times:
        return matched
    raise AssertionError(report(records, operation_id, times, where, matched, missed))


def report(
    records: list[JournalRequest],
    operation_id: str | None,
    times: int | None,
    where: Where | None,
    matched: list[JournalRequest],
    missed: list[tuple[JournalRequest, list[str]]],
) -> str:
    wanted = "at least once" if times is None else f"{times} time{'s' * (times != 1)}"
    what = operation_id or "any operation"
    condition = "" if where is None else f" where {_describe(where)}"
    lines = [f"expected {what} to be called {wanted}{condition}, but it was called {len(matched)} time(s)."]
    if not records:
        lines.append("The request journal is empty: no request reached the mock in this test.")
        return "\n".join(lines)
    if matched:
        lines.append(f"Matching calls ({len(matched)}):")
        lines += [f"  {record.summary()}" for record in matched]
    if missed:
        # Closest first: the fewest differences, then the same operation, then the newest.
        closest = sorted(missed, key=lambda item: (len(item[1]), _other_operation(item, operation_id), -item[0]["id"]))
        lines.append(f"Closest calls that did not match ({min(_SHOWN, len(missed))} of {len(missed)}):")
        for record, reasons in closest[:_SHOWN]:
            lines.append(f"  {record.summary()}")
            lines += [f"      {reason}" for reason in reasons]
    return "\n".join(lines)


def _other_operation(item: tuple[JournalRequest, list[str]], operation_id: str | None) -> bool:
    return operation_id is not None and item[0]["operation_id"] != operation_id


def _field_mismatch(record: JournalRequest, path: str, expected: Any) -> str | None:
    try:
        actual = record.field(path)
    except KeyError:
        actual = _MISSING
    if callable(expected):
        try:
            if actual is not _MISSING and expected(actual):
                return None
        except Exception as exc:
            return f"{path}: {_name(expected)} raised {type(exc).__name__}: {exc} on {actual!r}"
        shown = "nothing (no such field)" if actual is _MISSING else repr(actual)
        return f"{path}: {_name(expected)} is false for {shown}"
    if actual is not _MISSING and _equal(actual, expected):
        return None
    shown = "nothing (no such field)" if actual is _MISSING else repr(actual)
    return f"{path}: expected {expected!r}, got {shown}"


def _equal(actual: Any, expected: Any) -> bool:
    # Bodies parse numbers exactly; a float written in a test means its decimal text (0.1).
    if isinstance(actual, Decimal) and isinstance(expected, float):
        return actual == Decimal(repr(expected))
    return bool(actual == expected)


def _parse(part: Mapping[str, Any]) -> Any:
    if part.get("truncated") or not part.get("body"):
        return None
    try:
        return json.loads(part["body"], parse_float=Decimal)
    except ValueError:
        return None


def _describe(where: Where) -> str:
    if isinstance(where, Mapping):
        return ", ".join(f"{path}={_name(value) if callable(value) else repr(value)}" for path, value in where.items())
    return _name(where)


def _name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", repr(function))
    code = getattr(function, "__code__", None)
    if name == "<lambda>" and code is not None:
        return f"<lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}>"
    return str(name)
