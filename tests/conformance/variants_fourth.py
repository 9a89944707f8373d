"""Correct deployments a fourth adversary round found the suite failing (the false failures it
found; see variants.py for what a variant is). Each differs from the mock only where the
vendor's docs are silent, and says why in its second argument.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from .mutants.kit import (
    GRANT,
    KEY,
    KEY2,
    Exchange,
    chat_answers_rewritten,
    chat_path,
    correct_app,
    middleware,
    service_of,
)
from .variants import _bad_request, variant

ME_CACHE_SECONDS = 300.0


@variant(f"GET /v1/me's 30-day usage summary is served from a cache refreshed every {ME_CACHE_SECONDS:g} s "
         "(an analytics roll-up), so it lags the ledger",
         "seed: GET /v1/me returns the authenticated user with a 30-day usage summary; the docs never say the "
         "summary is real-time, and public-facts lists /v1/me's shape as undocumented")
def me_usage_cached() -> Flask:
    cache: dict[str, tuple[float, int, bytes, dict[str, str]]] = {}
    lock = threading.Lock()

    def before(ex: Exchange) -> bool:
        if ex.method != "GET" or ex.path != "/v1/me":
            return False
        with lock:
            hit = cache.get(ex.header("Authorization") or "")
        if hit is not None and time.monotonic() - hit[0] < ME_CACHE_SECONDS:
            ex.status, ex.response, ex.response_headers = hit[1], hit[2], dict(hit[3])
            return True
        return False

    def after(ex: Exchange) -> None:
        if ex.method == "GET" and ex.path == "/v1/me" and ex.status == 200:
            with lock:
                cache[ex.header("Authorization") or ""] = (time.monotonic(), ex.status, ex.response,
                                                           dict(ex.response_headers))

    return middleware(correct_app(), after, before)


@variant("user ids holding '/' cannot be addressed: a grant naming one answers 400 bad_request, and a path whose "
         "id segment decodes to one answers 404 not_found (the router, as behind Apache or a path-normalising proxy)",
         "the docs say external_user_id is a string (example user_123); openapi.yaml lets a deployment refuse ids "
         "outside x-quota-plain-pattern, and such an id names no user the deployment can hold")
def slash_ids_unroutable() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and isinstance(body.get("external_user_id"), str) and "/" in body["external_user_id"]:
            return _bad_request(ex, "external_user_id may not contain '/'")
        user = ex.user_in_path()
        if user is not None and "/" in user:  # PATH_INFO is decoded once already
            return ex.error(404, "not_found", f"No route for {ex.method} {ex.path}")
        return False

    return middleware(correct_app(), None, before)


@variant("user ids are Unicode-normalised (NFC) on the way in, everywhere, and answered in that form",
         "the docs say only that external_user_id is a string; identity.case_sensitive itself calls composed and "
         "decomposed letters being different users 'the contract's reading'")
def nfc_user_ids() -> Flask:
    import unicodedata
    from urllib.parse import quote, urlencode

    nfc = lambda s: unicodedata.normalize("NFC", s)  # noqa: E731

    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and isinstance(body.get("external_user_id"), str) \
                and nfc(body["external_user_id"]) != body["external_user_id"]:
            body["external_user_id"] = nfc(body["external_user_id"])
            ex.set_request_json(body)
        user = ex.user_in_path()
        if user is not None:
            ex.path = ex.path.replace(user, nfc(user), 1)
        if ex.query:
            pairs = parse_qsl(ex.query, True)
            ex.query = urlencode([(k, nfc(v) if k == "external_user_id" else v) for k, v in pairs], quote_via=quote)
        header = ex.header("X-External-User-ID")
        if header is not None:
            ex.drop_header("X-External-User-ID")
            ex.headers["X-External-User-Id"] = nfc(header)
        return False

    return middleware(correct_app(), None, before)


@variant("the key is also accepted without its scheme (Authorization: sk-quota-...), as servers that strip an "
         "optional 'Bearer ' do; every wrong or missing key is still 401 invalid_api_key",
         "seed: 401 invalid_api_key 'Missing or invalid API key' - a bare valid key is neither missing nor invalid; "
         "the docs say how clients send the key, not that other spellings of a valid key are refused")
def bare_key_accepted() -> Flask:
    def before(ex: Exchange) -> bool:
        value = ex.header("Authorization")
        if value is not None and value.strip() in (KEY, KEY2):
            ex.drop_header("Authorization")
            ex.headers["Authorization"] = f"Bearer {value.strip()}"
        return False

    return middleware(correct_app(), None, before)


@variant("the app's gateway routes only gpt-4o-mini, the model openapi.yaml's examples show: any other model "
         "answers 400 bad_request \"The model `gpt-4o` does not exist or you do not have access to it\"",
         "the docs name no model; openapi.yaml's x-quota-plain-pattern for model is '^gpt-4o-mini$' and says a "
         "gateway refuses a name it cannot route; per-app model allow-lists are common")
def only_documented_model() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return _bad_request(ex, f"The model `{body['model']}` does not exist or you do not have access to it")
        return False

    return middleware(correct_app(), None, before)


def _quota_in_dollars(chunk: dict[str, Any]) -> dict[str, Any]:
    quota = chunk.get("quota")
    if isinstance(quota, dict) and isinstance(quota.get("credits_used"), int):
        quota["credits_used"] = float(Decimal(quota["credits_used"]) / 1_000_000)
    return chunk


@variant("quota.credits_used is the chat's cost as a dollar number (0.000036), the unit of the seed's 'amount' "
         "field, not micro-dollars",
         "public-facts lists credits_used without a unit; openapi.yaml marks its micro-dollar unit (and integer type) "
         "as the contract's own choice")
def credits_used_in_dollars() -> Flask:
    return chat_answers_rewritten(_quota_in_dollars)


@variant("Stripe's statuses for idempotency errors: a key reused with another body answers 400 (Stripe's "
         "idempotency_error status) with the contract's code idempotency_key_reused",
         "public-facts: what happens when one key comes back with a different body is undocumented, and the contract "
         "says it follows Stripe, which answers 400; the seed's table names 400 bad_request for missing fields only")
def reused_key_400_stripe() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 422 and ex.error_code == "idempotency_key_reused":
            ex.status = 400

    return middleware(correct_app(), after)


@variant("GET /v1/balance?external_user_id= answers the user's balance in the developer balance's own shape, less "
         "the account fields: {balance, balance_microdollars, billing_mode} (no external_user_id echo)",
         "seed: 'When external_user_id is provided, it returns that user's balance instead' - the shape of that answer "
         "is not shown anywhere; public-facts' only /v1/balance example is the developer's")
def query_balance_developer_shape() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path == "/v1/balance" and "external_user_id" in ex.query and ex.status == 200 \
                and isinstance(ex.json, dict):
            body = ex.json
            ex.set_json({k: body[k] for k in ("balance", "balance_microdollars", "billing_mode") if k in body})

    return middleware(correct_app(), after)


@variant("GET /v1/me's usage summary is the authenticated developer's own usage: the chats billed to the developer "
         "(and the grants the developer made), not the chats the app's users paid for from their own balances",
         "seed: GET /v1/me returns the authenticated user with a 30-day usage summary - whose usage is not said; "
         "the authenticated user is the developer, and user-billed chats are paid by the users")
def me_usage_developer_billed_only() -> Flask:
    return developer_usage_app(lambda everyone, own: own)


def developer_usage_app(summary: Callable[[Any, Any], Any]) -> Flask:
    """The correct app whose /v1/me usage is ``summary(everyone's usage, the developer's own)``:
    the developer's own counts grants and developer-billed chats, not chats users paid for."""
    from mockserver.domain.records import CHARGE
    from mockserver.domain.usage import USAGE_WINDOW_SECONDS, Overview, summarize

    app = correct_app()
    store = service_of(app).store
    original = store.overview

    def overview(clock: Any) -> Any:
        seen = original(clock)
        until = seen.usage.until
        since = until - USAGE_WINDOW_SECONDS
        own = summarize([e for e in store.ledger(since) if e.kind != CHARGE or e.user_id is None], since, until)
        return Overview(seen.pool, summary(seen.usage, own))

    store.overview = overview  # type: ignore[method-assign]
    return app


@variant("GET /v1/balance?external_user_id= for an unknown user answers 404 with the generic code not_found "
         "(\"No such user\"); GET /v1/users/:id/balance keeps the seed's user_not_found",
         "the seed's error table gives 404 user_not_found for GET /v1/users/:id/balance only; what the query form "
         "answers for an unknown user is not documented")
def query_unknown_user_not_found_code() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path == "/v1/balance" and ex.status == 404 and ex.error_code == "user_not_found":
            ex.set_json({"error": {"code": "not_found", "message": "No such user"}}, 404)

    return middleware(correct_app(), after)
