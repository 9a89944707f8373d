"""The control API under ``/_mock/``: outside the public contract, described in
``mockserver/admin-openapi.yaml``. Tests, the pytest fixture and people use it to reset and
seed state, look inside (users, ledger, idempotency keys) and move the clock."""

from __future__ import annotations

import hmac
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..domain.clock import iso8601
from ..domain.errors import BAD_REQUEST, INVALID_API_KEY, USER_NOT_FOUND, QuotaError
from ..domain.money import MoneyError, format_money, parse_dollar_string
from ..domain.records import LedgerEntry
from ..domain.seed import SeedError, build_seed, parse_seed_text
from .state import MockState
from .validation import parse_json_body

ADMIN_TOKEN_HEADER = "X-Mock-Admin-Token"  # noqa: S105 - a header name, not a secret
# The dashboard's browser session: ``/_mock/?token=...`` once, then this cookie.
ADMIN_TOKEN_COOKIE = "quota_mock_admin_token"  # noqa: S105 - a cookie name, not a secret
DASHBOARD_ENDPOINT = "mock_admin.dashboard"
_MAX_LEDGER_PAGE = 1000


def admin_blueprint(state: MockState) -> Blueprint:
    admin = Blueprint("mock_admin", __name__, url_prefix="/_mock")
    service = state.service

    @admin.before_request
    def _require_token() -> None:
        token = state.config.admin_token
        if token and not hmac.compare_digest(_presented_token().encode(), token.encode()):
            raise QuotaError(
                INVALID_API_KEY,
                f"The control API needs the {ADMIN_TOKEN_HEADER} header "
                "(in a browser: open /_mock/?token=TOKEN once; a cookie keeps it)",
            )

    @admin.get("/health")
    def health() -> Response:
        return jsonify({"status": "ok"})

    @admin.post("/reset")
    def reset() -> Response:
        """Back to the starting state; a seed document in the body replaces parts of it."""
        state.reset(_seed_from_body(state) if request.get_data() else None)
        return jsonify(_snapshot(state))

    @admin.post("/seed")
    def seed() -> Response:
        if not request.get_data().strip():
            raise QuotaError(BAD_REQUEST, "send a seed document (JSON or YAML) in the body")
        state.reset(_seed_from_body(state))
        return jsonify(_snapshot(state))

    @admin.get("/state")
    def snapshot() -> Response:
        return jsonify(_snapshot(state))

    @admin.get("/users")
    def users() -> Response:
        return jsonify({"users": [_user(uid, bal) for uid, bal in sorted(service.store.users().items())]})

    @admin.get("/users/<user_id>")
    def user(user_id: str) -> Response:
        balance = service.store.user_balance(user_id)
        if balance is None:
            raise QuotaError(USER_NOT_FOUND, "User not found")
        return jsonify(_user(user_id, balance))

    @admin.put("/users/<user_id>/balance")
    def set_user_balance(user_id: str) -> Response:
        service.set_balance(user_id, _balance_from_body())
        return jsonify(_user(user_id, service.user_balance(user_id)))

    @admin.put("/pool")
    def set_pool() -> Response:
        service.set_balance(None, _balance_from_body())
        pool = service.developer_balance()
        return jsonify({"balance": format_money(pool), "balance_microdollars": pool})

    @admin.get("/ledger")
    def ledger() -> Response:
        limit = request.args.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= _MAX_LEDGER_PAGE:
            raise QuotaError(BAD_REQUEST, f"limit must be an integer from 1 to {_MAX_LEDGER_PAGE}")
        newest_first = [_entry(e) for e in reversed(service.store.ledger_tail(int(limit)))]
        return jsonify({"total": service.store.ledger_size(), "entries": newest_first})

    @admin.get("/idempotency-keys")
    def idempotency_keys() -> Response:
        views = service.store.idempotency_keys(state.clock.now())
        return jsonify(
            {
                "count": len(views),
                "ttl_seconds": state.config.idempotency_ttl_seconds,
                "max_keys": state.config.max_idempotency_keys,
                "keys": [
                    {
                        "scope": v.scope,
                        "key": v.key,
                        "state": v.state,
                        "expires_at": iso8601(v.expires_at),
                        "ledger_id": v.ledger_id,
                    }
                    for v in views
                ],
            }
        )

    @admin.get("/clock")
    def clock() -> Response:
        return jsonify(_clock(state))

    @admin.post("/clock")
    def move_clock() -> Response:
        """``{"advance_seconds": N}`` moves the clock forward; ``{"reset": true}`` back to real time."""
        body = _json_object()
        if body.get("reset") is True:
            state.clock.reset()
        elif isinstance(body.get("advance_seconds"), (int, Decimal)) and not isinstance(
            body.get("advance_seconds"), bool
        ):
            state.clock.advance(float(body["advance_seconds"]))
        else:
            raise QuotaError(BAD_REQUEST, 'send {"advance_seconds": <number>} or {"reset": true}')
        return jsonify(_clock(state))

    return admin


