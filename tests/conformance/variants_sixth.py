"""Correct deployments an ff6 adversary round tried against the suite (registered by variants.py's
last import)."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask

from .mutants.kit import (
    KEY2,
    USERS,
    Exchange,
    chat_answers_rewritten,
    chat_path,
    correct_app,
    is_stream,
    middleware,
    rewrite_events,
    service_of,
)
from .variants import variant


@variant("the developer earns the markup on user-billed chats: a user's chat costing base * (1 + markup) credits "
         "the developer balance with the markup part (base * markup), the developer's revenue",
         "public-facts: effective_cost = base_cost * (1 + developer_markup_percentage) - the markup is the "
         "developer's; where it is paid is undocumented")
def developer_earns_markup() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        result = original(user_id, amount, *rest)
        if user_id is not None:
            markup = service.seed.prices.markup_percent
            earned = amount * markup // (100 + markup)
            if earned:
                store.set_balance(None, store.pool_balance() + earned, service.clock.now(), "markup earned")
        return result

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@variant("each API key is an app of the developer's account: app users belong to the app whose key granted them "
         "(the second key reads the first key's users as 404 user_not_found), the developer balance is the "
         "account's",
         "seed: 'Fund and manage balances for your app users' - the docs never say two keys share users; a key's "
         "scope is listed as undocumented")
def users_per_key() -> Flask:
    app = correct_app()

    def before(ex: Exchange) -> bool:
        if ex.header("Authorization") != f"Bearer {KEY2}":
            return False
        # Users are namespaced by app: the second app's ids are stored with its prefix.
        user = ex.user_in_path()
        if user is not None:
            ex.path = USERS + "app2~" + user + ex.path[len(USERS) + len(user):]
        if ex.method == "POST" and ex.path == "/v1/funding/grant":
            body = ex.request_json
            if isinstance(body, dict) and isinstance(body.get("external_user_id"), str):
                body["external_user_id"] = "app2~" + body["external_user_id"]
                ex.set_request_json(body)
        if "external_user_id=" in ex.query:
            ex.query = ex.query.replace("external_user_id=", "external_user_id=app2~", 1)
        x = ex.header("X-External-User-Id")
        if x is not None:
            ex.drop_header("X-External-User-ID")
            ex.headers["X-External-User-Id"] = "app2~" + x
        return False

    def after(ex: Exchange) -> None:
        if ex.header("Authorization") == f"Bearer {KEY2}" and b"app2~" in ex.response:
            ex.response = ex.response.replace(b"app2~", b"")

    return middleware(app, after, before)


@variant("one chat in flight per account: a chat sent while another is answered is refused 429 rate_limit_exceeded "
         "with Retry-After: 1 (as providers' concurrency limits answer)",
         "public-facts: 429 rate_limit_exceeded; the docs promise no concurrency")
def one_chat_in_flight() -> Flask:
    app = correct_app()
    inner = app.wsgi_app
    gate = threading.Lock()

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        is_chat = environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").endswith("/chat/completions")
        if not is_chat:
            return inner(environ, start_response)
        if not gate.acquire(blocking=False):
            body = json.dumps({"error": {"code": "rate_limit_exceeded", "message": "one chat at a time"}}).encode()
            start_response("429 Too Many Requests", [("Content-Type", "application/json"), ("Retry-After", "1"),
                                                     ("Content-Length", str(len(body)))])
            return [body]
        try:
            import time as _t
            _t.sleep(0.05)  # the provider takes a moment
            return list(inner(environ, start_response))
        finally:
            gate.release()

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


@variant("every billing_mode the API answers is the account's (GET /v1/balance: \"user\", the default): a "
         "developer-billed chat's quota block says billing_mode \"user\" too, as the user-balance reads do",
         "public-facts lists billing_mode among the quota object's fields without saying whose mode it is; "
         "GET /v1/balance's billing_mode is the account's ('developer' or 'user'), and user-pays is the default")
def quota_billing_mode_is_accounts() -> Flask:
    def fix(chunk: dict[str, Any]) -> dict[str, Any]:
        if isinstance(chunk.get("quota"), dict) and chunk["quota"].get("billing_mode") == "developer":
            chunk["quota"]["billing_mode"] = "user"
        return chunk

    return chat_answers_rewritten(fix)


@variant("a stream carries usage and the quota block only when stream_options.include_usage asks for them (as "
         "OpenAI sends usage): without it, no chunk has a quota block",
         "public-facts: stream: true answers with server-sent events, OpenAI style; which chunk carries the quota "
         "block, and whether a stream does without include_usage, is openapi.yaml's choice")
def stream_quota_only_with_include_usage() -> Flask:
    local = threading.local()

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        options = body.get("stream_options") if isinstance(body, dict) else None
        local.asked = isinstance(options, dict) and options.get("include_usage") is True
        return False

    def after(ex: Exchange) -> None:
        if not chat_path(ex) or ex.status != 200 or not is_stream(ex) or getattr(local, "asked", False):
            return

        def strip(chunk: dict[str, Any]) -> dict[str, Any]:
            chunk.pop("quota", None)
            return chunk

        rewrite_events(ex, strip)

    return middleware(correct_app(), after, before)


@variant("the second API key is a restricted key (Stripe's rk_ style): it may grant and read balances, but "
         "GET /v1/me, the account owner's profile, answers it 403 forbidden in the envelope",
         "the docs say nothing of key scopes (public-facts: keys look like sk-quota-...; 401 is for a missing or "
         "invalid key, which a restricted key is not)")
def restricted_second_key() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.header("Authorization") == f"Bearer {KEY2}" and ex.path == "/v1/me":
            return ex.error(403, "forbidden", "This API key is restricted: it cannot read the account profile")
        return False

    return middleware(correct_app(), None, before)


GRANTS_IN_FLIGHT = 3


@variant(f"a store with {GRANTS_IN_FLIGHT} connections: a grant arriving while {GRANTS_IN_FLIGHT} are in flight "
         "answers 503 service_unavailable with Retry-After: 1, nothing applied",
         "openapi.yaml lists 503 service_unavailable with Retry-After on grants (the contract's own); the docs "
         "promise no availability")
def grants_pool_of_three() -> Flask:
    import time as _time

    app = correct_app()
    inner = app.wsgi_app
    lock = threading.Lock()
    busy = [0]

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if not (environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/v1/funding/grant"):
            return inner(environ, start_response)
        with lock:
            full = busy[0] >= GRANTS_IN_FLIGHT
            if not full:
                busy[0] += 1
        if full:
            body = json.dumps({"error": {"code": "service_unavailable", "message": "busy; retry"}}).encode()
            start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "1"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        try:
            _time.sleep(0.05)
            return list(inner(environ, start_response))
        finally:
            with lock:
                busy[0] -= 1

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app
