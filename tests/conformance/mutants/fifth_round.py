"""Bugs a fifth adversary round tried: thresholds past the run's budget, replays that touch state,
chats naming users in both places, chats for awkward ids, quota blocks of the developer and of
header streams, holds and minimum charges, refusals that leave a flag, races between users."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from flask import Flask

from mockserver.domain.money import format_money

from .kit import (
    GRANT,
    Exchange,
    add_to_balance,
    billed_user,
    chat_path,
    correct_app,
    edit_events,
    is_stream,
    middleware,
    mutant,
    service_of,
    write_balance,
)

MONEY = "float money"
REPLAY = "replay"
CHAT = "chat"
IDENTITY = "identity encoding"
RACE = "lost update"
STALE = "stale read"
USER_HEADER = "X-External-User-ID"


def _quota_of(ex: Exchange) -> dict[str, Any] | None:
    """The quota block of a chat answer (JSON, or a stream's last one)."""
    if is_stream(ex):
        found: list[dict[str, Any]] = []

        def grab(chunk: dict[str, Any]) -> None:
            if isinstance(chunk.get("quota"), dict):
                found.append(chunk["quota"])

        saved = ex.response
        edit_events(ex, grab)
        ex.response = saved
        return found[-1] if found else None
    body = ex.json
    return body.get("quota") if isinstance(body, dict) and isinstance(body.get("quota"), dict) else None


# -- money past the run's budget ---------------------------------------------------------------


def _through_float32(micros: int) -> int:
    single = struct.unpack("f", struct.pack("f", micros / 1_000_000))[0]
    return int(single * 1_000_000)


@mutant(MONEY, "grant.arithmetic",
        "grants of $10 or more take the 'bulk' code path, which stores the amount in a float32 column "
        "(REAL) before converting to micro-dollars: $10.03 credits 10029999 micro-dollars and answers "
        "amount_granted $10.02; amounts under $10 are exact")
def large_grants_float32() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.grant

    def grant(**kwargs: Any) -> Any:
        if kwargs["amount"] >= 10_000_000:
            kwargs["amount"] = _through_float32(kwargs["amount"])
        return original(**kwargs)

    service.grant = grant  # type: ignore[method-assign]
    return app


@mutant(MONEY, "grant.readback",
        "grants of $100 or more are held for manual review: the answer is 200 with the balance_after the "
        "grant would leave, but neither the user nor the pool moves (the review queue never credits)")
def large_grants_held_for_review() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        if amount < 100_000_000:
            return original(user_id, amount, description, now, completes)
        before = store.user_balance(user_id) or 0
        result = original(user_id, amount, description, now, completes)
        write_balance(service, user_id, before)
        add_to_balance(service, None, amount)
        return result

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    return app


# -- replays that touch state ------------------------------------------------------------------


@mutant(REPLAY, "idem.replay",
        "a replay writes the stored answer's balance_after back to the user (an upsert of the cached "
        "row): a retry of an earlier grant rolls the user's balance back, losing every grant and chat since")
def replay_restores_stored_balance() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.grant

    def grant(request: Any, clock: Any) -> Any:
        result = original(request, clock)
        if result.duplicate and store.user_balance(result.external_user_id) != result.balance_after:
            write_balance(service, result.external_user_id, result.balance_after)
        return result

    store.grant = grant  # type: ignore[method-assign]
    return app


@mutant(REPLAY, "idem.concurrent_same",
        "the idempotency record is read with GETDEL (a one-shot cache): the first replay answers the original "
        "with duplicate: true, and removes the key, so a third request with the key credits again")
def replay_consumes_key() -> Flask:
    consumed: set[tuple[str, str]] = set()
    lock = threading.Lock()
    counter = iter(range(10**9))

    def key_of(ex: Exchange) -> tuple[str, str] | None:
        key = ex.header("Idempotency-Key")
        return None if key is None else (ex.header("Authorization") or "", key)

    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and ex.path == GRANT and (key := key_of(ex)) is not None:
            with lock:
                if key in consumed:
                    consumed.discard(key)
                    ex.drop_header("Idempotency-Key")
                    ex.headers["Idempotency-Key"] = f"{key[1]}#{next(counter)}"
        return False

    def after(ex: Exchange) -> None:
        if ex.method == "POST" and ex.path == GRANT and ex.status == 200 and isinstance(ex.json, dict):
            key = key_of(ex)
            if key is not None and ex.json.get("duplicate") is True:
                with lock:
                    consumed.add((key[0], key[1].split("#")[0]))

    return middleware(correct_app(), after, before)


# -- chats -------------------------------------------------------------------------------------


@mutant(CHAT, "chat.user_debit",
        "a chat on /v1/users/{id}/chat/completions that also carries X-External-User-ID is charged twice to the "
        "path's user: the billing middleware charges 'the request's user' (the path wins, correctly) and the "
        "route charges again; the quota block shows one charge")
def path_and_header_bills_twice() -> Flask:
    app = correct_app()
    store = service_of(app).store
    original = store.apply_charge
    flag = threading.local()

    def before(ex: Exchange) -> bool:
        flag.on = chat_path(ex) and ex.user_in_path() is not None and ex.header(USER_HEADER) is not None
        return False

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        result = original(user_id, amount, *rest)
        if getattr(flag, "on", False) and user_id is not None:
            with contextlib.suppress(Exception):  # a second charge the balance cannot take is skipped
                original(user_id, amount, *rest)
        return result

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, None, before)