def _presented_token() -> str:
    """The admin token from the header, the dashboard's cookie, or ``?token=`` on the dashboard."""
    presented = request.headers.get(ADMIN_TOKEN_HEADER) or request.cookies.get(ADMIN_TOKEN_COOKIE)
    if presented is None and request.endpoint == DASHBOARD_ENDPOINT:
        presented = request.args.get("token")
    return presented or ""


def _seed_from_body(state: MockState) -> Any:
    try:
        document = parse_seed_text(request.get_data(as_text=True), source="request body")
        return build_seed(document, base=state.config.build_seed())
    except SeedError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid seed: {exc}") from exc


def _json_object() -> dict[str, Any]:
    body = parse_json_body(request.get_data())
    if not isinstance(body, dict):
        raise QuotaError(BAD_REQUEST, "Request body must be a JSON object")
    return body


def _balance_from_body() -> int:
    raw = _json_object().get("balance")
    try:
        if isinstance(raw, str):
            micros = parse_dollar_string(raw)
        elif isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
            micros = parse_dollar_string(str(raw))
        else:
            raise QuotaError(BAD_REQUEST, 'send {"balance": "5.00"} (dollars)')
    except MoneyError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid field 'balance': {exc}") from exc
    if micros < 0:
        raise QuotaError(BAD_REQUEST, "Invalid field 'balance': must not be negative")
    return micros


def _user(user_id: str, balance: int) -> dict[str, Any]:
    return {"external_user_id": user_id, "balance": format_money(balance), "balance_microdollars": balance}


def _entry(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "account": entry.user_id if entry.user_id is not None else "(pool)",
        "amount": format_money(abs(entry.amount)),
        "amount_microdollars": entry.amount,
        "balance_before_microdollars": entry.balance_before,
        "balance_after_microdollars": entry.balance_after,
        "at": iso8601(entry.at),
        "description": entry.description,
        "model": entry.model,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
    }


def _clock(state: MockState) -> dict[str, Any]:
    now = state.clock.now()
    return {"now": iso8601(now), "epoch_seconds": now, "offset_seconds": state.clock.offset}


def _snapshot(state: MockState) -> dict[str, Any]:
    service = state.service
    check = service.conservation()
    pool = service.developer_balance()
    return {
        "pool": {"balance": format_money(pool), "balance_microdollars": pool},
        "users": {uid: bal for uid, bal in sorted(service.store.users().items())},
        "ledger_size": service.store.ledger_size(),
        "idempotency_key_count": service.store.idempotency_key_count(),
        "clock": _clock(state),
        "conservation": {
            "holds": check.holds,
            "external_in_microdollars": check.external_in,
            "pool_microdollars": check.pool,
            "users_microdollars": check.users,
            "spent_microdollars": check.spent,
        },
    }
