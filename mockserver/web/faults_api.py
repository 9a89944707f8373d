"""``/_mock/faults``: fault rules through the control API (and the dashboard's form).

The book of rules is domain code (``domain/faults.py``); what needs the contract is checked
here: the operation must exist, and a failure's status must be one the operation documents,
so that every scripted failure is an answer the real API could give.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..domain.clock import iso8601
from ..domain.errors import BAD_REQUEST, NOT_FOUND, QuotaError
from ..domain.faults import FAIL, FaultError, FaultRule
from .state import MockState
from .validation import parse_json_body

_FIELDS = ("operation_id", "action", "status", "latency_ms", "count", "ttl_seconds")


def fault_routes(admin: Blueprint, state: MockState) -> None:
    @admin.get("/faults")
    def list_faults() -> Response:
        return jsonify({"faults": [fault_view(rule) for rule in state.faults.rules(state.clock.now())]})

    @admin.post("/faults")
    def add_fault() -> tuple[Response, int]:
        body = parse_json_body(request.get_data())
        if not isinstance(body, dict):
            raise QuotaError(BAD_REQUEST, "Request body must be a JSON object describing one rule")
        return jsonify(fault_view(add_rule(state, body))), 201

    @admin.delete("/faults")
    def clear_faults() -> Response:
        state.faults.clear()
        return jsonify({"faults": []})

    @admin.delete("/faults/<fault_id>")
    def delete_fault(fault_id: str) -> Response:
        if not state.faults.remove(fault_id):
            raise QuotaError(NOT_FOUND, f"No fault rule {fault_id!r} (it may have expired)")
        return jsonify({"deleted": fault_id})


def add_rule(state: MockState, document: Mapping[str, Any]) -> FaultRule:
    """Check a rule (JSON from the API, or strings from the dashboard's form) and add it."""
    unknown = sorted(set(document) - set(_FIELDS))
    if unknown:
        raise QuotaError(BAD_REQUEST, f"Unknown field(s) {', '.join(unknown)}; a rule has {', '.join(_FIELDS)}")
    operation_id = document.get("operation_id")
    operation = state.contract.by_id.get(operation_id) if isinstance(operation_id, str) else None
    if operation is None:
        known = ", ".join(sorted(state.contract.by_id))
        raise QuotaError(BAD_REQUEST, f"Invalid field 'operation_id': {operation_id!r} is not one of {known}")
    action = document.get("action")
    status = _integer(document, "status")
    if action == FAIL and status is not None and not operation.error_codes(status):
        documented = ", ".join(s for s in operation.responses if operation.error_codes(s))
        raise QuotaError(
            BAD_REQUEST, f"Invalid field 'status': {operation_id} does not document {status}; it documents {documented}"
        )
    try:
        return state.faults.add(
            operation_id=operation.operation_id,
            action=action if isinstance(action, str) else repr(action),
            now=state.clock.now(),
            status=status,
            latency_ms=_integer(document, "latency_ms") or 0,
            count=_integer(document, "count"),
            ttl_seconds=_integer(document, "ttl_seconds"),
        )
    except FaultError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid rule: {exc}") from exc


def fault_view(rule: FaultRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "operation_id": rule.operation_id,
        "action": rule.action,
        "status": rule.status,
        "latency_ms": rule.latency_ms or None,
        "remaining": rule.remaining,
        "expires_at": None if rule.expires_at is None else iso8601(rule.expires_at),
        "created_at": iso8601(rule.created_at),
    }


def _integer(document: Mapping[str, Any], name: str) -> int | None:
    """An integer field; the dashboard's form sends digits as text, and blank means absent."""
    value = document.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        return int(value.strip())
    exact = isinstance(value, int | Decimal) and not isinstance(value, bool) and abs(value) <= 10**12
    if exact and value == int(value):
        return int(value)
    raise QuotaError(BAD_REQUEST, f"Invalid field {name!r}: expected a whole number, not {value!r}")
