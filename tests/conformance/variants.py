"""Correct deployments that differ from the mock only where the vendor's docs are silent.

Each must pass the documented profile, run as a staging CI job runs it, with zero failures
(warnings are fine: they name the contract's own choices). Sources for "silent": the seed
(docs/vendor/funding-api-seed.txt) says nothing about any of these, and
docs/vendor/public-facts.md lists most of them under "Not documented anywhere we found" or as
another generation's behaviour.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import hashlib
import itertools
import json
import random
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

from flask import Flask

from mockserver.domain.errors import INSUFFICIENT_BALANCE, QuotaError

from .mutants.kit import (
    GRANT,
    KEY,
    Exchange,
    chat_path,
    correct_app,
    every_nth,
    grant_ok,
    middleware,
    service_of,
    service_patch,
    shed,
    store_patch,
    write_balance,
)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    # Why the docs allow it.
    silent_because: str
    build: Callable[[], Flask]
    # A run against it mostly waits (latency, a rate limiter's Retry-After): the sweep gives it
    # a process of its own beside the busy ones, and the corpus check accepts it answering as
    # the correct app does, only slower.
    waits: bool = False


VARIANTS: dict[str, Variant] = {}


def variant(description: str, silent_because: str, *,
            waits: bool = False) -> Callable[[Callable[[], Flask]], Callable[[], Flask]]:
    def register(build: Callable[[], Flask]) -> Callable[[], Flask]:
        VARIANTS[build.__name__] = Variant(build.__name__, description, silent_because, build, waits)
        return build

    return register


def _bad_request(ex: Exchange, message: str) -> bool:
    return ex.error(400, "bad_request", message)


@variant("integer fields must be JSON integers: \"max_tokens\": 803.0 answers 400 bad_request",
         "the docs never say whether 803.0 is an integer; Go, Rust and Java servers reject it")
def strict_integer_parsing() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("max_tokens"), Decimal):
            return _bad_request(ex, "max_tokens must be an integer")
        return False

    return middleware(correct_app(), None, before)


_GRANT_FIELDS = {"external_user_id", "amount", "description"}
_CHAT_FIELDS = {"model", "messages", "max_tokens", "stream", "temperature"}


@variant("unknown request fields are refused, as OpenAI does: 400 bad_request "
         "\"Unrecognized request argument supplied: x\"",
         "the docs list the request fields but say nothing about extra ones")
def unknown_fields_rejected() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method != "POST":
            return False
        allowed = _GRANT_FIELDS if ex.path == GRANT else _CHAT_FIELDS if chat_path(ex) else None
        body = ex.request_json if allowed else None
        if isinstance(body, dict):
            extra = sorted(set(body) - allowed)  # type: ignore[operator]
            if extra:
                return _bad_request(ex, f"Unrecognized request argument supplied: {extra[0]}")
        return False

    return middleware(correct_app(), None, before)


@variant("ledger ids are UUIDs (a replay still answers its original's)",
         "the seed shows ledg_123; a newer vendor generation uses UUIDs")
def uuid_ledger_ids() -> Flask:
    def after(ex: Exchange) -> None:
        if grant_ok(ex):
            body = ex.json
            body["ledger_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, body["ledger_id"]))
            ex.set_json(body)

    return middleware(correct_app(), after)


@variant("a reused Idempotency-Key with another body answers 409 idempotency_key_reused, not 422",
         "public-facts: what happens when one key comes back with a different body is undocumented")
def reused_key_409() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 422 and ex.error_code == "idempotency_key_reused":
            ex.status = 409

    return middleware(correct_app(), after)


@variant("a reused Idempotency-Key with another body replays the first response (no error, "
         "nothing credited)",
         "public-facts: what happens when one key comes back with a different body is undocumented")
def reused_key_replays_first() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.grant
    fingerprints: dict[tuple[str, str], bytes] = {}

    def grant(**kw: Any) -> Any:
        key = (kw["scope"], kw["idempotency_key"] or "")
        if kw["idempotency_key"]:
            kw["fingerprint"] = fingerprints.setdefault(key, kw["fingerprint"])
        return original(**kw)

    service.grant = grant  # type: ignore[method-assign]
    return app


@variant("a replay keeps its ledger_id and duplicate: true but reports what it did now: "
         "amount_granted $0.00 and the current balance as balance_before and balance_after",
         "public-facts: what a replayed grant returns beyond duplicate: true is undocumented")
def replay_reports_nothing_granted() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if grant_ok(ex) and body["duplicate"] is True:
            balance = service_of(app).store.user_balance(body["external_user_id"]) or 0
            shown = _truncated(balance)
            body.update(amount_granted="$0.00", balance_before=shown, balance_after=shown)
            ex.set_json(body)

    app = correct_app()
    return middleware(app, after)


@variant("no Idempotent-Replayed header on replays (duplicate: true says it)",
         "the header is the contract's choice (IETF draft); the seed documents only duplicate")
def no_replayed_header() -> Flask:
    def after(ex: Exchange) -> None:
        ex.response_headers.pop("Idempotent-Replayed", None)

    return middleware(correct_app(), after)


@variant("GET /v1/me in the older session shape: {id, email, balance}",
         "public-facts: the shape of /v1/me is undocumented; /auth/me returns id, email, balance")
def older_me_shape() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.method == "GET" and ex.path == "/v1/me" and ex.status == 200:
            body = ex.json
            ex.set_json({"id": body["id"], "email": body["email"], "balance": body["balance"]})

    return middleware(correct_app(), after)


@variant("every user is known: a never-granted user's balance is 200 $0.00, and its chat is "
         "402 insufficient_balance",
         "public-facts: whether /v1/users/:id/balance knows a user before its first grant is undocumented")
def users_known_before_first_grant() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    user_balance, apply_charge = store.user_balance, store.apply_charge

    def known(user_id: str) -> int:
        balance = user_balance(user_id)
        return 0 if balance is None else balance

    def charge(user_id: Any, amount: int, *args: Any) -> Any:
        if user_id is not None and user_balance(user_id) is None:
            raise QuotaError(INSUFFICIENT_BALANCE, "User balance too low")
        return apply_charge(user_id, amount, *args)

    store.user_balance = known  # type: ignore[method-assign]
    store.apply_charge = charge  # type: ignore[method-assign]
    return app


@variant("errors carry the newest generation's hint and docs_url, and other messages",
         "the envelope's code and message are documented; message texts are not, and public-facts "
         "says the newest generation adds optional hint and docs_url")
def error_hints_and_messages() -> Flask:
    def after(ex: Exchange) -> None:
        code = ex.error_code
        if ex.status >= 400 and code:
            ex.set_json({"error": {"code": code, "message": f"Request failed ({code.replace('_', ' ')}).",
                                   "hint": "See the documentation for this error.",
                                   "docs_url": f"https://www.usequota.ai/docs/errors#{code}"}})

    return middleware(correct_app(), after)


@variant("extra response fields (request_id, created_at, currency) and a Request-Id header",
         "the docs show example bodies, never saying no other field may appear")
def extra_response_fields() -> Flask:
    def after(ex: Exchange) -> None:
        ex.response_headers["Request-Id"] = "req_0001"
        body = ex.json
        if isinstance(body, dict) and ex.status < 400 and "packages" not in body and "object" not in body:
            body["request_id"] = "req_0001"
            if grant_ok(ex):
                body.update(created_at="2026-01-01T00:00:00Z", currency="usd")
            ex.set_json(body)

    return middleware(correct_app(), after)


@variant("X-RateLimit-Limit/Remaining/Reset on every response (the older generation's headers)",
         "public-facts: an older generation sent these headers; the seed says nothing of them")
def rate_limit_headers() -> Flask:
    lock = threading.Lock()
    sent = [0]

    def after(ex: Exchange) -> None:
        with lock:
            sent[0] += 1
            remaining = max(0, 100_000 - sent[0])
        ex.response_headers.update({"X-RateLimit-Limit": "100000", "X-RateLimit-Remaining": str(remaining),
                                    "X-RateLimit-Reset": "1893456000"})

    return middleware(correct_app(), after)


@variant("user balances and packages exactly as the seed shows them: no balance_microdollars",
         "the seed's user balance has external_user_id, balance and billing_mode only; the micro "
         "field there is the contract's addition")
def seed_shaped_bodies() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.status != 200 or not isinstance(body, dict):
            return
        if "external_user_id" in body and "balance" in body:
            body.pop("balance_microdollars", None)
        for package in body.get("packages", []):
            package.pop("balance_microdollars", None)
        ex.set_json(body)

    return middleware(correct_app(), after)


@variant("invalid field values (an amount zero, negative, sub-cent, too large or not a number; "
         "a user id of the wrong type or length) answer 422 validation_error; missing fields "
         "still answer 400 bad_request",
         "the seed documents 400 for missing fields only; public-facts: limits on amount are "
         "undocumented, and so is the answer to an invalid (not missing) value")
def invalid_amount_422() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.request_json if ex.path == GRANT and ex.status == 400 else None
        if isinstance(body, dict) and "amount" in body and "external_user_id" in body:
            ex.set_json({"error": {"code": "validation_error", "message": "A field has an invalid value"}}, 422)

    return middleware(correct_app(), after)


@variant("only the exact scheme spelling \"Bearer\" is accepted (\"bearer <key>\" is 401)",
         "the docs say Authorization: Bearer <key>; they never say other spellings work")
def bearer_case_sensitive() -> Flask:
    def before(ex: Exchange) -> bool:
        value = ex.header("Authorization")
        if value and value.split(" ", 1)[0].lower() == "bearer" and not value.startswith("Bearer "):
            return ex.error(401, "invalid_api_key", "Invalid Authorization header")
        return False

    return middleware(correct_app(), None, before)


@variant("a JSON body is read whatever its Content-Type (text/plain, a form type, none): the "
         "grant is made",
         "the docs show JSON bodies but never say what other media types get; many servers parse "
         "the body regardless")
def any_media_type_read_as_json() -> Flask:
    app = correct_app()
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("CONTENT_LENGTH"):
            environ["CONTENT_TYPE"] = "application/json"
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


@variant("streams open with an SSE comment (\": keep-alive\") and end their lines with CRLF",
         "the docs say OpenAI-style server-sent events; the SSE format allows comments and CRLF")
def sse_keepalive_and_crlf() -> Flask:
    def after(ex: Exchange) -> None:
        if "text/event-stream" in ex.response_headers.get("Content-Type", ""):
            ex.response = b": keep-alive\r\n\r\n" + ex.response.replace(b"\n", b"\r\n")

    return middleware(correct_app(), after)


def _truncated(micros: int) -> str:
    cents = micros // 10_000
    return f"${cents // 100}.{cents % 100:02d}"


def _rounded(micros: int) -> str:
    cents = (micros + 5_000) // 10_000
    return f"${cents // 100}.{cents % 100:02d}"


@variant("money display strings rounded half-up to the cent rather than truncated "
         "($5.505 shows as $5.51)",
         "the docs show dollar strings and say money is tracked in micro-dollars; how the display "
         "form rounds is undocumented")
def money_display_rounded() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    seen = threading.local()
    grant, apply_charge = service.grant, store.apply_charge

    def keep_grant(**kw: Any) -> Any:
        seen.grant = grant(**kw)
        return seen.grant

    def keep_charge(*args: Any) -> Any:
        seen.charge = apply_charge(*args)
        return seen.charge

    service.grant = keep_grant  # type: ignore[method-assign]
    store.apply_charge = keep_charge  # type: ignore[method-assign]

    def before(ex: Exchange) -> bool:
        seen.grant = seen.charge = None
        return False

    def after(ex: Exchange) -> None:
        if ex.status != 200:
            return
        if ex.response_headers.get("Content-Type", "").startswith("text/event-stream"):
            ex.response = b"".join(_round_event(line, seen.charge) for line in ex.response.splitlines(True))
            return
        body = ex.json
        if isinstance(body, dict):
            _round_body(body, seen.grant, seen.charge)
            ex.set_json(body)

    return middleware(app, after, before)


def _rounded_charge(charge: Any) -> dict[str, str]:
    return {"balance_before": _rounded(charge.balance_before), "balance_after": _rounded(charge.balance_after)}


def _round_event(line: bytes, charge: Any) -> bytes:
    if not line.startswith(b"data: {") or charge is None:
        return line
    chunk = json.loads(line[6:])
    if "quota" in chunk:
        chunk["quota"].update(_rounded_charge(charge))
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n"


def _round_body(body: dict[str, Any], grant: Any, charge: Any) -> None:
    if grant is not None and "ledger_id" in body:
        body.update(balance_before=_rounded(grant.balance_before), balance_after=_rounded(grant.balance_after))
    if charge is not None and isinstance(body.get("quota"), dict):
        body["quota"].update(_rounded_charge(charge))
    if "balance_microdollars" in body and "balance" in body:
        body["balance"] = _rounded(body["balance_microdollars"])
    usage = body.get("usage")
    if isinstance(usage, dict) and "spend_microdollars" in usage:
        usage["spend"] = _rounded(usage["spend_microdollars"])
        usage["grants"]["total"] = _rounded(usage["grants"]["total_microdollars"])
        for model in usage["by_model"]:
            model["spend"] = _rounded(model["spend_microdollars"])


@variant("only models with a price are served: any other model name answers 400 bad_request",
         "the docs show gpt-4o-mini and never say any string is a model; every real gateway refuses a model it "
         "cannot route (public-facts: 400 bad_request for an invalid body)")
def known_models_only() -> Flask:
    app = correct_app()
    known = set(service_of(app).seed.prices.models)

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] not in known:
            return _bad_request(ex, f"The model `{body['model']}` does not exist")
        return False

    return middleware(app, None, before)


_PLAIN_ID = re.compile(r"[A-Za-z0-9_.@+:=-]{1,128}")


@variant("user ids limited to [A-Za-z0-9_.@+:=-]{1,128}: any other id answers 400 bad_request, in a grant, a "
         "path, the query or the header",
         "the docs say only that external_user_id is a string (example user_123); openapi.yaml's 255 characters "
         "of any text are the contract's allowance (x-quota-plain-pattern)")
def strict_user_ids() -> Flask:
    def before(ex: Exchange) -> bool:
        ids: list[str] = []
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and isinstance(body.get("external_user_id"), str):
            ids.append(body["external_user_id"])
        if ex.user_in_path() is not None:
            ids.append(unquote(ex.user_in_path() or ""))
        if ex.path == "/v1/balance":
            ids += [value for name, value in parse_qsl(ex.query, True) if name == "external_user_id"]
        if chat_path(ex) and ex.header("X-External-User-ID") is not None:
            ids.append(ex.header("X-External-User-ID") or "")
        if any(not _PLAIN_ID.fullmatch(user) for user in ids):
            return _bad_request(ex, "external_user_id may only hold letters, digits and _.@+:=- (at most 128)")
        return False

    return middleware(correct_app(), None, before)


# Another client of the same account, while the suite runs: a grant to its own users or a
# small developer-billed chat about every BUSY_PERIOD seconds, while the app lives (at most
# BUSY_SECONDS: a staging run takes seconds, and the sweep must not keep paying for it).
BUSY_PERIOD, BUSY_SECONDS = 0.25, 60.0


@variant("the account is shared: another client grants to its own users or sends a small developer-billed chat "
         "every ~0.25 s while the suite runs",
         "a staging account is used by more than the suite: the docs promise nothing about other clients, and "
         "rules that watch the developer balance must call such a run inconclusive, never failed")
def busy_account() -> Flask:
    app = correct_app()
    alive = weakref.ref(app)
    headers = {"Authorization": f"Bearer {KEY}"}
    randomness = random.Random(1)

    def traffic() -> None:
        deadline = time.monotonic() + BUSY_SECONDS
        for n in itertools.count():
            time.sleep(BUSY_PERIOD * randomness.uniform(0.5, 1.5))
            target = alive()
            if target is None or time.monotonic() > deadline:
                return
            client = target.test_client()
            if n % 2:
                client.post(GRANT, headers=headers, json={"external_user_id": f"someone-else-{n % 7}", "amount": 0.01})
            else:
                client.post("/v1/chat/completions", headers=headers,
                            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 3})
            del target, client

    threading.Thread(target=traffic, daemon=True, name="busy-account").start()
    return app


def _as_sandbox(value: Any) -> Any:
    """Every billing_mode in a JSON value reads "test" (the newest generation's sandbox)."""
    if isinstance(value, dict):
        return {k: "test" if k == "billing_mode" else _as_sandbox(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_sandbox(v) for v in value]
    return value


def _sandbox_event(line: bytes) -> bytes:
    if not line.startswith(b"data: {"):
        return line
    end = b"\n" if line.endswith(b"\n") else b""
    return b"data: " + json.dumps(_as_sandbox(json.loads(line[6:]))).encode() + end


@variant("a sandbox account: every billing_mode, in balances and in chats' quota blocks, reads \"test\"",
         "public-facts: billing_mode is \"developer\" or \"user\", and the newest generation adds \"test\", shown as "
         "Sandbox; a staging job may well run against a sandbox account")
def sandbox_mode() -> Flask:
    def after(ex: Exchange) -> None:
        kind = ex.response_headers.get("Content-Type", "")
        if kind.startswith("application/json") and isinstance(ex.json, dict | list):
            ex.set_json(_as_sandbox(ex.json))
        elif kind.startswith("text/event-stream"):
            ex.response = b"".join(_sandbox_event(line) for line in ex.response.splitlines(True))

    return middleware(correct_app(), after)


# -- third adversary round ------------------------------------------------------------------


def _is_json(ex: Exchange) -> bool:
    return ex.response_headers.get("Content-Type", "").startswith("application/json")


@variant("JSON answers gzip-compressed (Content-Encoding: gzip, Vary: Accept-Encoding) whenever the "
         "request's Accept-Encoding allows gzip, as a CDN or nginx gzip does",
         "the docs are silent on transfer details; HTTP lets a server compress what the client accepts")
def gzip_when_accepted() -> Flask:
    def after(ex: Exchange) -> None:
        accepts = (ex.header("Accept-Encoding") or "").lower()
        if _is_json(ex) and "gzip" in accepts and ex.response:
            ex.response = gzip.compress(ex.response)
            ex.response_headers["Content-Encoding"] = "gzip"
            ex.response_headers["Vary"] = "Accept-Encoding"

    return middleware(correct_app(), after)


@variant("every answer carries a CDN's and framework's housekeeping headers: Date, Server, ETag, "
         "Cache-Control: no-store, Vary, CORS, X-Request-Id, HSTS, nosniff",
         "the docs are silent on any header beyond Authorization and Idempotency-Key")
def http_housekeeping_headers() -> Flask:
    def after(ex: Exchange) -> None:
        ex.response_headers.update({
            "Date": email.utils.formatdate(usegmt=True),
            "Server": "cloudflare",
            "ETag": 'W/"' + hashlib.sha1(ex.response).hexdigest()[:16] + '"',
            "Cache-Control": "no-store, max-age=0",
            "Vary": "Origin, Accept-Encoding",
            "Access-Control-Allow-Origin": "*",
            "X-Request-Id": str(uuid.uuid4()),
            "Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
            "X-Content-Type-Options": "nosniff",
            "CF-RAY": "8f1e2d3c4b5a6978-FRA",
        })

    return middleware(correct_app(), after)


@variant("a new grant answers 201 Created (a ledger entry was created); its replay answers the same 201",
         "the seed shows the grant's response body but never its status code")
def grant_201_created() -> Flask:
    def after(ex: Exchange) -> None:
        if grant_ok(ex):
            ex.status = 201

    return middleware(correct_app(), after)


@variant("a method a route does not define answers 404 not_found in the envelope (no 405), as many routers do",
         "the docs are silent on methods; openapi.yaml's 405 is the contract's choice (x-quota-global-responses)")
def wrong_method_404() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 405:
            ex.response_headers.pop("Allow", None)
            ex.error(404, "not_found", f"No route for {ex.method} {ex.path}")

    return middleware(correct_app(), after)


@variant("a staging account whose grant pool holds only $3.00, less than the run's --budget 5",
         "the docs promise no pool size; a staging account is funded however its owner funded it")
def small_grant_pool() -> Flask:
    app = correct_app()
    write_balance(service_of(app), None, 3_000_000)
    return app


@variant("errors in OpenAI's envelope: code and message plus type and param (null), and a top-level request_id",
         "seed: every error is {\"error\": {\"code\", \"message\"}}; it never says no other member may appear, and "
         "public-facts says chat is OpenAI-shaped")
def openai_error_members() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.status >= 400 and ex.error_code:
            body["error"].update(type="invalid_request_error" if ex.status < 500 else "api_error", param=None)
            body["request_id"] = "req_" + uuid.uuid4().hex
            ex.set_json(body)

    return middleware(correct_app(), after)


@variant("Idempotent-Replayed: false on every grant that is not a replay (true on replays, as the mock)",
         "the header is the contract's choice (IETF draft); the seed documents only duplicate")
def replayed_header_false_on_originals() -> Flask:
    def after(ex: Exchange) -> None:
        if grant_ok(ex) and "Idempotent-Replayed" not in ex.response_headers:
            ex.response_headers["Idempotent-Replayed"] = "false"

    return middleware(correct_app(), after)


LOAD_SHED_EVERY = 30


@variant(f"load shedding: every {LOAD_SHED_EVERY}th balance read (GET) answers 503 service_unavailable with "
         "Retry-After: 1, applying nothing",
         "openapi.yaml lists 503 service_unavailable with Retry-After on the balance reads (the contract's own); the "
         "docs promise no availability")
def occasional_503_on_reads() -> Flask:
    due = every_nth(LOAD_SHED_EVERY)

    def before(ex: Exchange) -> bool:
        balance_read = ex.method == "GET" and (ex.path == "/v1/balance" or ex.path.endswith("/balance"))
        return balance_read and due() and shed(ex)

    return middleware(correct_app(), None, before)


def _user_billed_chat(ex: Exchange) -> bool:
    """A chat on a user's path, or on the plain path naming a user in X-External-User-ID."""
    return chat_path(ex) and (ex.user_in_path() is not None or ex.header("X-External-User-ID") is not None)


def _authenticated(ex: Exchange) -> bool:
    """The account's own key: the billing mode is the account's, so a request is known to be on
    the wrong billing endpoint only once it is authenticated (an unknown key is a 401 first)."""
    return ex.header("Authorization") == f"Bearer {KEY}"


@variant("the account bills its users (GET /v1/balance: billing_mode \"user\"): a developer-billed chat, on the plain "
         "path without X-External-User-ID, answers 400 bad_request",
         "public-facts lists 400 bad_request for a chat on the wrong billing endpoint, and user-pays is the default "
         "billing mode")
def user_billing_refuses_developer_chats() -> Flask:
    def before(ex: Exchange) -> bool:
        if chat_path(ex) and not _user_billed_chat(ex) and _authenticated(ex):
            return _bad_request(ex, "Wrong billing endpoint: this app bills its users; name one with "
                                    "X-External-User-ID or POST /v1/users/{external_user_id}/chat/completions")
        return False

    return middleware(correct_app(), None, before)


@variant("the account bills the developer (GET /v1/balance: billing_mode \"developer\"): a user-billed chat, on a "
         "user's path or naming one in X-External-User-ID, answers 400 bad_request",
         "public-facts lists 400 bad_request for a chat on the wrong billing endpoint, and developer-pays is one of "
         "the documented billing modes; its GET /v1/balance example says billing_mode \"developer\"")
def developer_billing_refuses_user_chats() -> Flask:
    def before(ex: Exchange) -> bool:
        if _user_billed_chat(ex) and _authenticated(ex):
            return _bad_request(ex, "Wrong billing endpoint: this app is billed to the developer; use "
                                    "POST /v1/chat/completions without X-External-User-ID")
        return False

    def after(ex: Exchange) -> None:
        developer = ex.method in ("GET", "HEAD") and ex.path == "/v1/balance" and "external_user_id" not in ex.query
        body = ex.json if developer and ex.status == 200 else None
        if isinstance(body, dict) and "billing_mode" in body:
            body["billing_mode"] = "developer"
            ex.set_json(body, ex.status)

    return middleware(correct_app(), after, before)


@variant("a user's chat is served while the balance is above zero, whatever it costs: the balance stops at $0.00 "
         "(quota.credits_used still says the chat's whole price) and only then do chats answer 402",
         "public-facts: a balance cannot go negative: requests get 402 at zero; a gateway knows a chat's price only "
         "once the provider has answered, and the docs never say it refuses a chat the balance cannot cover")
def chats_served_down_to_zero() -> Flask:
    def wrap(service: Any, original: Callable[..., Any]) -> Callable[..., Any]:
        def apply_charge(user_id: str | None, amount: int, *rest: Any) -> Any:
            held = service.user_balance(user_id) if user_id is not None else None
            if held is not None and 0 < held < amount:
                # Charge what is left and report the price: the balance stops at zero.
                return dataclasses.replace(original(user_id, held, *rest), amount=amount)
            return original(user_id, amount, *rest)

        return apply_charge

    return store_patch("apply_charge", wrap)


@variant("each streamed chunk's JSON is split over several data: lines (pretty-printed, one line each)",
         "the docs say OpenAI-style server-sent events; the SSE format joins an event's data lines with a newline, "
         "and JSON allows a newline between tokens")
def sse_multiline_data() -> Flask:
    def split(line: bytes) -> bytes:
        if not line.startswith(b"data: {"):
            return line
        pretty = json.dumps(json.loads(line[6:]), indent=1)
        return b"\n".join(b"data: " + part.encode() for part in pretty.split("\n"))

    def after(ex: Exchange) -> None:
        if "text/event-stream" in ex.response_headers.get("Content-Type", ""):
            ex.response = b"\n".join(split(line) for line in ex.response.split(b"\n"))

    return middleware(correct_app(), after)


PROVIDER_FAILS_EVERY = 4


@variant(f"the model provider fails now and then: every {PROVIDER_FAILS_EVERY}th chat answers 502 upstream_error "
         "or 504 gateway_timeout, charging nothing",
         "public-facts lists 502 upstream_error, 503 provider_unavailable and 504 gateway_timeout for chats: "
         "a gateway's provider fails sometimes")
def provider_fails_now_and_then() -> Flask:
    due = every_nth(PROVIDER_FAILS_EVERY)
    failures = itertools.cycle([
        (502, "upstream_error", "The model provider answered with an error"),
        (504, "gateway_timeout", "The model provider did not answer in time"),
    ])  # fmt: skip

    def before(ex: Exchange) -> bool:
        return chat_path(ex) and _authenticated(ex) and due() and ex.error(*next(failures))

    return middleware(correct_app(), None, before)


KEYLESS_SHED_EVERY = 3


@variant(f"writes are shed under load now and then: the second grant without an Idempotency-Key, and every "
         f"{KEYLESS_SHED_EVERY}rd after it, answers 503 service_unavailable with Retry-After: 1, nothing applied",
         "openapi.yaml lists 503 service_unavailable with Retry-After on grants (the contract's own); the docs "
         "promise no availability, and a keyless write cannot be retried safely")
def occasional_503_on_keyless_grants() -> Flask:
    due = every_nth(KEYLESS_SHED_EVERY, first=2)

    def before(ex: Exchange) -> bool:
        keyless = ex.method == "POST" and ex.path == GRANT and ex.header("Idempotency-Key") is None
        return keyless and _authenticated(ex) and due() and shed(ex)

    return middleware(correct_app(), None, before)


RATE_LIMITED_EVERY = 10


@variant(f"a rate limiter refuses every {RATE_LIMITED_EVERY}th request: 429 rate_limit_exceeded in the envelope, "
         "with Retry-After: 0",
         "public-facts: rate limit 100 requests/minute by default, 429 rate_limit_exceeded; the suite retries")
def rate_limited_now_and_then() -> Flask:
    due = every_nth(RATE_LIMITED_EVERY)

    def before(ex: Exchange) -> bool:
        if not due():
            return False
        ex.response_headers["Retry-After"] = "0"
        return ex.error(429, "rate_limit_exceeded", "Rate limit exceeded: retry after Retry-After seconds")

    return middleware(correct_app(), None, before)


CHAT_TEXT_CAP = 8_192


@variant(f"chat text is capped at {CHAT_TEXT_CAP:,} characters a string: a longer message answers 400 bad_request",
         "the docs set no limit on a chat's text; openapi.yaml's 10,485,760 characters (OpenAI's own cap) are the "
         "contract's choice, and a gateway may cap lower")
def chat_text_capped() -> Flask:
    def too_long(value: Any) -> bool:
        if isinstance(value, str):
            return len(value) > CHAT_TEXT_CAP
        if isinstance(value, list):
            return any(too_long(item) for item in value)
        return isinstance(value, dict) and any(too_long(item) for item in value.values())

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and too_long(body.get("messages")):
            return _bad_request(ex, f"messages: a text longer than {CHAT_TEXT_CAP} characters")
        return False

    return middleware(correct_app(), None, before)


def _integral_floats(value: Any) -> Any:
    """Every integer of a JSON value written as an integral float (12 as 12.0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [_integral_floats(item) for item in value]
    if isinstance(value, dict):
        return {name: _integral_floats(item) for name, item in value.items()}
    return value


@variant("integers are written as integral floats: balance_microdollars, credits_used and the token counts read "
         "12.0, not 12",
         "JSON does not tell 12 from 12.0, and JSON Schema's integer accepts both; a server whose numbers are all "
         "doubles (JavaScript's JSON.stringify of a computed value, a float column) writes them so")
def integral_float_integers() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json if "application/json" in ex.response_headers.get("Content-Type", "") else None
        if isinstance(body, dict) and "error" not in body:
            ex.response = json.dumps(_integral_floats(body)).encode()

    return middleware(correct_app(), after)


def _null_fingerprint_event(line: bytes) -> bytes:
    if not line.startswith(b"data: {"):
        return line
    chunk = json.loads(line[6:])
    chunk["system_fingerprint"] = None
    return b"data: " + json.dumps(chunk).encode()


@variant("streamed chunks carry \"system_fingerprint\": null",
         "the docs list a chat answer's fields (id, object, choices, usage, quota) and say the stream is OpenAI "
         "style; system_fingerprint is the contract's addition (OpenAI sends null when it has none)")
def stream_fingerprint_null() -> Flask:
    def after(ex: Exchange) -> None:
        if "text/event-stream" in ex.response_headers.get("Content-Type", ""):
            ex.response = b"\n".join(_null_fingerprint_event(line) for line in ex.response.split(b"\n"))

    return middleware(correct_app(), after)


@variant("Idempotency-Keys are scoped per account, not per API key, and a key reused with another body replays "
         "the first grant (the second API key's reuse of a key answers the first key's grant)",
         "the docs say only that an Idempotency-Key prevents duplicates; a key's scope and a reused key with "
         "another body are listed as undocumented (public-facts)")
def account_scoped_keys_replay_first() -> Flask:
    first_fingerprints: dict[str, bytes] = {}

    def wrap(service: Any, original: Callable[..., Any]) -> Callable[..., Any]:
        def grant(**request: Any) -> Any:
            request["scope"] = "the-account"
            if request.get("idempotency_key"):
                key = request["idempotency_key"]
                request["fingerprint"] = first_fingerprints.setdefault(key, request["fingerprint"])
            return original(**request)

        return grant

    return service_patch("grant", wrap)


from . import variants_eighth, variants_fifth, variants_fourth, variants_ninth, variants_seventh, variants_sixth  # noqa: E402, F401  (register their variants: they build on this module)
