"""The control API's views of the state, shared by its JSON routes and the dashboard."""

from __future__ import annotations

from typing import Any

from ..domain.clock import iso8601
from ..domain.faults import FaultRule
from ..domain.money import format_money
from ..domain.records import IdempotencyView, LedgerEntry
from ..domain.store import Slices
from .state import MockState


def user_view(user_id: str, balance: int) -> dict[str, Any]:
    return {"external_user_id": user_id, "balance": format_money(balance), "balance_microdollars": balance}


def pool_view(balance: int) -> dict[str, Any]:
    return {"balance": format_money(balance), "balance_microdollars": balance}


def ledger_entry_view(entry: LedgerEntry) -> dict[str, Any]:
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


def idempotency_key_view(key: IdempotencyView) -> dict[str, Any]:
    return {
        "scope": key.scope,
        "key": key.key,
        "state": key.state,
        "expires_at": iso8601(key.expires_at),
        "ledger_id": key.ledger_id,
    }


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


def clock_view(state: MockState) -> dict[str, Any]:
    now = state.clock.now()
    return {"now": iso8601(now), "epoch_seconds": now, "offset_seconds": state.clock.offset}


def live_state(slices: Slices) -> dict[str, Any]:
    """The dashboard's bounded view: counts instead of every user, no ledger replay."""
    return {
        "pool": pool_view(slices.overview.pool),
        "user_count": slices.user_count,
        "ledger_size": slices.ledger_size,
        "idempotency_key_count": slices.key_count,
        "now": iso8601(slices.now),
    }


def snapshot(state: MockState) -> dict[str, Any]:
    """Pool, users, ledger size, key count, clock and the conservation check."""
    service = state.service
    check = service.conservation()
    return {
        "pool": pool_view(service.developer_balance()),
        "users": dict(sorted(service.store.users().items())),
        "ledger_size": service.store.ledger_size(),
        "idempotency_key_count": service.store.idempotency_key_count(),
        "clock": clock_view(state),
        "conservation": {
            "holds": check.holds,
            "external_in_microdollars": check.external_in,
            "pool_microdollars": check.pool,
            "users_microdollars": check.users,
            "spent_microdollars": check.spent,
        },
    }
