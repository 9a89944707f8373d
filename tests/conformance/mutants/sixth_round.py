"""Bugs a sixth adversary round tried: chats priced without some of their tokens (n > 1, tools,
streams without a usage chunk, max_completion_tokens), user lookups that differ between the chat
gateway and the ledger, idempotency records forgotten or kept at the wrong moment, an
idempotency cache in front of authentication, keys compared loosely on the chat routes only,
/v1/me's window and balance, and errors of rare paths."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import unicodedata
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from flask import Flask

from mockserver.domain.completions import complete, prompt_tokens
from mockserver.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused

from .kit import (
    GRANT,
    KEY,
    KEY2,
    Exchange,
    Rendezvous,
    billed_user,
    chat_path,
    correct_app,
    middleware,
    mutant,
    rewrite_events,
    service_of,
)

CHAT = "chat"
IDENTITY = "identity encoding"
REPLAY = "replay"
AUTH = "auth"
FACTS = "documented facts"
ERROR = "server error"
ENVELOPE = "non-JSON error"
USER_HEADER = "X-External-User-ID"


# -- chats priced without some of their tokens -------------------------------------------------


def _repriced(reprice: Any) -> Flask:
    """A correct app whose charge is priced from ``reprice(model, messages, max_tokens, options)``:
    None keeps the real price, else (prompt_tokens, completion_tokens) to price instead. The
    answer's usage stays the real one, and quota.credits_used is what was charged."""
    app = correct_app()
    service = service_of(app)
    store = service.store
    chat, charge = service.chat, store.apply_charge
    priced = threading.local()

    def chat_wrapper(user_id: Any, model: str, messages: Any, max_tokens: Any, options: Any = None) -> Any:
        priced.tokens = reprice(model, messages, max_tokens, options)
        priced.model = model
        try:
            return chat(user_id, model, messages, max_tokens, options)
        finally:
            priced.tokens = None

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        tokens = getattr(priced, "tokens", None)
        if tokens is not None:
            amount = service.seed.prices.cost(priced.model, *tokens)
        return charge(user_id, amount, *rest)

    service.chat = chat_wrapper  # type: ignore[method-assign]
    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(CHAT, "chat.user_debit",
        "a chat with n > 1 is priced from the first choice only (the billing code reads "
        "choices[0]'s token count): usage.completion_tokens counts every choice, quota.credits_used "
        "and the debit only the first")
def n_choices_billed_first_only() -> Flask:
    def reprice(model: str, messages: Any, max_tokens: Any, options: Any) -> Any:
        if options is None or options.n <= 1:
            return None
        done = complete(model, messages, max_tokens, options)
        return done.prompt_tokens, done.choices[0].completion_tokens

    return _repriced(reprice)


@mutant(CHAT, "chat.user_debit",
        "the prompt is priced from the messages alone: the tool definitions the model is shown "
        "(counted in usage.prompt_tokens) are never charged")
def tool_definitions_not_billed() -> Flask:
    def reprice(model: str, messages: Any, max_tokens: Any, options: Any) -> Any:
        if options is None or not options.tools:
            return None
        done = complete(model, messages, max_tokens, options)
        return prompt_tokens(messages), done.completion_tokens

    return _repriced(reprice)


@mutant(CHAT, "chat.insufficient",
        "the gateway prices a streamed chat from the provider's usage chunk, which OpenAI sends only "
        "with stream_options.include_usage: a stream without it is served free (credits_used 0, "
        "nothing debited)")
def stream_without_usage_free() -> Flask:
    app = correct_app()
    store = service_of(app).store
    charge = store.apply_charge
    free = threading.local()

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        free.on = (isinstance(body, dict) and body.get("stream") is True
                   and not (isinstance(body.get("stream_options"), dict)
                            and body["stream_options"].get("include_usage") is True))
        return False

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        return charge(user_id, 0 if getattr(free, "on", False) else amount, *rest)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, None, before)


@mutant(CHAT, "chat.stream_parity",
        "the gateway's request model predates OpenAI's max_completion_tokens: the field is dropped, so "
        "a chat limited with it runs to the default length and is charged for it (max_tokens works)")
def max_completion_tokens_ignored() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and "max_completion_tokens" in body:
            del body["max_completion_tokens"]
            ex.set_request_json(body)
        return False

    return middleware(correct_app(), None, before)


# -- who a chat bills --------------------------------------------------------------------------


@mutant(IDENTITY, "identity.case_sensitive",
        "the chat gateway looks the billed user up with WHERE lower(external_user_id) = lower(?) LIMIT 1 "
        "(the ledger compares exactly): when 'Ann' and 'ann' both exist, a chat for 'Ann' bills whichever "
        "was created first")
