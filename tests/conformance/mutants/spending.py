"""Spending gone wrong: what a chat debits, when a refusal still costs, and a pool that pays
for grants that never happened."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask

from mockserver.domain.errors import INSUFFICIENT_BALANCE, QuotaError
from mockserver.domain.records import ChargeResult

from ...raw_balances import write_raw_balance
from .kit import (
    GRANT,
    Exchange,
    Rendezvous,
    add_to_balance,
    chat_path,
    correct_app,
    middleware,
    mutant,
    on_answer,
    service_of,
    stream_flag,
    write_balance,
)

ACCOUNT = "wrong account"
CHAT = "chat"
POOL = "pool accounting"
STATUS = "wrong status"


@mutant(ACCOUNT, "chat.user_debit",
        "the debit prices the prompt tokens only (the completion is billed \"later\", never), while "
        "quota.credits_used reports the whole cost")
def chat_charges_prompt_only() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, model: str, prompt: int, completion: int, now: float) -> Any:
        prompt_only = service.seed.prices.cost(model, prompt, 0)
        result = original(user_id, prompt_only, model, prompt, completion, now)
        return dataclasses.replace(result, amount=amount, balance_after=result.balance_before - amount)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(CHAT, "chat.insufficient",
        "a chat the balance cannot cover takes what is left, then answers 402: the refusal costs "
        "the user their last cents")
def refused_chat_still_charges() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        balance = None if user_id is None else store.user_balance(user_id)
        if balance is not None and 0 < balance < amount:
            write_balance(service, user_id, 0)
            raise QuotaError(INSUFFICIENT_BALANCE, "User balance too low")
        return original(user_id, amount, *args)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(ACCOUNT, "chat.user_debit",
        "a streamed chat is charged twice: an estimate when the stream opens and the real cost "
        "when it ends; the quota block shows one charge")
def stream_charged_twice() -> Flask:
    app = correct_app()
    store = service_of(app).store
    original = store.apply_charge
    streaming, before = stream_flag()

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        result = original(user_id, amount, *args)
        if getattr(streaming, "on", False):
            with contextlib.suppress(QuotaError):  # the second charge is best effort, like the bug
                original(user_id, amount, *args)
        return result

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, None, before)


@mutant(CHAT, "chat.never_negative",
        "check-then-charge without a lock: two chats in flight for a user whose balance covers "
        "one are both served, and the balance ends below zero")
def concurrent_chats_overspend() -> Flask:
    app = correct_app()
    store = service_of(app).store
    original = store.apply_charge
    race = Rendezvous(app)
    ids = itertools.count(1)
    lock = threading.Lock()

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        if user_id is None:
            return original(user_id, amount, *args)
        before = store.user_balance(user_id)
        if before is None or amount > before:
            return original(user_id, amount, *args)  # 404 or 402, as a correct store says
        race.meet()
        with lock:  # the write itself is atomic; the check above was not
            write_raw_balance(store, user_id, (store.user_balance(user_id) or 0) - amount)
        return ChargeResult(f"ledg_race{next(ids):012d}", amount, before, before - amount)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(STATUS, "chat.insufficient",
        "a chat the balance cannot cover answers the error envelope with status 200 (the gateway "
        "wraps upstream errors)")
def insufficient_balance_as_200() -> Flask:
    def change(ex: Exchange) -> None:
        ex.status = 200

    return on_answer(lambda ex: chat_path(ex) and ex.status == 402, change)


@mutant(POOL, "grant.invalid_amount",
        "the pool is debited (reserved) before the grant is validated and never refunded: a grant "
        "refused with 400 (negative, sub-cent, too large) still costs the developer its amount")
def pool_debited_for_refused_grants() -> Flask:
    app = correct_app()
    service = service_of(app)
    reserved = threading.local()

    def before(ex: Exchange) -> bool:
        reserved.micros = 0
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        amount = body.get("amount") if isinstance(body, dict) else None
        if isinstance(amount, (int, Decimal)) and not isinstance(amount, bool):
            try:
                micros = int(abs(Decimal(amount)) * 1_000_000)
            except (InvalidOperation, ValueError):
                return False
            if 0 < micros <= service.store.pool_balance():
                reserved.micros = micros
                add_to_balance(service, None, -micros)
        return False

    def after(ex: Exchange) -> None:
        if ex.status == 200 and reserved.micros:  # the grant debits the pool itself
            add_to_balance(service, None, reserved.micros)

    return middleware(app, after, before)
