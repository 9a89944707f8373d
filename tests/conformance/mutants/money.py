"""Money that goes wrong on some amounts only: binary floats, units, overwrites."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from flask import Flask

from .kit import (
    GRANT,
    Exchange,
    add_to_balance,
    correct_app,
    grant_ok,
    middleware,
    mutant,
    on_answer,
    on_request,
    service_of,
    write_balance,
)

FLOAT = "float money"
ARITHMETIC = "arithmetic"


def _grant_with(amount_of: Any) -> Flask:
    """A correct app whose grants credit ``amount_of(micros)`` instead of the amount asked."""
    app = correct_app()
    service = service_of(app)
    original = service.grant

    def grant(**kw: Any) -> Any:
        return original(**{**kw, "amount": amount_of(kw["amount"])})

    service.grant = grant  # type: ignore[method-assign]
    return app


@mutant(FLOAT, "grant.arithmetic",
        "amount parsed as a float and truncated to cents: int(0.29 * 100) == 28, so $0.29, $0.57, "
        "$1.15 grant a cent less (and say so in amount_granted); $0.01 or $0.50 are exact")
def float_cents_truncated() -> Flask:
    return _grant_with(lambda micros: int((micros / 1_000_000) * 100) * 10_000)


@mutant(FLOAT, "grant.arithmetic",
        "amount parsed as a float and truncated to micro-dollars: $2.01 becomes 2009999 micros, "
        "shown as $2.00; amounts under $2 are exact")
def float_micros_truncated() -> Flask:
    return _grant_with(lambda micros: int((micros / 1_000_000) * 1_000_000))


@mutant(FLOAT, "grant.arithmetic",
        "balances kept as float dollars and shown truncated: one grant is right, but $0.29 then "
        "$0.57 to one user shows balance_after $0.85")
def float_balance_accumulates() -> Flask:
    shadow: dict[str, float] = {}

    def show(user: str, exact: int) -> float:
        return shadow.setdefault(user, exact / 1_000_000)

    def after(ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or ex.status != 200:
            return
        if grant_ok(ex) and not body["duplicate"]:
            user = body["external_user_id"]
            before = show(user, _micros(body["balance_before"]))
            shadow[user] = before + float(body["amount_granted"][1:])
            body["balance_before"], body["balance_after"] = _shown(before), _shown(shadow[user])
            ex.set_json(body)
        elif body.get("billing_mode") == "user" and "balance" in body and "external_user_id" in body:
            user = body["external_user_id"]
            if user in shadow:
                body["balance"] = _shown(shadow[user])
                body["balance_microdollars"] = int(shadow[user] * 1_000_000)
                ex.set_json(body)
        elif isinstance(body.get("quota"), dict) and body["quota"]["billing_mode"] == "user":
            user = ex.user_in_path() or ex.header("X-External-User-Id") or ""
            if user in shadow:
                shadow[user] -= body["quota"]["credits_used"] / 1_000_000

    return middleware(correct_app(), after)


def _micros(text: str) -> int:
    return int(Decimal(text[1:]) * 1_000_000)


def _shown(value: float) -> str:
    cents = int(value * 100)
    return f"${cents // 100}.{cents % 100:02d}"


@mutant("money format", "schema.response",
        "money formatted with str(float): $0.50 shows as \"$0.5\" and $1.00 as \"$1.0\"; "
        "amounts with a non-zero last digit look right")
def money_string_from_float() -> Flask:
    def change(ex: Exchange) -> None:
        body = ex.json
        for name in ("amount_granted", "balance_before", "balance_after"):
            body[name] = f"${float(body[name][1:])}"
        ex.set_json(body)

    return on_answer(grant_ok, change)


@mutant(FLOAT, "grant.pool_debit",
        "the developer balance is kept in float dollars (pool -= 0.29): after a few grants "
        "1000.0 - 0.29 is 999.7099999..., so balance_microdollars reads a micro-dollar short and "
        "now and then the display a cent short")
def developer_balance_float_dollars() -> Flask:
    app = correct_app()
    pool = [service_of(app).store.pool_balance() / 1_000_000]

    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.status != 200 or not isinstance(body, dict):
            return
        if grant_ok(ex) and not body["duplicate"]:
            pool[0] -= float(body["amount_granted"][1:])
        elif isinstance(body.get("quota"), dict) and body["quota"]["billing_mode"] == "developer":
            pool[0] -= body["quota"]["credits_used"] / 1_000_000
        elif ex.path in ("/v1/balance", "/v1/me") and "external_user_id" not in body:
            body["balance"], body["balance_microdollars"] = _shown(pool[0]), int(pool[0] * 1_000_000)
            ex.set_json(body)

    return middleware(app, after)


@mutant(FLOAT, "chat.user_debit",
        "chat cost computed in float dollars and debited truncated to whole cents, while quota "
        "reports the exact credits_used and balance_after: a chat under a cent is free")
def chat_cost_truncated_to_cents() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        result = original(user_id, int(amount / 1_000_000 * 100) * 10_000, *args)
        return dataclasses.replace(result, amount=amount, balance_after=result.balance_before - amount)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(ARITHMETIC, "grant.arithmetic",
        "an upsert that sets the balance to the amount instead of adding it: a user's first grant "
        "is right, every later one loses the earlier balance")
def upsert_overwrites_balance() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        before = store.user_balance(user_id) or 0
        result = original(user_id, amount, description, now, completes)
        write_balance(service, user_id, amount)
        return dataclasses.replace(result, balance_before=before, balance_after=amount)

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    return app


@mutant(ARITHMETIC, "grant.readback",
        "a user's first grant is credited twice (the row is created with the amount, then the "
        "amount is added); the grant's answer is right, the balance read is not")
def first_grant_credited_twice() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        new = store.user_balance(user_id) is None
        result = original(user_id, amount, description, now, completes)
        if new:
            add_to_balance(service, user_id, amount)
        return result

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    return app


@mutant(ARITHMETIC, "grant.arithmetic",
        "an integer JSON amount is taken as cents (Stripe habit): {\"amount\": 1} grants $0.01, "
        "while 1.00 or 0.50 are right")
def integer_amount_read_as_cents() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == "/v1/funding/grant" else None
        if isinstance(body, dict) and isinstance(body.get("amount"), int) and not isinstance(body["amount"], bool):
            body["amount"] = Decimal(body["amount"]) / 100
            ex.set_request_json(body)
        return False

    return middleware(correct_app(), None, before)


@mutant(ARITHMETIC, "grant.arithmetic",
        "grants above $1.00 are silently capped at $1.00 (a promotion limit) yet answer 200, "
        "amount_granted $1.00 for a $1.15 request")
def grants_capped_at_one_dollar() -> Flask:
    return _grant_with(lambda micros: min(micros, 1_000_000))


@mutant(ARITHMETIC, "grant.arithmetic",
        "balance_before of a later grant read from a cache filled at the user's first grant: "
        "balance_before + amount_granted != balance_after from the second grant on")
def grant_balance_before_cached() -> Flask:
    first_seen: dict[str, str] = {}

    def change(ex: Exchange) -> None:
        body = ex.json
        cached = first_seen.setdefault(body["external_user_id"], body["balance_before"])
        if cached != body["balance_before"]:
            body["balance_before"] = cached
            ex.set_json(body)

    return on_answer(grant_ok, change)



@mutant(FLOAT, "grant.invalid_amount",
        "a numeric string amount is parsed as a number (Number(\"0.50\") in the handler): \"amount\": \"0.50\" "
        "credits $0.50 where the docs' amount is a number")
def string_amount_parsed() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and isinstance(body.get("amount"), str):
            try:
                body["amount"] = Decimal(body["amount"])
            except ArithmeticError:
                return False
            ex.set_request_json(body)
        return False

    return on_request(before)
