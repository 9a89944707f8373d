"""The control API's JSON routes under ``/_mock/``, and the admin token that guards them all.

Outside the public contract, described in ``mockserver/admin-openapi.yaml``, from which
``control_api.py`` generates the routes. Tests, the pytest fixture and people use them to
reset and seed state, look inside (users, ledger, idempotency keys) and move the clock.
Each handler parses its body and calls one command of ``control.py``, which checks it.
"""

from __future__ import annotations

import hmac
from types import MappingProxyType
from typing import Any

from flask import Response, jsonify, request

from ..domain.errors import BAD_REQUEST, INVALID_API_KEY, USER_NOT_FOUND, QuotaError
from . import control
from .control_presenters import clock_view, idempotency_key_view, ledger_entry_view, pool_view, snapshot, user_view
from .json_input import parse_json, parse_yaml
from .state import ControlHandler, MockState
from .validation import ValidatedRequest, parse_json_body

ADMIN_TOKEN_HEADER = "X-Mock-Admin-Token"  # noqa: S105 - a header name, not a secret
# The dashboard's browser session: ``/_mock/?token=...`` once, then this cookie.
ADMIN_TOKEN_COOKIE = "quota_mock_admin_token"  # noqa: S105 - a cookie name, not a secret
DEFAULT_LEDGER_PAGE = 100


def require_admin_token(state: MockState, dashboard_page: bool) -> None:
    """With ``--admin-token``, refuse a call that does not present it (401)."""
    token = state.config.admin_token
    if token and not hmac.compare_digest(_presented_token(dashboard_page).encode(), token.encode()):
        raise QuotaError(
            INVALID_API_KEY,
            f"The control API needs the {ADMIN_TOKEN_HEADER} header "
            "(in a browser: open /_mock/?token=TOKEN once; a cookie keeps it)",
        )


def _presented_token(dashboard_page: bool) -> str:
    """The admin token from the header, the dashboard's cookie, or ``?token=`` on the dashboard."""
    presented = request.headers.get(ADMIN_TOKEN_HEADER) or request.cookies.get(ADMIN_TOKEN_COOKIE)
    if presented is None and dashboard_page:
        presented = request.args.get("token")
    return presented or ""


def health(state: MockState, req: ValidatedRequest) -> Response:
    return jsonify({"status": "ok"})


def reset(state: MockState, req: ValidatedRequest) -> Response:
    """Back to the starting state; a seed document in the body replaces parts of it."""
    if request.get_data().strip():
        control.load_seed(state, _seed_document())
    else:
        control.reset(state)
    return jsonify(snapshot(state))


def seed(state: MockState, req: ValidatedRequest) -> Response:
    if not request.get_data().strip():
        raise QuotaError(BAD_REQUEST, "send a seed document (JSON or YAML) in the body")
    control.load_seed(state, _seed_document())
    return jsonify(snapshot(state))


def state_snapshot(state: MockState, req: ValidatedRequest) -> Response:
    return jsonify(snapshot(state))


def users(state: MockState, req: ValidatedRequest) -> Response:
    return jsonify({"users": [user_view(uid, bal) for uid, bal in sorted(state.service.store.users().items())]})


def user(state: MockState, req: ValidatedRequest) -> Response:
    user_id = req.path["user_id"]
    balance = state.service.store.user_balance(user_id)
    if balance is None:
        raise QuotaError(USER_NOT_FOUND, "User not found")
    return jsonify(user_view(user_id, balance))


def set_user_balance(state: MockState, req: ValidatedRequest) -> Response:
    user_id = req.path["user_id"]
    control.set_balance(state, user_id, json_document())
    return jsonify(user_view(user_id, state.service.user_balance(user_id)))


def set_pool(state: MockState, req: ValidatedRequest) -> Response:
    control.set_balance(state, None, json_document())
    return jsonify(pool_view(state.service.developer_balance()))


def ledger(state: MockState, req: ValidatedRequest) -> Response:
    limit = req.query.get("limit", DEFAULT_LEDGER_PAGE)  # its range is admin-openapi.yaml's
    store = state.service.store
    newest_first = [ledger_entry_view(e) for e in reversed(store.ledger_tail(limit))]
    return jsonify({"total": store.ledger_size(), "entries": newest_first})


def idempotency_keys(state: MockState, req: ValidatedRequest) -> Response:
    views = state.service.store.idempotency_keys(state.clock.now())
    return jsonify(
        {
            "count": len(views),
            "ttl_seconds": state.config.idempotency_ttl_seconds,
            "max_keys": state.config.max_idempotency_keys,
            "keys": [idempotency_key_view(v) for v in views],
        }
    )


def clock(state: MockState, req: ValidatedRequest) -> Response:
    return jsonify(clock_view(state))


def move_clock(state: MockState, req: ValidatedRequest) -> Response:
    control.move_clock(state, json_document())
    return jsonify(clock_view(state))


def json_document() -> Any:
    """The request's JSON body, parsed exactly (None when there is none)."""
    raw = request.get_data()
    return parse_json_body(raw) if raw.strip() else None


def _seed_document() -> Any:
    """The seed in the body: JSON parsed as JSON, YAML as YAML, each as strictly as any body."""
    raw = request.get_data()
    if request.mimetype == "application/json":
        return parse_json(raw, "Seed document")
    return parse_yaml(raw, "Seed document")


CONTROL_HANDLERS: MappingProxyType[str, ControlHandler] = MappingProxyType(
    {
        "mockHealth": health,
        "mockReset": reset,
        "mockSeed": seed,
        "mockState": state_snapshot,
        "mockUsers": users,
        "mockUser": user,
        "mockSetUserBalance": set_user_balance,
        "mockSetPool": set_pool,
        "mockLedger": ledger,
        "mockIdempotencyKeys": idempotency_keys,
        "mockClock": clock,
        "mockMoveClock": move_clock,
    }
)
