"""Domain results in the contract's response shapes: dollar strings appear only here."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from ..domain.accounts import Developer
from ..domain.clock import iso8601
from ..domain.money import format_money
from ..domain.records import GrantResult
from ..domain.usage import USAGE_WINDOW_DAYS, UsageSummary

_encode = json.JSONEncoder(separators=(",", ":")).encode


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response; leaner than ``flask.jsonify``, which this hot path does not need."""
    return Response(_encode(body), status=status, mimetype="application/json")


def grant_body(result: GrantResult) -> dict[str, Any]:
    return {
        "external_user_id": result.external_user_id,
        "amount_granted": format_money(result.amount),
        "balance_before": format_money(result.balance_before),
        "balance_after": format_money(result.balance_after),
        "ledger_id": result.ledger_id,
        "duplicate": result.duplicate,
    }


def user_balance_body(user_id: str, balance: int) -> dict[str, Any]:
    return {
        "external_user_id": user_id,
        "balance": format_money(balance),
        "billing_mode": "user",
        "balance_microdollars": balance,
    }


def developer_balance_body(developer: Developer, balance: int) -> dict[str, Any]:
    return {
        "balance": format_money(balance),
        "balance_microdollars": balance,
        "plan": developer.plan,
        "user_id": developer.id,
        "billing_mode": developer.billing_mode,
    }


def me_body(developer: Developer, balance: int, usage: UsageSummary) -> dict[str, Any]:
    return {
        "id": developer.id,
        "email": developer.email,
        "plan": developer.plan,
        "billing_mode": developer.billing_mode,
        "balance": format_money(balance),
        "balance_microdollars": balance,
        "usage": {
            "window_days": USAGE_WINDOW_DAYS,
            "since": iso8601(usage.since),
            "until": iso8601(usage.until),
            "requests": usage.requests,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "spend": format_money(usage.spend),
            "spend_microdollars": usage.spend,
            "grants": {
                "count": usage.grant_count,
                "total": format_money(usage.grant_total),
                "total_microdollars": usage.grant_total,
            },
            "by_model": [
                {
                    "model": m.model,
                    "requests": m.requests,
                    "prompt_tokens": m.prompt_tokens,
                    "completion_tokens": m.completion_tokens,
                    "total_tokens": m.total_tokens,
                    "spend": format_money(m.spend),
                    "spend_microdollars": m.spend,
                }
                for m in sorted(usage.by_model.values(), key=lambda m: m.model)
            ],
        },
    }
