"""Bugs a seventh adversary round tried: the grant pool moved by the wrong code path (keyless
grants, balance_after, refused requests, in-flight refusals, user chats crediting it), writes
answered "unavailable" after they were applied, replays compared byte for byte, the OpenAI
shape of a chat's answer (model, id, created, choice index, finish_reason), a stream's [DONE]
relayed before the gateway's quota event, content negotiation on streams, and a rate limiter
that never lets a write through."""

from __future__ import annotations

import json
import threading
import uuid
from decimal import Decimal
from typing import Any

from flask import Flask

from mockserver.domain.errors import IdempotencyKeyInFlight

from .kit import (
    GRANT,
    Exchange,
    add_to_balance,
    chat_answers_rewritten,
    chat_path,
    correct_app,
    every_nth,
    is_stream,
    middleware,
    mutant,
    on_request,
    rewrite_events,
    service_of,
    store_patch,
)
from .sixth_round import _slow_keyed_grants

POOL = "pool accounting"
CHAT = "chat"
REPLAY = "replay"
STATUS = "wrong status"
SHAPE = "chat shape"


def _micros(amount: Any) -> int | None:
    if isinstance(amount, Decimal | int) and not isinstance(amount, bool):
        return int(Decimal(amount) * 1_000_000)
    return None


# -- the grant pool --------------------------------------------------------------------------------


@mutant(POOL, "grant.pool_debit",
        "the pool debit lives in the idempotency layer's on-commit hook: a grant without an Idempotency-Key "
        "credits the user but never debits the grant pool (keyed grants are right)")
def pool_not_debited_keyless() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def grant(request: Any, clock: Any) -> Any:
            result = original(request, clock)
            if request.idempotency_key is None and not result.duplicate:
                add_to_balance(service, None, result.amount)
            return result
        return grant

    return store_patch("grant", wrap)


@mutant(POOL, "grant.pool_debit",
        "the pool is debited the user's new balance (balance_after) instead of the amount: a user's first "
        "grant is right, every later grant to that user takes the whole balance again from the pool")
def pool_debited_balance_after() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def grant(request: Any, clock: Any) -> Any:
            result = original(request, clock)
            if not result.duplicate:
                add_to_balance(service, None, -(result.balance_after - result.amount))
            return result
        return grant

    return store_patch("grant", wrap)


@mutant(POOL, "grant.missing_fields",
        "the pool reservation is taken from the amount before the user is validated: a grant with an amount "
        "but no (or a null) external_user_id answers 400 bad_request and still costs the pool its amount")
def pool_debited_for_missing_user() -> Flask:
    app = correct_app()
    service = service_of(app)

    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and body.get("external_user_id") is None:
            micros = _micros(body.get("amount"))
            if micros is not None and 0 < micros <= 100_000_000:
                add_to_balance(service, None, -micros)
        return False

    return middleware(app, None, before)


@mutant(POOL, "idem.concurrent_same",
        "commits take ~50 ms and the pool reservation is taken before the key is claimed: a request refused "
        "409 as in flight (same key, same body) never releases it, so concurrent retries drain the pool")
def in_flight_refusal_debits_pool() -> Flask:
    app = correct_app()
    service = service_of(app)
    _slow_keyed_grants(app, 0.05, IdempotencyKeyInFlight)

    def after(ex: Exchange) -> None:
        body = ex.request_json
        if ex.path == GRANT and ex.status == 409 and isinstance(body, dict):
            micros = _micros(body.get("amount"))
            if micros is not None:
                add_to_balance(service, None, -micros)

    return middleware(app, after)


@mutant(POOL, "chat.user_debit",
        "a user's chat is booked as a transfer: the user is debited its cost and the developer balance "
        "credited the same whole cost (the provider's cost is never taken from anyone)")
def user_chat_credits_developer() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            result = original(user_id, amount, *args)
            if user_id is not None:
                add_to_balance(service, None, amount)
            return result
        return apply_charge

    return store_patch("apply_charge", wrap)


# -- "unavailable", yet applied ------------------------------------------------------------------