def chat_user_lookup_case_insensitive() -> Flask:
    app = correct_app()
    store = service_of(app).store

    def first_match(user: str) -> str:
        folded = user.lower()
        return next((u for u in store.users() if u.lower() == folded), user)

    def before(ex: Exchange) -> bool:
        user = billed_user(ex)
        if user is None:
            return False
        owner = first_match(user)
        if owner == user:
            return False
        in_path = ex.user_in_path()
        if in_path is not None:
            ex.path = "/v1/users/" + owner + "/chat/completions"
        else:
            ex.drop_header(USER_HEADER)
            ex.headers[USER_HEADER] = owner
        return False

    return middleware(app, None, before)


@mutant(IDENTITY, "chat.header_form",
        "X-External-User-ID is percent-decoded (the SDK of another team percent-encodes non-ASCII ids in "
        "headers): a user whose id holds '%41' is billed as the one holding 'A' instead, or 404")
def header_user_id_percent_decoded() -> Flask:
    def before(ex: Exchange) -> bool:
        header = ex.header(USER_HEADER) if chat_path(ex) else None
        if header is not None and unquote(header) != header:
            ex.drop_header(USER_HEADER)
            ex.headers[USER_HEADER] = unquote(header)
        return False

    return middleware(correct_app(), None, before)


@mutant(IDENTITY, "identity.roundtrip",
        "GET /v1/balance trims its query parameters (a framework's 'clean input' binding): the balance of "
        "'bob ' read by ?external_user_id= answers 'bob''s (the path form is exact)")
def query_ids_stripped() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method in ("GET", "HEAD") and ex.path == "/v1/balance" and ex.query:
            pairs = [(k, v.strip() if k == "external_user_id" else v) for k, v in parse_qsl(ex.query, True)]
            ex.query = urlencode(pairs, quote_via=quote)
        return False

    return middleware(correct_app(), None, before)


@mutant(IDENTITY, "identity.case_sensitive",
        "user ids NFKC-normalised everywhere (Django's normalize_username): full-width 'Ａnn' and 'Ann', "
        "'ﬁ' and 'fi', '²' and '2' are one account, and the grant echoes the normalised id")
def user_ids_nfkc_normalised() -> Flask:
    def norm(user: str) -> str:
        return unicodedata.normalize("NFKC", user)

    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        user = body.get("external_user_id") if isinstance(body, dict) else None
        if isinstance(user, str) and norm(user) != user:
            body["external_user_id"] = norm(user)  # type: ignore[index]
            ex.set_request_json(body)
        in_path = ex.user_in_path()
        if in_path is not None and norm(in_path) != in_path:
            ex.path = "/v1/users/" + norm(in_path) + ex.path[len("/v1/users/") + len(in_path):]
        if ex.path == "/v1/balance" and ex.query:
            pairs = [(k, norm(v) if k == "external_user_id" else v) for k, v in parse_qsl(ex.query, True)]
            ex.query = urlencode(pairs, quote_via=quote)
        header = ex.header(USER_HEADER)
        if header is not None and norm(header) != header:
            ex.drop_header(USER_HEADER)
            ex.headers[USER_HEADER] = norm(header)
        return False

    return middleware(correct_app(), None, before)


# -- idempotency records forgotten, or kept, at the wrong moment -------------------------------


@mutant(REPLAY, "idem.reuse_changed",
        "the error handler deletes the idempotency record of any request refused with a 4xx 'so the client "
        "can retry': a reused key refused 422 deletes the ORIGINAL grant's record, and the original "
        "request retried afterwards is credited a second time")
def reuse_refusal_forgets_key() -> Flask:
    app = correct_app()
    store = service_of(app).store
    claim = store.claim_idempotency_key

    def claim_idempotency_key(scope: str, key: str, fingerprint: bytes, now: float) -> Any:
        try:
            return claim(scope, key, fingerprint, now)
        except IdempotencyKeyReused:
            with store._lock:
                table = store._idempotency
                index = table._index(scope, key)
                if index is not None:
                    table._forget(index)
            raise

    store.claim_idempotency_key = claim_idempotency_key  # type: ignore[method-assign]
    return app


@mutant(REPLAY, "idem.reuse_changed",
        "the idempotency middleware stores every final answer, errors included: a grant refused 400 (a bad "
        "amount) keeps its key, and the corrected request retried with that key is answered the stored 400 "
        "(the contract: only a success is stored, after an error the key may be used again)")
def failed_grant_burns_key() -> Flask:
    stored: dict[tuple[str, str], tuple[int, bytes]] = {}
    lock = threading.Lock()

    def key_of(ex: Exchange) -> tuple[str, str] | None:
        key = ex.header("Idempotency-Key")
        return None if key is None else (ex.header("Authorization") or "", key)

    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and ex.path == GRANT and (key := key_of(ex)) is not None:
            with lock:
                hit = stored.get(key)
            if hit is not None:
                ex.status, ex.response = hit
                ex.response_headers = {"Content-Type": "application/json", "Idempotent-Replayed": "true"}
                return True
        return False

    def after(ex: Exchange) -> None:
        if ex.method == "POST" and ex.path == GRANT and ex.status in (400, 402) and (key := key_of(ex)):
            with lock:
                stored[key] = (ex.status, ex.response)

    return middleware(correct_app(), after, before)