@mutant(CHAT, "chat.developer_billing",
        "a developer-billed chat's quota block is built from the (absent) user's balance: balance_before and "
        "balance_after read \"$0.00\" while the developer balance is charged correctly")
def developer_chat_quota_zero() -> Flask:
    def zero(quota: dict[str, Any]) -> None:
        quota["balance_before"] = quota["balance_after"] = "$0.00"

    def after(ex: Exchange) -> None:
        if not (chat_path(ex) and ex.status == 200 and ex.user_in_path() is None and ex.header(USER_HEADER) is None):
            return
        if is_stream(ex):
            edit_events(ex, lambda c: zero(c["quota"]) if isinstance(c.get("quota"), dict) else None)
        elif isinstance(ex.json, dict) and isinstance(ex.json.get("quota"), dict):
            body = ex.json
            zero(body["quota"])
            ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.header_form",
        "the streaming handler builds the quota block from the account, not the billed user, when the user came "
        "from X-External-User-ID: the last chunk says billing_mode \"developer\" and the developer balance "
        "before/after (the user is charged correctly)")
def header_stream_quota_developer() -> Flask:
    app = correct_app()
    store = service_of(app).store

    def change(chunk: dict[str, Any]) -> None:
        quota = chunk.get("quota")
        if isinstance(quota, dict):
            pool = format_money(store.pool_balance())
            quota.update(billing_mode="developer", balance_before=pool, balance_after=pool)

    def after(ex: Exchange) -> None:
        if (chat_path(ex) and ex.status == 200 and ex.user_in_path() is None and ex.header(USER_HEADER)
                and is_stream(ex)):
            edit_events(ex, change)

    return middleware(app, after)


@mutant(CHAT, "identity.roundtrip",
        "a fixed pre-authorisation of $0.02 per chat: a user holding less than two cents is refused 402 "
        "insufficient_balance whatever the chat costs (a $0.015 balance cannot buy a $0.0001 chat)")
def preauth_hold_two_cents() -> Flask:
    app = correct_app()
    store = service_of(app).store

    def before(ex: Exchange) -> bool:
        user = billed_user(ex)
        if user is None:
            return False
        held = store.user_balance(user)
        if held is not None and held < 20_000:
            return ex.error(402, "insufficient_balance", "Insufficient balance: a chat needs $0.02 available")
        return False

    return middleware(app, None, before)


@mutant(CHAT, "chat.stream_parity",
        "chat costs rounded up to whole cents (the billing service's currency is cents): a $0.0003 chat costs "
        "$0.01, and quota.credits_used says 10000 (consistently)")
