"""The control API under ``/_mock/``, its routes generated from ``admin-openapi.yaml``.

As for the public API, the document decides which routes exist; each operationId is served
by the handler the tables below name (JSON routes in ``admin.py``, ``faults_api.py`` and
``journal_api.py``, the dashboard in ``dashboard.py``), after its parameters pass the
document's schemas.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from ..contract import Operation, control_contract
from .admin import CONTROL_HANDLERS, require_admin_token
from .dashboard import DASHBOARD_HANDLERS
from .faults_api import FAULT_HANDLERS
from .journal_api import JOURNAL_HANDLERS
from .state import ControlHandler, MockState, flask_rule

BLUEPRINT_NAME = "mock_admin"
_DASHBOARD_PAGE = "mockDashboard"  # the one route that also takes the token as ?token=


def control_blueprint(state: MockState) -> Blueprint:
    """Every route of admin-openapi.yaml, guarded by the admin token when one is set."""
    handlers = {**CONTROL_HANDLERS, **FAULT_HANDLERS, **JOURNAL_HANDLERS, **DASHBOARD_HANDLERS}
    operations = control_contract().operations
    documented = {op.operation_id for op in operations}
    if documented != set(handlers):
        raise RuntimeError(
            "admin-openapi.yaml and the control handlers disagree: "
            f"undocumented {sorted(set(handlers) - documented)}, unserved {sorted(documented - set(handlers))}"
        )
    admin = Blueprint(BLUEPRINT_NAME, __name__)

    @admin.before_request
    def _require_token() -> None:
        require_admin_token(state, dashboard_page=request.endpoint == f"{BLUEPRINT_NAME}.{_DASHBOARD_PAGE}")

    for operation in operations:
        admin.add_url_rule(
            flask_rule(operation.path),
            endpoint=operation.operation_id,
            view_func=_make_view(state, operation, handlers[operation.operation_id]),
            methods=[operation.method],
        )
    return admin


def _make_view(state: MockState, operation: Operation, handler: ControlHandler) -> Callable[..., ResponseReturnValue]:
    validator = state.validators[operation.operation_id]

    def view(**path_args: str) -> ResponseReturnValue:
        # Bodies are checked by the command each handler calls (control.py): the same check
        # then serves the dashboard's forms and the pytest fixture, which have no JSON body.
        query_string = request.environ.get("QUERY_STRING", "")
        return handler(state, validator.validate_parameters(path_args, request.args, request.headers, query_string))

    view.__name__ = operation.operation_id
    return view