def _slow_keyed_grants(app: Flask, hold: float, in_flight: Any) -> None:
    """Keyed grants claim the key, hold it (a slow commit), then apply; ``in_flight()`` is
    raised instead of the store's in-flight refusal. The commit takes ``hold`` seconds alone,
    and with other requests in flight lasts until a request refused as in flight meets it (up
    to Rendezvous' timeout): two grants sent together with one key then always overlap, however
    a loaded machine schedules their threads."""
    store = service_of(app).store
    original = store.grant
    commit = Rendezvous(app, grace=hold)

    def grant(request: Any, clock: Any) -> Any:
        key = request.idempotency_key
        if key is None:
            return original(request, clock)
        try:
            replayed = store.claim_idempotency_key(request.scope, key, request.fingerprint, clock.now())
        except IdempotencyKeyInFlight:
            commit.release()  # the holder goes on committing
            raise in_flight() from None
        if replayed is not None:
            return dataclasses.replace(replayed, duplicate=True)
        try:
            commit.meet()
            return store.apply_grant(request.user_id, request.amount, request.description, clock.now(),
                                     (request.scope, key))
        except BaseException:
            store.release_idempotency_key(request.scope, key)
            raise

    store.grant = grant  # type: ignore[method-assign]


@mutant(REPLAY, "errors.no_server_error",
        "the key is claimed by INSERT into a unique column, and commits take ~50 ms: a second request with "
        "the key while the first commits hits the unique violation, answered 500 internal_error (nothing "
        "applied) instead of a replay or 409")
def concurrent_same_key_500() -> Flask:
    app = correct_app()
    _slow_keyed_grants(app, 0.05, lambda: RuntimeError("duplicate key value violates unique constraint"))
    return app


@mutant(ENVELOPE, "errors.envelope",
        "commits take ~50 ms, and the 409 for a key still in flight comes from the lock library's own handler: "
        "{\"error\": \"idempotency_key_in_flight\"} without the envelope (every other error is right)")
def in_flight_409_flat_error() -> Flask:
    app = correct_app()
    _slow_keyed_grants(app, 0.05, IdempotencyKeyInFlight)

    def after(ex: Exchange) -> None:
        if ex.path == GRANT and ex.status == 409:
            ex.set_json({"error": "idempotency_key_in_flight"})

    return middleware(app, after)


@mutant(AUTH, "auth.missing_key",
        "the idempotency cache sits in front of authentication and is keyed by Idempotency-Key and body: "
        "the same grant request sent without a key, or with any key, is answered the stored grant "
        "(200, its user, balance and ledger id)")
def idem_cache_before_auth() -> Flask:
    stored: dict[tuple[str, str], bytes] = {}
    lock = threading.Lock()

    def key_of(ex: Exchange) -> tuple[str, str] | None:
        key = ex.header("Idempotency-Key")
        return None if key is None else (key, hashlib.sha256(ex.body).hexdigest())

    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and ex.path == GRANT and (key := key_of(ex)) is not None:
            with lock:
                hit = stored.get(key)
            if hit is not None:
                body = json.loads(hit)
                body["duplicate"] = True
                ex.set_json(body, 200)
                ex.response_headers["Idempotent-Replayed"] = "true"
                return True
        return False

    def after(ex: Exchange) -> None:
        if ex.method == "POST" and ex.path == GRANT and ex.status == 200 and (key := key_of(ex)):
            with lock:
                stored.setdefault(key, ex.response)

    return middleware(correct_app(), after, before)


@mutant(AUTH, "auth.near_miss_key",
        "the chat gateway caches keys by their first 20 characters (the display prefix) and never re-checks "
        "the rest: on the chat routes a key with its last characters changed is accepted and bills the "
        "account (the funding routes compare exactly)")
def chat_keys_matched_on_prefix() -> Flask:
    def before(ex: Exchange) -> bool:
        if not chat_path(ex):
            return False
        value = ex.header("Authorization") or ""
        if not value.startswith("Bearer "):
            return False
        token = value[len("Bearer "):]
        if token in (KEY, KEY2):
            return False
        for real in (KEY, KEY2):
            if len(token) >= 20 and token[:20] == real[:20]:
                ex.drop_header("Authorization")
                ex.headers["Authorization"] = "Bearer " + real
                break
        return False

    return middleware(correct_app(), None, before)