def chat_cost_rounded_up_to_cent() -> Flask:
    app = correct_app()
    store = service_of(app).store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        return original(user_id, -(-amount // 10_000) * 10_000, *rest)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


@mutant(CHAT, "chat.user_debit",
        "the developer markup is applied twice (once by the pricing service, once by the billing step): "
        "base_cost * 1.1 * 1.1, consistently reported as credits_used")
def markup_applied_twice() -> Flask:
    app = correct_app()
    service = service_of(app)
    prices = service.seed.prices
    m = prices.markup_percent
    doubled = dataclasses.replace(prices, markup_percent=(100 + m) * (100 + m) // 100 - 100)
    service.seed = dataclasses.replace(service.seed, prices=doubled)
    return app


@mutant(CHAT, "chat.insufficient",
        "after a 402 the gateway books a 'refund' for the refused request; it is netted against the user's next "
        "served chat, which is therefore free (the quota block still reports its cost)")
def chat_after_refusal_free() -> Flask:
    app = correct_app()
    service = service_of(app)
    owed: set[str] = set()
    lock = threading.Lock()

    def after(ex: Exchange) -> None:
        user = billed_user(ex)
        if user is None:
            return
        if ex.status == 402:
            with lock:
                owed.add(user)
            return
        if ex.status != 200:
            return
        with lock:
            if user not in owed:
                return
            owed.discard(user)
        quota = _quota_of(ex)
        cost = quota.get("credits_used") if quota else None
        if isinstance(cost, int):
            add_to_balance(service, user, cost)

    return middleware(app, after)


@mutant(STALE, "chat.user_debit",
        "GET /v1/users/{id}/balance is cached for one second and only grants invalidate it: for a second after a "
        "chat the path form shows the balance before the chat (the query form is fresh)")
def user_balance_stale_after_chat() -> Flask:
    stale: dict[str, tuple[float, int]] = {}
    lock = threading.Lock()

    def after(ex: Exchange) -> None:
        user = billed_user(ex)
        if user is not None and ex.status == 200:
            quota = _quota_of(ex)
            cost = quota.get("credits_used") if quota else None
            if isinstance(cost, int):
                with lock:
                    _, earlier = stale.get(user, (0.0, 0))
                    stale[user] = (time.monotonic() + 1.0, earlier + cost)
            return
        if ex.method == "POST" and ex.path == GRANT and ex.status == 200 and isinstance(ex.json, dict):
            with lock:
                stale.pop(ex.json.get("external_user_id"), None)
            return
        if ex.method == "GET" and ex.path.endswith("/balance") and ex.status == 200:
            user = ex.user_in_path()
            with lock:
                until, cost = stale.get(user, (0.0, 0)) if user else (0.0, 0)
                if until < time.monotonic():
                    stale.pop(user, None)
                    return
            body = ex.json
            micros = body.get("balance_microdollars")
            if isinstance(micros, int):
                body["balance_microdollars"] = micros + cost
                body["balance"] = format_money(micros + cost)
                ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.user_debit",
        "GET /v1/balance (the developer balance) subtracts the hold of the last user chat, which is never "
        "released: after a user's chat the developer balance reads lower by that chat's cost")
def developer_balance_minus_last_hold() -> Flask:
    last = {"hold": 0}

    def after(ex: Exchange) -> None:
        user = billed_user(ex)
        if user is not None and ex.status == 200:
            quota = _quota_of(ex)
            if quota and isinstance(quota.get("credits_used"), int):
                last["hold"] = quota["credits_used"]
            return
        if ex.method == "GET" and ex.path == "/v1/balance" and "external_user_id" not in ex.query \
                and ex.status == 200 and last["hold"]:
            body = ex.json
            micros = body.get("balance_microdollars")
            if isinstance(micros, int):
                body["balance_microdollars"] = micros - last["hold"]
                body["balance"] = format_money(micros - last["hold"])
                ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.user_debit",
        "the chat handler looks the billed user up on a read replica that lags a second: a user granted less "
        "than a second ago chats into 404 user_not_found (balance reads are served by the primary)")
def chat_lookup_replica_lag() -> Flask:
    born: dict[str, float] = {}
    lock = threading.Lock()

    def before(ex: Exchange) -> bool:
        user = billed_user(ex)
        if user is not None:
            with lock:
                at = born.get(user)
            if at is not None and time.monotonic() - at < 1.0:
                return ex.error(404, "user_not_found", "User not found")
        return False

    def after(ex: Exchange) -> None:
        if ex.method == "POST" and ex.path == GRANT and ex.status == 200 and isinstance(ex.json, dict):
            body = ex.json
            if body.get("balance_before") == "$0.00" and body.get("duplicate") is False:
                with lock:
                    born.setdefault(body.get("external_user_id"), time.monotonic())

    return middleware(correct_app(), after, before)


# -- identity ----------------------------------------------------------------------------------


@mutant(IDENTITY, "identity.roundtrip",
        "the chat routes are served by the LLM gateway, which matches the raw path and never percent-decodes "
        "it: POST /v1/users/ann%20lee/chat/completions looks up 'ann%20lee' and answers 404 (the balance "
        "routes decode correctly)")
def chat_path_ids_not_decoded() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path() if chat_path(ex) else None
        if user is not None:
            raw = quote(user, safe="")
            if raw != user:
                ex.path = "/v1/users/" + raw + "/chat/completions"
        return False

    return middleware(correct_app(), None, before)


@mutant(IDENTITY, "identity.roundtrip",
        "GET /v1/balance parses external_user_id as a comma-separated list (the framework's array binding) and "
        "keeps the first item: the balance of 'ann,lee' answers as 'ann' (404); the path form is right")
def query_ids_split_on_comma() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method in ("GET", "HEAD") and ex.path == "/v1/balance" and ex.query:
            pairs = [(k, v.split(",")[0] if k == "external_user_id" else v) for k, v in parse_qsl(ex.query, True)]
            ex.query = urlencode(pairs, quote_via=quote)
        return False

    return middleware(correct_app(), None, before)


# -- races -------------------------------------------------------------------------------------

# billed_user_global_race's provider, answering a chat alone.
PROVIDER_ANSWER_SECONDS = 0.15
# How long a grant in flight with others waits for a fourth (fourth_concurrent_grant_lost).
HOLD_SECONDS = 1.0


@mutant(RACE, "chat.concurrent_users",
        "the billed user is kept in a module-level variable set when a chat arrives and read when the provider "
        "answers: two chats for different users in flight together are both charged to the later one")
def billed_user_global_race() -> Flask:
    app = correct_app()
    store = service_of(app).store
    original = store.apply_charge
    current: dict[str, Any] = {"user": None}
    # The provider's answer takes PROVIDER_ANSWER_SECONDS, or until a second chat arrives: two
    # chats sent together then always overlap, however a loaded machine schedules their threads.
    changed = threading.Condition()
    chats = {"in_flight": 0}

    def before(ex: Exchange) -> bool:
        user = billed_user(ex)
        if user is not None:
            with changed:
                current["user"] = user
                chats["in_flight"] += 1
                changed.notify_all()
        return False

    def after(ex: Exchange) -> None:
        if billed_user(ex) is not None:
            with changed:
                chats["in_flight"] -= 1

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        if user_id is not None:
            with changed:
                changed.wait_for(lambda: chats["in_flight"] >= 2, timeout=PROVIDER_ANSWER_SECONDS)
            user_id = current["user"] or user_id
        return original(user_id, amount, *rest)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, after, before)


