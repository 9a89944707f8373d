"""Correct deployments an eighth adversary round tried against the suite (registered by variants.py's
last import): HTTP framing, latency, accounts and gateways a real deployment plausibly runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from flask import Flask

from .mutants.kit import (
    GRANT,
    Exchange,
    chat_answers_rewritten,
    chat_path,
    correct_app,
    every_nth,
    is_stream,
    middleware,
    rewrite_events,
)
from .variants import variant


def _configured(config: dict[str, Any], after: Callable[[Exchange], None] | None = None,
                before: Callable[[Exchange], bool] | None = None) -> Flask:
    """A correct app built from another mock config (a seed, a rate limit, ...)."""
    return middleware(correct_app(config), after, before)


def _is_json(ex: Exchange) -> bool:
    return "application/json" in ex.response_headers.get("Content-Type", "")


def _outer(app: Flask, wrap: Callable[[dict[str, Any], list[tuple[str, str]], bytes], Iterator[bytes] | None]) -> Flask:
    """Wrap the app's WSGI callable once more, outside the kit's middleware: ``wrap(environ,
    headers, body)`` may edit the headers in place and return the body as an iterator of pieces
    (None: as it is). Used for framing the kit's buffering middleware cannot express."""
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, list(headers)
            return lambda data: None

        body = b"".join(inner(environ, capture))
        headers = captured["headers"]
        pieces = wrap(environ, headers, body)
        start_response(captured["status"], headers)
        return [body] if pieces is None else pieces

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


def _drop(headers: list[tuple[str, str]], name: str) -> None:
    headers[:] = [(k, v) for k, v in headers if k.lower() != name.lower()]


# -- HTTP framing --------------------------------------------------------------------------


@variant("every JSON answer written with non-ASCII characters as raw UTF-8 (Go's encoding/json, Node's "
         "JSON.stringify), not \\u escapes; Content-Type application/json with no charset",
         "RFC 8259: JSON text is UTF-8 and escaping non-ASCII is optional; the docs say nothing of escaping")
def raw_utf8_json() -> Flask:
    def after(ex: Exchange) -> None:
        if _is_json(ex) and ex.json is not None:
            ex.response = json.dumps(ex.json, ensure_ascii=False).encode("utf-8")

    return middleware(correct_app(), after)


@variant("error answers keep the documented envelope but are sent as Content-Type application/problem+json "
         "(ASP.NET Core's and Spring's default error media type)",
         "seed: 'All errors return a JSON body'; application/problem+json is JSON (RFC 9457: every problem "
         "member is optional, extensions allowed); the docs name no media type")
def problem_json_errors() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status >= 400 and _is_json(ex):
            ex.response_headers["Content-Type"] = "application/problem+json"

    return middleware(correct_app(), after)


@variant("every answer, plain JSON too, sent with Transfer-Encoding: chunked (no Content-Length), in pieces",
         "HTTP/1.1 framing is the server's choice; the docs say nothing of it")
