"""``/_mock/faults``: fault rules through the control API.

The book of rules is domain code (``domain/faults.py``); a new rule is checked and added by
``control.add_fault``, the one path the dashboard's form and the pytest fixture take too.
"""

from __future__ import annotations

from types import MappingProxyType

from flask import Response, jsonify

from ..domain.errors import NOT_FOUND, QuotaError
from . import control
from .admin import json_document
from .control_presenters import fault_view
from .state import ControlHandler, MockState
from .validation import ValidatedRequest


def list_faults(state: MockState, req: ValidatedRequest) -> Response:
    return jsonify({"faults": [fault_view(rule) for rule in state.faults.rules(state.clock.now())]})


def add_fault(state: MockState, req: ValidatedRequest) -> tuple[Response, int]:
    return jsonify(fault_view(control.add_fault(state, json_document()))), 201


def clear_faults(state: MockState, req: ValidatedRequest) -> Response:
    state.faults.clear()
    return jsonify({"faults": []})


def delete_fault(state: MockState, req: ValidatedRequest) -> Response:
    fault_id = req.path["fault_id"]
    if not state.faults.remove(fault_id):
        raise QuotaError(NOT_FOUND, f"No fault rule {fault_id!r} (it may have expired)")
    return jsonify({"deleted": fault_id})


FAULT_HANDLERS: MappingProxyType[str, ControlHandler] = MappingProxyType(
    {
        "mockFaults": list_faults,
        "mockAddFault": add_fault,
        "mockClearFaults": clear_faults,
        "mockDeleteFault": delete_fault,
    }
)