@mutant(STATUS, "grant.arithmetic",
        "a keyless grant waits for the replica's acknowledgement after its commit and times out on every "
        "third one: 503 service_unavailable with Retry-After: 1 (\"nothing was applied\"), yet the user was "
        "credited and the pool debited")
def keyless_503_after_commit() -> Flask:
    due = every_nth(3, 2)

    def after(ex: Exchange) -> None:
        if ex.path == GRANT and ex.status == 200 and ex.header("Idempotency-Key") is None and due():
            ex.error(503, "service_unavailable", "Temporarily overloaded; nothing was applied, retry later")
            ex.response_headers["Retry-After"] = "1"

    return middleware(correct_app(), after)


@mutant(STATUS, "grant.arithmetic",
        "the staging rate limiter's write quota is configured as 0: every POST (grant or chat) answers 429 "
        "rate_limit_exceeded with Retry-After: 0, forever")
def writes_always_rate_limited() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and ex.header("Authorization"):
            ex.error(429, "rate_limit_exceeded", "Rate limit exceeded")
            ex.response_headers["Retry-After"] = "0"
            return True
        return False

    return on_request(before)


@mutant(CHAT, "chat.header_form",
        "the provider key on staging is revoked: every chat answers 502 upstream_error in the envelope, "
        "charging nothing (grants and reads work)")
def chats_always_502() -> Flask:
    def before(ex: Exchange) -> bool:
        if chat_path(ex) and ex.header("Authorization"):
            return ex.error(502, "upstream_error", "The model provider answered with an error")
        return False

    return on_request(before)


# -- replays -------------------------------------------------------------------------------------


@mutant(REPLAY, "idem.replay",
        "the request fingerprint is a hash of the raw body bytes: a retry of the same grant serialised "
        "otherwise (keys in another order, other whitespace, 0.5 for 0.50) is refused 422 "
        "idempotency_key_reused instead of replayed")
def replay_fingerprint_raw_bytes() -> Flask:
    seen: dict[tuple[str, str], bytes] = {}
    lock = threading.Lock()

    def before(ex: Exchange) -> bool:
        key = ex.header("Idempotency-Key")
        if ex.method != "POST" or ex.path != GRANT or key is None:
            return False
        scope = (ex.header("Authorization") or "", key)
        with lock:
            first = seen.setdefault(scope, ex.body)
        if first != ex.body and json.loads(first or b"null", parse_float=Decimal) == ex.request_json:
            return ex.error(422, "idempotency_key_reused", "This Idempotency-Key was used with another request")
        return False

    return on_request(before)


# -- the OpenAI shape of a chat's answer -----------------------------------------------------------


@mutant(SHAPE, "chat.user_debit",
        "the gateway's fallback route silently serves (and prices) any model but gpt-4o-mini with gpt-4o-mini, "
        "and the answer's model says gpt-4o-mini")
def chat_model_downgraded() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            body["model"] = "gpt-4o-mini"
            ex.set_request_json(body)
        return False

    return on_request(before)


@mutant(SHAPE, "schema.response",
        "created is written in milliseconds (a JavaScript gateway's Date.now()), not Unix seconds: "
        "1795883737000, a date in the year 58,000")
def chat_created_milliseconds() -> Flask:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        if isinstance(body.get("created"), int):
            body["created"] *= 1000
        return body

    return chat_answers_rewritten(change)


@mutant(SHAPE, "schema.response",
        "every completion answers the same id, chatcmpl-123 (the provider stub's fixture left in the relay)")
def chat_id_constant() -> Flask:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        if "id" in body:
            body["id"] = "chatcmpl-123"
        return body

    return chat_answers_rewritten(change)


@mutant(SHAPE, "schema.response",
        "choices are numbered from 1 (index = position + 1, a template's loop.index): the only choice of a "
        "chat has index 1, in answers and stream chunks alike")
def choice_index_one_based() -> Flask:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        for choice in body.get("choices") or []:
            if isinstance(choice, dict) and isinstance(choice.get("index"), int):
                choice["index"] += 1
        return body

    return chat_answers_rewritten(change)


@mutant(SHAPE, "chat.stream_parity",
        "an Anthropic-backed provider's stop_reason \"max_tokens\" is missing from the gateway's map, which "
        "defaults to \"stop\": an answer cut at max_tokens says finish_reason stop (streamed and not)")
