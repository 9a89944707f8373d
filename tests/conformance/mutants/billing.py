"""Who pays, and how much: the grant pool, the account a chat bills, and the 402 path."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from flask import Flask

from mockserver.domain.records import ChargeResult

from ...raw_balances import write_raw_balance
from .kit import (
    Exchange,
    add_to_balance,
    chat_path,
    correct_app,
    middleware,
    mutant,
    on_answer,
    service_of,
    store_patch,
    stream_flag,
)

POOL = "pool accounting"
ACCOUNT = "wrong account"
CHAT = "chat"


@mutant(POOL, "grant.pool_debit",
        "grants credit the user but never debit the grant pool (the developer balance never moves)")
def pool_never_debited() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_grant(user_id: str, amount: int, *args: Any) -> Any:
            result = original(user_id, amount, *args)
            add_to_balance(service, None, amount)
            return result
        return apply_grant

    return store_patch("apply_grant", wrap)


@mutant(POOL, "grant.pool_debit",
        "a replay debits the grant pool again (the user is not credited again)")
def pool_debited_on_replay() -> Flask:
    # The store's one-step grant (claim, apply and record under one lock) answers replays.
    def wrap(service: Any, original: Any) -> Any:
        def grant(request: Any, clock: Any) -> Any:
            result = original(request, clock)
            if result.duplicate:
                add_to_balance(service, None, -result.amount)
            return result
        return grant

    return store_patch("grant", wrap)


@mutant(POOL, "grant.pool_debit",
        "the pool is debited in cents while it is kept in micro-dollars: a $0.50 grant takes "
        "50 micro-dollars off the developer balance")
def pool_debited_in_cents() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_grant(user_id: str, amount: int, *args: Any) -> Any:
            result = original(user_id, amount, *args)
            add_to_balance(service, None, amount - amount // 10_000)
            return result
        return apply_grant

    return store_patch("apply_grant", wrap)


@mutant(POOL, "grant.pool_debit",
        "the pool is debited the amount plus a 10% platform fee that the docs never mention")
def pool_debited_with_fee() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_grant(user_id: str, amount: int, *args: Any) -> Any:
            result = original(user_id, amount, *args)
            add_to_balance(service, None, -(amount // 10))
            return result
        return apply_grant

    return store_patch("apply_grant", wrap)


@mutant(POOL, "grant.pool_debit",
        "the first grant a process serves after a deploy debits the pool twice (a lazily migrated pool row "
        "replays its pending debit); the user is credited once, and every later grant is right")
def first_grant_after_deploy_debits_twice() -> Flask:
    migrated = threading.Event()

    def wrap(service: Any, original: Any) -> Any:
        def apply_grant(user_id: str, amount: int, *args: Any) -> Any:
            result = original(user_id, amount, *args)
            if not migrated.is_set():
                migrated.set()
                add_to_balance(service, None, -amount)
            return result
        return apply_grant

    return store_patch("apply_grant", wrap)


@mutant(ACCOUNT, "chat.user_debit",
        "a chat on /v1/users/{id}/chat/completions is charged to the developer's balance, not "
        "the user's (the quota block still names the user's balance)")
def user_chat_bills_developer() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        store = service.store
        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            if user_id is None:
                return original(user_id, amount, *args)
            balance = store.user_balance(user_id)
            if balance is not None and amount > balance:
                return original(user_id, amount, *args)  # the 402 still works
            charge = original(None, amount, *args)
            return ChargeResult(charge.ledger_id, amount, balance, balance - amount)
        return apply_charge

    return store_patch("apply_charge", wrap)


@mutant(ACCOUNT, "chat.user_debit",
        "a user's chat is charged to the user and to the developer's balance as well")
def user_chat_also_bills_developer() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            result = original(user_id, amount, *args)
            if user_id is not None:
                original(None, amount, *args)
            return result
        return apply_charge

    return store_patch("apply_charge", wrap)


@mutant(ACCOUNT, "chat.header_form",
        "X-External-User-ID is ignored on /v1/chat/completions: the developer is billed")
def header_form_ignored() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.path == "/v1/chat/completions":
            ex.drop_header("X-External-User-ID")
        return False

    return middleware(correct_app(), None, before)


@mutant(ACCOUNT, "chat.developer_billing",
        "the billed user is kept in a per-worker variable that is not reset: a plain "
        "/v1/chat/completions after a header-billed one bills that user again")
def billed_user_leaks_between_requests() -> Flask:
    last: dict[str, str] = {}

    def before(ex: Exchange) -> bool:
        if ex.path == "/v1/chat/completions" and ex.method == "POST":
            user = ex.header("X-External-User-Id")
            if user:
                last["user"] = user
            elif "user" in last:
                ex.headers["X-External-User-Id"] = last["user"]
        return False

    return middleware(correct_app(), None, before)


@mutant(ACCOUNT, "chat.user_debit",
        "a completion is served and its quota block filled in, but nothing is ever debited")
def chat_never_charged() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        store = service.store
        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            before = store.pool_balance() if user_id is None else store.user_balance(user_id)
            if before is not None and amount > before:
                return original(user_id, amount, *args)  # still 402 when it cannot pay
            return ChargeResult("ledg_unbilled", amount, before or 0, (before or 0) - amount)
        return apply_charge

    return store_patch("apply_charge", wrap)


@mutant(ACCOUNT, "chat.user_debit",
        "the balance is debited the hold for max_tokens (4096 when absent), never settled to the "
        "tokens used, while quota.credits_used reports the real cost")
def chat_hold_never_settled() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, model: str, prompt: int, completion: int, now: float) -> Any:
        hold = service.seed.prices.cost(model, prompt, 4096)
        before = store.pool_balance() if user_id is None else store.user_balance(user_id)
        if before is None or hold > before:
            return original(user_id, amount, model, prompt, completion, now)
        result = original(user_id, hold, model, prompt, completion, now)
        return dataclasses.replace(result, amount=amount, balance_after=result.balance_before - amount)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(CHAT, "chat.never_negative",
        "a chat the balance cannot cover is served and the balance goes below zero (the check "
        "runs after the charge)")
def chat_lets_balance_go_negative() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        store = service.store
        lock = threading.Lock()

        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            with lock:
                balance = None if user_id is None else store.user_balance(user_id)
                if balance is not None and amount > balance:
                    write_raw_balance(store, user_id, amount)  # lend it, so the charge goes through...
                    result = original(user_id, amount, *args)
                    write_raw_balance(store, user_id, balance - amount)  # ...and below zero
                    return dataclasses.replace(result, balance_before=balance, balance_after=balance - amount)
                return original(user_id, amount, *args)
        return apply_charge

    return store_patch("apply_charge", wrap)


@mutant(CHAT, "chat.insufficient",
        "a chat the balance cannot cover is served and charged what is left, never 402")
def chat_served_at_zero_balance() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        store = service.store
        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            balance = store.user_balance(user_id) if user_id is not None else None
            if balance is not None:
                amount = min(amount, balance)
            return original(user_id, amount, *args)
        return apply_charge

    return store_patch("apply_charge", wrap)


@mutant(CHAT, "chat.stream_sse",
        "stream: true is ignored: the answer is one JSON completion, not server-sent events")
def stream_ignored() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and body.get("stream") is True:
            body["stream"] = False
            ex.set_request_json(body)
        return False

    return middleware(correct_app(), None, before)


@mutant(CHAT, "chat.stream_sse", "the event stream ends without the final data: [DONE]")
def stream_without_done() -> Flask:
    def change(ex: Exchange) -> None:
        ex.response = ex.response.replace(b"data: [DONE]\n\n", b"")

    return on_answer(lambda ex: ex.response_headers.get("Content-Type", "").startswith("text/event-stream"), change)


@mutant(CHAT, "chat.stream_sse",
        "streamed chats are served as text/plain (the proxy's default), same bytes")
def stream_as_text_plain() -> Flask:
    def change(ex: Exchange) -> None:
        ex.response_headers["Content-Type"] = "text/plain; charset=utf-8"

    return on_answer(lambda ex: ex.response_headers.get("Content-Type", "").startswith("text/event-stream"), change)


@mutant(ACCOUNT, "chat.user_debit",
        "streamed chats are never charged: only the JSON path calls the billing code")
def stream_never_charged() -> Flask:
    app = correct_app()
    store = service_of(app).store
    original = store.apply_charge
    streaming, before = stream_flag()

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        if not getattr(streaming, "on", False):
            return original(user_id, amount, *args)
        before = store.pool_balance() if user_id is None else store.user_balance(user_id)
        if before is None or amount > before:
            return original(user_id, amount, *args)
        return ChargeResult("ledg_unbilled", amount, before, before - amount)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, None, before)