@mutant(RACE, "idem.concurrent_distinct",
        "a pool of three database connections; a grant arriving while three are busy takes the fallback path "
        "without a transaction (read, wait, write read + amount): with four or more grants to one user in "
        "flight, one credit is lost; three at once are fine")
def fourth_concurrent_grant_lost() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant
    # Timing made deterministic, as Rendezvous does for two: a grant with others in flight holds
    # its connection until the fourth arrives (up to HOLD_SECONDS), and until that one has read
    # the balance; alone, it takes one round trip. A burst of four then always overflows the
    # pool, however a loaded machine schedules the requests' threads.
    changed = threading.Condition()
    state = {"busy": 0, "reads": 0}
    overflow = threading.local()

    def before(ex: Exchange) -> bool:
        overflow.on = False
        if ex.method == "POST" and ex.path == GRANT:
            with changed:
                state["busy"] += 1
                overflow.on = state["busy"] > 3
                overflow.reads = state["reads"]  # at arrival: before any later grant's read
                changed.notify_all()
        return False

    def after(ex: Exchange) -> None:
        if ex.method == "POST" and ex.path == GRANT:
            with changed:
                state["busy"] -= 1
                changed.notify_all()

    def wait_for(ready: Any, seconds: float) -> None:
        with changed:
            changed.wait_for(ready, timeout=seconds)

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        if getattr(overflow, "on", False):
            read = store.user_balance(user_id) or 0
            with changed:
                state["reads"] += 1
                changed.notify_all()
            time.sleep(0.2)
            result = original(user_id, amount, description, now, completes)
            write_balance(service, user_id, read + amount)
            return result
        reads = getattr(overflow, "reads", 0)
        if state["busy"] >= 2:
            wait_for(lambda: state["busy"] > 3 or state["busy"] < 2, HOLD_SECONDS)
            if state["busy"] > 3:
                wait_for(lambda: state["reads"] > reads, HOLD_SECONDS)
        time.sleep(0.05)  # the database's round trip
        return original(user_id, amount, description, now, completes)

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    app = middleware(app, after, before)
    return app


