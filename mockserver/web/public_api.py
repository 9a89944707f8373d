"""The public API's routes, generated from openapi.yaml: one route per operation.

Each request of an operation goes through the same steps, in this order: the rate limit
(before authentication, so that floods of bad keys count too), authentication, the
``Prefer`` header and fault rules, validation against the contract, then the operation's
handler (``handlers.HANDLERS``, by operationId).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, request

from ..contract import Operation
from .handlers import HANDLERS
from .simulation import before_operation, check_rate_limit
from .state import Caller, Handler, MockState, authenticate, flask_rule
from .validation import RequestValidator

# The operations the fast lane may answer: plain JSON in, plain JSON out (chat streams).
FAST_LANE_OPERATIONS = frozenset({"grantUserBalance", "getUserBalance", "getBalance", "getMe", "listPackages"})
# Where the fast lane leaves a refusal for the view to raise (see fast_lane.py).
FAST_LANE_REFUSAL = "quota_mock.fast_lane.refusal"
# Set on the views this module makes: the fast lane answers an operation only while its view
# is still one of them (a view replaced by a test or a plugin sends its requests to Flask).
FAST_LANE_VIEW = "quota_mock_answers_like_fast_lane"


def register_operations(app: Flask, state: MockState) -> None:
    """Serve every operation of the contract, each by its handler."""
    for operation in state.contract.operations:
        app.add_url_rule(
            flask_rule(operation.path),
            endpoint=operation.operation_id,
            view_func=_make_view(state, operation, HANDLERS[operation.operation_id]),
            methods=[operation.method],
        )


def answer(
    state: MockState,
    operation: Operation,
    validator: RequestValidator,
    path_args: Mapping[str, str],
    query: Any,
    headers: Any,
    body: bytes,
    target: tuple[str, str],
) -> Response:
    """What the view does once no rate limit, Prefer header or fault rule applies: the fast
    lane's whole request (``fast_lane.py``). ``query`` and ``headers`` answer ``get``;
    ``target``: the raw path and query (see ``RequestValidator.validate``)."""
    caller = Caller(None if operation.public else authenticate(state.service, headers.get("Authorization")))
    validated = validator.validate(path_args, query, headers, body, target)
    return HANDLERS[operation.operation_id](state, validated, caller)


def raw_target(environ: Mapping[str, Any]) -> tuple[str, str]:
    """The request's raw path and query, as the validator checks them."""
    return environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")


def _make_view(state: MockState, operation: Operation, handler: Handler) -> Callable[..., Response]:
    validator = state.validators[operation.operation_id]
    # The operation's own limit from openapi.yaml (x-quota-body-limit); werkzeug answers 413
    # past it without reading the body.
    body_limit = operation.max_body_bytes or state.config.max_body_bytes

    def view(**path_args: str) -> Response:
        refusal = request.environ.get(FAST_LANE_REFUSAL)
        if refusal is not None:  # the fast lane met it: answer it here, through the one error path
            raise refusal
        request.max_content_length = body_limit
        if state.rate_limiter is not None:  # before authentication: floods of bad keys count too
            check_rate_limit(state.rate_limiter, state.clock.now())
        caller = Caller(None if operation.public else authenticate(state.service, request.headers.get("Authorization")))
        before_operation(state.contract, operation, state.faults, state.clock, state.hold)
        validated = validator.validate(
            path_args,
            request.args,
            request.headers,  # case-insensitive: looked up by the contract's header names
            request.get_data(cache=True),
            raw_target(request.environ),
        )
        return handler(state, validated, caller)

    view.__name__ = operation.operation_id
    setattr(view, FAST_LANE_VIEW, True)
    return view
