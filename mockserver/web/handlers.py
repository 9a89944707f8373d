"""The public API's handlers: read the validated request, call the service once, serialize.

Routes are generated from openapi.yaml by operationId; this table says which function
serves each operation, and a test checks that it covers the contract exactly.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from flask import Response

from ..domain.money import dollars_to_micros
from ..domain.records import GrantResult
from . import presenters
from .chat import create_chat_completion, create_user_chat_completion
from .state import Caller, Handler, MockState
from .validation import ValidatedRequest


def grant_user_balance(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    result = apply_grant(state, req, caller)
    response = presenters.json_response(presenters.grant_body(result))
    if result.duplicate:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def apply_grant(state: MockState, req: ValidatedRequest, caller: Caller) -> GrantResult:
    """A validated grant, applied: the API's and the dashboard's form's one way to grant.

    The fingerprint's route comes from the contract, and the grant is held in flight for
    ``--grant-delay``, whichever of the two asked for it.
    """
    body = req.body
    operation = state.contract.by_id["grantUserBalance"]
    return state.service.grant(
        scope=caller.scope,
        idempotency_key=req.headers.get("idempotency-key"),
        fingerprint=request_fingerprint(f"{operation.method} {operation.path}", body),
        user_id=body["external_user_id"],
        amount=dollars_to_micros(body["amount"]),
        description=body.get("description"),
        processing_delay=state.config.grant_delay_seconds,
    )


def get_user_balance(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    user_id = req.path["external_user_id"]
    return presenters.json_response(presenters.user_balance_body(user_id, state.service.user_balance(user_id)))


def get_balance(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    user_id = req.query.get("external_user_id")
    if user_id is not None:
        return presenters.json_response(presenters.user_balance_body(user_id, state.service.user_balance(user_id)))
    service = state.service
    return presenters.json_response(
        presenters.developer_balance_body(service.seed.developer, service.developer_balance())
    )


def get_me(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    service = state.service
    overview = service.overview()  # pool and usage in one read, kept as money moved
    return presenters.json_response(presenters.me_body(service.seed.developer, overview.pool, overview.usage))


def list_packages(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    # The documented tiers are the contract's own example; the mock adds exact amounts.
    body = state.contract.example("listPackages")
    for package in body["packages"]:
        package["balance_microdollars"] = dollars_to_micros(package["balance_display"])
    return presenters.json_response(body)


def request_fingerprint(route: str, body: Any) -> bytes:
    """A digest of what makes two requests "the same" for idempotency: route and body.

    Numbers are compared by value (``1``, ``1.0`` and ``1.00`` are one amount), keys by name.
    """
    return hashlib.sha256(f"{route}\n{_canonical(body)!r}".encode()).digest()


def _canonical(value: Any) -> Any:
    if isinstance(value, str):  # the common case first: most fields are strings
        return value
    if isinstance(value, dict):
        return ("object", tuple(sorted((key, _canonical(item)) for key, item in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | Decimal):
        return ("number", format(Decimal(value).normalize(), "f"))
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


HANDLERS: MappingProxyType[str, Handler] = MappingProxyType(
    {
        "grantUserBalance": grant_user_balance,
        "getUserBalance": get_user_balance,
        "getBalance": get_balance,
        "getMe": get_me,
        "listPackages": list_packages,
        "createUserChatCompletion": create_user_chat_completion,
        "createChatCompletion": create_chat_completion,
    }
)