# -- more --------------------------------------------------------------------------------------


@mutant(CHAT, "chat.insufficient",
        "on POST /v1/chat/completions with X-External-User-ID, a user whose balance cannot cover the chat falls "
        "back to developer billing (the header path catches insufficient_balance and retries without a user): "
        "served, billed to the developer, never 402 (the user path answers 402)")
def header_insufficient_bills_developer() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.chat

    def chat(user_id: Any, *rest: Any, **kwargs: Any) -> Any:
        try:
            return original(user_id, *rest, **kwargs)
        except Exception as exc:
            refused = getattr(exc, "code", None) == "insufficient_balance"
            if user_id is not None and getattr(flag, "on", False) and refused:
                return original(None, *rest, **kwargs)
            raise

    flag = threading.local()

    def before(ex: Exchange) -> bool:
        flag.on = chat_path(ex) and ex.user_in_path() is None and ex.header(USER_HEADER) is not None
        return False

    service.chat = chat  # type: ignore[method-assign]
    return middleware(app, None, before)


@mutant(CHAT, "auth.second_key",
        "a key scope table migrated for the 'funding' scopes only: the account's second API key may grant and "
        "read the developer balance, but answers 401 invalid_api_key on user balance reads, chats and /v1/me")
def second_key_grant_only() -> Flask:
    from .kit import KEY2

    def before(ex: Exchange) -> bool:
        if ex.header("Authorization") == f"Bearer {KEY2}" and not (
                (ex.method == "POST" and ex.path == GRANT) or (ex.path == "/v1/balance" and not ex.query)):
            return ex.error(401, "invalid_api_key", "Invalid API key")
        return False

    return middleware(correct_app(), None, before)


@mutant(CHAT, "chat.developer_billing",
        "the streaming handler debits only when a user is named: a developer-billed chat with stream: true is "
        "served and its last chunk reports credits_used, but the developer balance never moves (JSON chats are "
        "billed)")
def developer_streams_free() -> Flask:
    app = correct_app()
    service = service_of(app)
    streaming = threading.local()

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        streaming.on = isinstance(body, dict) and body.get("stream") is True and billed_user(ex) is None
        return False

    def after(ex: Exchange) -> None:
        if getattr(streaming, "on", False) and ex.status == 200 and is_stream(ex):
            quota = _quota_of(ex)
            if quota and isinstance(quota.get("credits_used"), int):
                add_to_balance(service, None, quota["credits_used"])

    return middleware(app, after, before)


@mutant(CHAT, "me.usage",
        "header-form chats are logged twice in the usage summary (by the user-resolving middleware and by the "
        "chat handler): GET /v1/me counts two requests, double tokens and double spend for each; path-form "
        "chats count once")
def me_counts_header_chats_twice() -> Flask:
    totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "spend_microdollars": 0}
    lock = threading.Lock()

    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and ex.user_in_path() is None and ex.header(USER_HEADER):
            quota = _quota_of(ex)
            usage = ex.json.get("usage") if not is_stream(ex) and isinstance(ex.json, dict) else None
            with lock:
                totals["requests"] += 1
                totals["spend_microdollars"] += (quota or {}).get("credits_used") or 0
                for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    totals[k] += (usage or {}).get(k) or 0
            return
        if ex.method == "GET" and ex.path == "/v1/me" and ex.status == 200 and isinstance(ex.json, dict):
            body = ex.json
            usage = body.get("usage")
            if isinstance(usage, dict):
                with lock:
                    for k, v in totals.items():
                        if isinstance(usage.get(k), int):
                            usage[k] += v
                    if isinstance(usage.get("spend_microdollars"), int):
                        usage["spend"] = format_money(usage["spend_microdollars"])
                ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(CHAT, "errors.envelope",
        "402 insufficient_balance is raised by the billing library, whose handler writes the envelope with "
        "Content-Type text/plain (every other error is application/json)")
def insufficient_balance_text_plain() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 402:
            ex.response_headers["Content-Type"] = "text/plain; charset=utf-8"

    return middleware(correct_app(), after)