def finish_reason_length_as_stop() -> Flask:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        for choice in body.get("choices") or []:
            if isinstance(choice, dict) and choice.get("finish_reason") == "length":
                choice["finish_reason"] = "stop"
        return body

    return chat_answers_rewritten(change)


@mutant(SHAPE, "chat.stream_sse",
        "each stream chunk gets an id of its own (the relay mints one per event) instead of the completion's")
def stream_chunk_ids_differ() -> Flask:
    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and is_stream(ex):
            rewrite_events(ex, lambda chunk: {**chunk, "id": f"chatcmpl-{uuid.uuid4().hex[:24]}"})

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.stream_sse",
        "the relay forwards the provider's stream whole, its data: [DONE] included, then appends its own "
        "event with the quota block and a second [DONE]: an SDK stops at the first [DONE] and never sees the "
        "charge (nor, with include_usage, the usage)")
def stream_quota_after_done() -> Flask:
    def after(ex: Exchange) -> None:
        if not (chat_path(ex) and ex.status == 200 and is_stream(ex)):
            return
        lines = ex.response.split(b"\n")
        quota_chunk: dict[str, Any] | None = None
        out: list[bytes] = []
        for line in lines:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if "quota" in chunk or chunk.get("usage"):
                    tail = {k: chunk[k] for k in ("id", "object", "created", "model")}
                    tail["choices"] = []
                    for k in ("usage", "quota"):
                        if chunk.get(k) is not None:
                            tail[k] = chunk.pop(k)
                    quota_chunk = tail
                    if not chunk.get("choices"):
                        continue
                line = b"data: " + json.dumps(chunk, separators=(",", ":")).encode()
            out.append(line)
        body = b"\n".join(out)
        if quota_chunk is not None:
            body = body.rstrip(b"\n") + b"\n\ndata: " + json.dumps(quota_chunk, separators=(",", ":")).encode()
            body += b"\n\ndata: [DONE]\n\n"
        ex.response = body

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.stream_sse",
        "streaming is negotiated by the Accept header: a chat with stream: true whose Accept is "
        "application/json (as the OpenAI SDKs send on every request) is answered as one JSON completion")
def stream_negotiated_by_accept() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        accept = (ex.header("Accept") or "").lower()
        if isinstance(body, dict) and body.get("stream") is True and "application/json" in accept \
                and "text/event-stream" not in accept:
            body.pop("stream", None)
            body.pop("stream_options", None)
            ex.set_request_json(body)
        return False

    return on_request(before)


@mutant(CHAT, "chat.user_debit",
        "the stream switch tests whether the field was given (req.stream is not None after validation): an "
        "explicit \"stream\": false (as LangChain and many SDKs send) is answered as server-sent events")
def stream_false_streams() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and body.get("stream") is False:
            body["stream"] = True
            ex.set_request_json(body)
        return False

    return on_request(before)


@mutant(CHAT, "chat.header_form",
        "a LiteLLM-style gateway takes OpenAI's own \"user\" field (the end-user id for abuse monitoring) as the "
        "billed user when present: on POST /v1/chat/completions it wins over X-External-User-ID (and makes a "
        "developer-billed chat a user's)")
def openai_user_field_bills() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) and ex.user_in_path() is None else None
        if isinstance(body, dict) and isinstance(body.get("user"), str) and body["user"]:
            ex.drop_header("X-External-User-Id")
            ex.headers["X-External-User-Id"] = body["user"]
        return False

    return on_request(before)


@mutant("identity encoding", "identity.roundtrip",
        "the router does suffix pattern matching (Spring MVC before 5.3, Rails' format segment): on "
        "/v1/users/{id}/..., an id holding a '.' loses what follows its last '.' (taken as a format): "
        "'ann.lee' reads and chats as 'ann' (404); the grant body and the query form are exact")
def path_id_dot_suffix_stripped() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()  # decoded, as the WSGI server hands it on
        if user is not None and "." in user.strip("."):
            ex.path = ex.path.replace(user, user[: user.rindex(".")], 1)
        return False

    return on_request(before)
