"""Money that is right inside and shown wrong, and reads that show an older state."""

from __future__ import annotations

import dataclasses
import re
import time
from decimal import Decimal
from typing import Any

from flask import Flask

from mockserver.domain.errors import USER_NOT_FOUND, QuotaError

from .kit import Exchange, correct_app, middleware, mutant, service_of

FORMAT = "money format"
FLOAT = "float money"
STALE = "stale read"

_MONEY = re.compile(r"^\$(\d+)\.(\d\d)$")


def _rewrite_money(value: Any, change: Any) -> Any:
    """Apply ``change`` to every Money string in a JSON value."""
    if isinstance(value, dict):
        return {k: _rewrite_money(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_money(v, change) for v in value]
    if isinstance(value, str) and _MONEY.match(value):
        return change(value)
    return value


@mutant(FORMAT, "money.format",
        "money shown with a thousands separator (locale formatting): the $1000.00 grant pool reads "
        "\"$1,000.00\"; amounts under $1000 look right")
def money_with_thousands_separator() -> Flask:
    def grouped(text: str) -> str:
        dollars, cents = _MONEY.match(text).groups()  # type: ignore[union-attr]
        return f"${int(dollars):,}.{cents}"

    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.status == 200 and isinstance(body, dict):
            ex.set_json(_rewrite_money(body, grouped))

    return middleware(correct_app(), after)


@mutant(FORMAT, "money.format",
        "a balance with a fraction of a cent shown to four decimals (Decimal.quantize(0.0001)): "
        "\"$0.9984\" after a chat; whole-cent balances look right")
def sub_cent_balance_shown() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.status == 200 and isinstance(body, dict) and isinstance(body.get("balance_microdollars"), int):
            micros = body["balance_microdollars"]
            if micros % 10_000:
                body["balance"] = f"${Decimal(micros) / 1_000_000:.4f}"
                ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(FLOAT, "grant.readback",
        "the answer is built from the request (amount_granted $0.29, balance_after before + 0.29) "
        "while the ledger was credited int(0.29 * 100) cents: the balance read is a cent short")
def grant_answer_echoes_request() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.grant

    def grant(**kw: Any) -> Any:
        asked = kw["amount"]
        result = original(**{**kw, "amount": int((asked / 1_000_000) * 100) * 10_000})
        if result.duplicate:
            return result
        return dataclasses.replace(result, amount=asked, balance_after=result.balance_before + asked)

    service.grant = grant  # type: ignore[method-assign]
    return app


@mutant(STALE, "grant.readback",
        "balance reads come from a replica refreshed once a second: a read right after a grant "
        "shows the old balance, or 404 for a user granted a moment ago")
def replica_lags_a_second() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    replica: dict[str, Any] = {"at": float("-inf")}

    def fresh_enough() -> dict[str, Any]:
        if time.monotonic() - replica["at"] > 1.0:
            replica.update(at=time.monotonic(), users=store.users(), pool=store.pool_balance())
        return replica

    def read(user_id: str) -> int:
        balance = fresh_enough()["users"].get(user_id)
        if balance is None:
            raise QuotaError(USER_NOT_FOUND, "User not found")
        return int(balance)

    # Grants and charges go to the primary (the store); the API's balance reads to the replica.
    service.user_balance = read  # type: ignore[method-assign]
    service.developer_balance = lambda: int(fresh_enough()["pool"])  # type: ignore[method-assign]
    return app