@mutant(ERROR, "errors.no_server_error",
        "Idempotency-Keys are stored in a VARCHAR(255) and their length is never validated: a longer key "
        "fails the insert, answered 500 internal_error (the contract: 400 bad_request)")
def long_idem_key_500() -> Flask:
    def before(ex: Exchange) -> bool:
        key = ex.header("Idempotency-Key") if ex.method == "POST" and ex.path == GRANT else None
        if key is not None and len(key) > 255:
            return ex.error(500, "internal_error", "value too long for type character varying(255)")
        return False

    return middleware(correct_app(), None, before)


# -- /v1/me --------------------------------------------------------------------------------------


@mutant(FACTS, "me.usage",
        "the usage window starts 31 days back (since = today - 30 days at midnight, minus a day for "
        "'inclusive'): window_days says 30, since..until spans 31 days")
def me_window_31_days() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json if ex.method == "GET" and ex.path == "/v1/me" and ex.status == 200 else None
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("until"), str):
            until = datetime.fromisoformat(usage["until"].replace("Z", "+00:00"))
            usage["since"] = (until - timedelta(days=31)).isoformat().replace("+00:00", "Z")
            ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(FACTS, "me.usage",
        "GET /v1/me's balance comes from the session's account row, cached for 5 minutes: after grants and "
        "chats it still shows the developer balance of the first read (GET /v1/balance is fresh)")
def me_balance_cached() -> Flask:
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def after(ex: Exchange) -> None:
        body = ex.json if ex.method == "GET" and ex.path == "/v1/me" and ex.status == 200 else None
        if not isinstance(body, dict):
            return
        with lock:
            if not cache or time.monotonic() - cache["at"] > 300:
                cache.update(at=time.monotonic(), balance=body.get("balance"),
                             micros=body.get("balance_microdollars"))
            body["balance"], body["balance_microdollars"] = cache["balance"], cache["micros"]
        ex.set_json(body)

    return middleware(correct_app(), after)


# -- money, streams and models ---------------------------------------------------------------------


@mutant("float money", "grant.readback",
        "balance reads convert the stored NUMERIC dollars through a float for balance_microdollars: "
        "int(dollars * 1_000_000) is a micro-dollar short for about 1.4% of balances ($2.01 reads 2009999; "
        "$0.000249 reads 248); the display form and every write are exact")
def balance_micros_via_float() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.method != "GET" or ex.status != 200 or not (ex.path == "/v1/balance" or ex.path.endswith("/balance")):
            return
        body = ex.json
        if isinstance(body, dict) and isinstance(body.get("balance_microdollars"), int):
            body["balance_microdollars"] = int(body["balance_microdollars"] / 1e6 * 1e6)
            ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.stream_parity",
        "the SSE relay takes the first event after the role chunk for the provider's keep-alive and drops it: "
        "a streamed answer lacks its first piece of text (usage and charge are right)")
def stream_drops_first_piece() -> Flask:
    def after(ex: Exchange) -> None:
        streamed = "text/event-stream" in ex.response_headers.get("Content-Type", "")
        if not (chat_path(ex) and ex.status == 200 and streamed):
            return
        dropped: list[bool] = []

        def change(chunk: dict[str, Any]) -> dict[str, Any] | None:
            choices = chunk.get("choices") or []
            delta = choices[0].get("delta") if choices else None
            if not dropped and isinstance(delta, dict) and delta.get("content"):
                dropped.append(True)
                return None
            return chunk

        rewrite_events(ex, change)

    return middleware(correct_app(), after)


@mutant(ERROR, "errors.no_server_error",
        "the price table is a dict indexed with the request's model: a model the gateway has no price for raises "
        "KeyError, 500 internal_error (after the provider answered), instead of a 400/404 about the model")
def unknown_model_crashes() -> Flask:
    known = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-3.5-turbo")

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] not in known:
            return ex.error(500, "internal_error", "KeyError")
        return False

    return middleware(correct_app(), None, before)


@mutant(AUTH, "auth.other_forms",
        "the auth middleware lets every OPTIONS through (for CORS preflights), and the hand-rolled router serves "
        "OPTIONS on a read route with its GET handler: OPTIONS /v1/me or /v1/users/{id}/balance without a key "
        "answers the data")
def options_skips_auth() -> Flask:
    app = correct_app()
    client = app.test_client()

    def before(ex: Exchange) -> bool:
        if ex.method != "OPTIONS" or not (ex.path in ("/v1/me", "/v1/balance") or ex.path.endswith("/balance")):
            return False
        got = client.get(quote(ex.path), query_string=ex.query, headers={"Authorization": "Bearer " + KEY})
        ex.status, ex.response = got.status_code, got.get_data()
        ex.response_headers = {"Content-Type": got.headers.get("Content-Type", "application/json")}
        return True

    return middleware(app, None, before)