def chunked_everything() -> Flask:
    def wrap(environ: dict[str, Any], headers: list[tuple[str, str]], body: bytes) -> Iterator[bytes] | None:
        _drop(headers, "Content-Length")
        if environ.get("REQUEST_METHOD") == "HEAD":
            return iter(())

        def pieces() -> Iterator[bytes]:
            step = max(1, len(body) // 3)
            for i in range(0, len(body), step):
                yield body[i:i + step]

        return pieces()

    return _outer(correct_app(), wrap)


@variant("JSON answers pretty-printed (indent 2, keys sorted) and ended by a newline, errors included",
         "whitespace and member order mean nothing in JSON (RFC 8259); the docs' examples are pretty-printed")
def pretty_json() -> Flask:
    def after(ex: Exchange) -> None:
        if _is_json(ex) and ex.json is not None:
            ex.response = (json.dumps(ex.json, indent=2, sort_keys=True) + "\n").encode()

    return middleware(correct_app(), after)


# -- latency -------------------------------------------------------------------------------




# -- accounts ------------------------------------------------------------------------------


def _many_users(count: int) -> dict[str, str]:
    return {f"customer-{i:06d}": f"{(i * 37) % 5000}.{i % 100:02d}" for i in range(count)}


@variant("a big production account: a $25,000,000.00 grant pool, 3,000 existing users with balances, plan "
         "'enterprise'",
         "the docs put no bound on the pool or on the number of users")
def huge_account() -> Flask:
    seed = {"pool": "25000000.00", "users": _many_users(3000),
            "developer": {"plan": "enterprise", "billing_mode": "user"}}
    return _configured({"seed": seed})


@variant("an account in developer billing mode (GET /v1/balance: billing_mode 'developer') that still serves "
         "user-billed chats on the user paths",
         "public-facts: billing_mode is 'developer' or 'user'; the docs allow refusing the wrong endpoint but "
         "do not require it")
def developer_mode_serves_both() -> Flask:
    return _configured({"seed": {"developer": {"billing_mode": "developer"}}})




@variant("a gateway whose prices are a cheap open model's ($0.02 in, $0.05 out per million tokens, no "
         "markup), for every model name: a small chat costs 1 micro-dollar",
         "the docs give the cost formula (base * (1 + markup)) but no prices")
def cheap_model_prices() -> Flask:
    cheap = {"input": "0.02", "output": "0.05"}
    seed = {"prices": {"markup_percent": 0, "default": cheap,
                       "models": {"gpt-4o": cheap, "gpt-4o-mini": cheap}}}
    return _configured({"seed": seed})


@variant("a sandbox account (billing_mode 'test' everywhere) whose chats are free: credits_used 0, nothing "
         "debited (test mode, as Stripe's, moves no real money)",
         "public-facts: the newest generation adds billing_mode 'test', shown as 'Sandbox'; what a sandbox "
         "charges is not documented")
def sandbox_free_chats() -> Flask:
    def sandbox(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("test" if k == "billing_mode" and isinstance(v, str) else sandbox(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [sandbox(v) for v in value]
        return value

    def after(ex: Exchange) -> None:
        if is_stream(ex):
            rewrite_events(ex, sandbox)
        elif _is_json(ex) and isinstance(ex.json, dict):
            ex.set_json(sandbox(ex.json))

    # Free chats: price every model at zero.
    free = {"input": "0", "output": "0"}
    return _configured({"seed": {"developer": {"billing_mode": "test"},
                                 "prices": {"markup_percent": 0, "default": free,
                                            "models": {"gpt-4o": free, "gpt-4o-mini": free}}}}, after)


# -- gateways ------------------------------------------------------------------------------


@variant("OpenAI's non-streamed answer exactly as it comes: system_fingerprint null (as for many models), "
         "service_tier 'default', message refusal null and annotations [], choice logprobs null",
         "public-facts: the response is OpenAI-shaped; OpenAI sends system_fingerprint null when it has none")
def openai_nulls_plain() -> Flask:
    def change(chunk: dict[str, Any]) -> dict[str, Any]:
        chunk["system_fingerprint"] = None
        chunk["service_tier"] = "default"
        for choice in chunk.get("choices", []):
            choice.setdefault("logprobs", None)
            if isinstance(choice.get("message"), dict):
                choice["message"].setdefault("refusal", None)
                choice["message"]["annotations"] = []
        return chunk

    return chat_answers_rewritten(change)


@variant("HEAD and OPTIONS are not routed (actix-web style): any HEAD or OPTIONS answers 405 "
         "method_not_allowed in the envelope with an Allow header, before the key check",
         "the docs define GET and POST routes only; the contract's own answer to another method is 405")
def head_options_405() -> Flask:
    allow = {"/v1/funding/grant": "POST", "/v1/balance": "GET", "/v1/me": "GET", "/v1/packages": "GET"}

    def before(ex: Exchange) -> bool:
        if ex.method in ("HEAD", "OPTIONS"):
            methods = allow.get(ex.path, "POST" if ex.path.endswith("/chat/completions") else "GET")
            ex.error(405, "method_not_allowed", f"Method {ex.method} not allowed")
            ex.response_headers["Allow"] = methods
            if ex.method == "HEAD":
                ex.response = b""
            return True
        return False

    return middleware(correct_app(), None, before)


@variant("GET /v1/balance?external_user_id= with an empty value answers the developer balance, as if the "
         "parameter were absent (Go's r.URL.Query().Get, Express's req.query falsy check)",
         "the docs: 'When external_user_id is provided, it returns that user's balance'; an empty one names "
         "no user (the contract's minLength 1)")
def empty_query_is_absent() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.path == "/v1/balance" and ex.query:
            from urllib.parse import parse_qsl, urlencode
            pairs = parse_qsl(ex.query, keep_blank_values=True)
            if any(k == "external_user_id" and v == "" for k, v in pairs):
                ex.query = urlencode([(k, v) for k, v in pairs if not (k == "external_user_id" and v == "")])
        return False

    return middleware(correct_app(), None, before)




@variant("the gateway routes only gpt-4o-mini and passes OpenAI's project refusal through: 403 "
         "model_not_found \"Project `proj_x` does not have access to model `gpt-4o`\"",
         "the docs name no model; OpenAI answers a model the project may not use 403 model_not_found")
def only_mini_openai_403() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return ex.error(403, "model_not_found",
                            f"Project `proj_x` does not have access to model `{body['model']}`")
        return False

    return middleware(correct_app(), None, before)


@variant("answers carry ISO 8601 timestamps with fractional seconds and an offset: a grant's created_at "
         "(2026-01-05T10:11:12.123456+00:00), and /v1/me's since and until in that form",
         "the docs show no timestamps; RFC 3339 allows fractions and numeric offsets")
def iso_timestamps_fractional() -> Flask:
    def iso(t: float) -> str:
        import datetime
        return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="microseconds")

    def after(ex: Exchange) -> None:
        body = ex.json if _is_json(ex) else None
        if not isinstance(body, dict) or ex.status >= 400:
            return
        if ex.path == GRANT:
            body["created_at"] = iso(time.time())
            ex.set_json(body)
        elif ex.path == "/v1/me" and isinstance(body.get("usage"), dict):
            body["usage"]["since"] = iso(time.time() - 30 * 86400)
            body["usage"]["until"] = iso(time.time())
            ex.set_json(body)

    return middleware(correct_app(), after)


@variant("Idempotency-Keys of any length are keys (no 255-character cap): a longer key is stored by its SHA-256 "
         "digest",
         "the docs give no key length; the IETF draft sets no limit either")
def idempotency_keys_unbounded() -> Flask:
    import hashlib

    def before(ex: Exchange) -> bool:
        key = ex.header("Idempotency-Key")
        if key is not None and len(key) > 255:
            ex.drop_header("Idempotency-Key")
            digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
            ex.headers["Idempotency-Key"] = "sha256-" + digest
        return False

    return middleware(correct_app(), None, before)


@variant("a description must hold some text when given: \"\" (or only whitespace) answers 400 bad_request "
         "\"description must not be empty\" (a CHECK (description <> '') column, or Pydantic's min_length=1)",
         "seed: description is 'Optional. Notes stored in the ledger'; the docs give no limits on it")
def empty_description_refused() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.path == GRANT and ex.method == "POST" else None
        if isinstance(body, dict) and isinstance(body.get("description"), str) and not body["description"].strip():
            return ex.error(400, "bad_request", "description must not be empty")
        return False

    return middleware(correct_app(), None, before)


@variant("a risk limit of $10.00 a grant: a larger amount answers 400 bad_request \"amount must be at most 10.00\"",
         "public-facts lists limits on amount as undocumented; the contract's 10000 is its own choice")
def grant_cap_10_dollars() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.path == GRANT and ex.method == "POST" else None
        amount = body.get("amount") if isinstance(body, dict) else None
        if isinstance(amount, (int, Decimal)) and not isinstance(amount, bool) and amount > 10:
            return ex.error(400, "bad_request", "amount must be at most 10.00")
        return False

    return middleware(correct_app(), None, before)


@variant("query strings are percent-decoded as RFC 3986 says, without the HTML forms' '+'-means-space rule: "
         "?external_user_id=a+b names the user 'a+b' (a hand-rolled parser with decodeURIComponent, Rust's "
         "percent_encoding, Python's unquote); %20 is a space",
         "the docs say only that external_user_id is a query parameter; OpenAPI's form-style query parameters "
         "are serialised per RFC 6570, which writes a space %20, and RFC 3986 gives '+' no meaning")
def query_plus_is_literal() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.query and "+" in ex.query:
            ex.query = ex.query.replace("+", "%2B")
        return False

    return middleware(correct_app(), None, before)






@variant("a FastAPI gateway whose request model types model as Literal['gpt-4o-mini']: another model answers "
         "422 validation_error \"model: Input should be 'gpt-4o-mini'\" in the envelope, as every invalid field "
         "value does there",
         "the docs name no model; invalid_amount_422 shows 422 validation_error for invalid field values is a "
         "correct deployment's choice")
def only_mini_fastapi_422() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return ex.error(422, "validation_error", "model: Input should be 'gpt-4o-mini'")
        return False

    return middleware(correct_app(), None, before)


@variant("the older generation's rate-limit headers, GitHub-style: every 10th request answers 429 "
         "rate_limit_exceeded with X-RateLimit-Limit/Remaining and X-RateLimit-Reset as the Unix time the window "
         "resets (1 s ahead), and no Retry-After",
         "public-facts: 429 rate_limit_exceeded; an older generation sent X-RateLimit-Limit, -Remaining and "
         "-Reset, without saying whether Reset is a time or a number of seconds", waits=True)
def rate_limit_reset_epoch() -> Flask:
    due = every_nth(10)

    def before(ex: Exchange) -> bool:
        if due():
            ex.error(429, "rate_limit_exceeded", "Rate limit of 100 requests per minute exceeded")
            ex.response_headers.update({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                                        "X-RateLimit-Reset": str(int(time.time()) + 1)})
            return True
        return False

    return middleware(correct_app(), None, before)
