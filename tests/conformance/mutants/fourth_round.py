"""Bugs a fourth adversary round found the suite passing: reads served without a key in
another method or path form, a JSON media type with a charset refused, ids outside the BMP
collated as one, ledger ids that name no one entry, and the streamed path counting or charging
otherwise than the same chat unstreamed."""

from __future__ import annotations

import json
import re
import threading
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from flask import Flask

from .kit import GRANT, KEY, Exchange, chat_path, correct_app, edit_events, is_stream, middleware, mutant, service_of

AUTH = "auth"
EDGE = "non-JSON error"
IDENTITY = "identity encoding"
CHAT = "chat"
ACCOUNT = "wrong account"
USER_HEADER = "X-External-User-ID"


def _stream_limits() -> tuple[threading.local, Any]:
    state = threading.local()

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        state.on = isinstance(body, dict) and body.get("stream") is True
        limits = [body.get(k) for k in ("max_tokens", "max_completion_tokens")] if isinstance(body, dict) else []
        limits = [int(v) for v in limits if isinstance(v, (int, Decimal)) and not isinstance(v, bool)]
        state.limit = min(limits) if limits else None
        return False

    return state, before


_ROUTES = re.compile(
    r"^/v1/(me|balance|packages|funding/grant|chat/completions|users/[^/]+/(balance|chat/completions))$")


@mutant(AUTH, "auth.other_forms",
        "the auth guard runs for GET and POST only (method-scoped security rules) while the router serves "
        "HEAD as GET: HEAD /v1/users/{id}/balance without a key answers 200 or 404 (user enumeration), "
        "HEAD /v1/me 200")
def head_skips_auth() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method == "HEAD" and not ex.header("Authorization"):
            ex.headers["Authorization"] = f"Bearer {KEY}"
        return False

    return middleware(correct_app(), None, before)


@mutant(AUTH, "auth.other_forms",
        "routes matched case-insensitively (Express's default) while the auth guard tests "
        "path.startsWith('/v1/'): GET /V1/me or /V1/users/{id}/balance is served without a key")
def uppercase_path_skips_auth() -> Flask:
    def before(ex: Exchange) -> bool:
        lowered = ex.path[:3].lower() + ex.path[3:] if ex.path[:3].lower() == "/v1" else ex.path
        lowered = re.sub(r"^/v1/(ME|BALANCE|PACKAGES|FUNDING/GRANT|CHAT/COMPLETIONS|USERS)(?=/|$)",
                         lambda m: "/v1/" + m.group(1).lower(), lowered, flags=re.IGNORECASE)
        lowered = re.sub(r"/(BALANCE|CHAT/COMPLETIONS)$", lambda m: "/" + m.group(1).lower(), lowered,
                         flags=re.IGNORECASE)
        if lowered != ex.path and _ROUTES.match(lowered):
            ex.path = lowered
            if not ex.header("Authorization"):
                ex.headers["Authorization"] = f"Bearer {KEY}"
        return False

    return middleware(correct_app(), None, before)


@mutant(EDGE, "grant.json_media_types",
        "the media type is compared as a whole string (== 'application/json'): "
        "'application/json; charset=utf-8' (.NET's, OkHttp's default) answers 415")
def charset_utf8_refused() -> Flask:
    app = correct_app()
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        content_type = environ.get("CONTENT_TYPE") or ""
        if environ["REQUEST_METHOD"] == "POST" and content_type.strip() != "application/json" \
                and content_type.split(";")[0].strip().lower() == "application/json":
            body = json.dumps({"error": {"code": "unsupported_media_type", "message":
                               f"Content-Type {content_type} is not accepted here: send the body as application/json"}})
            start_response("415 Unsupported Media Type", [("Content-Type", "application/json"),
                                                          ("Content-Length", str(len(body)))])
            return [body.encode()]
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


@mutant(IDENTITY, "identity.case_sensitive",
        "user ids in a MySQL utf8mb4 collation built on UCA 4.0 (the 'sushi = beer' bug): every character "
        "outside the BMP weighs the same, so 'ann😀' and 'ann🎉' are one account")
def supplementary_chars_collate_equal() -> Flask:
    owners: dict[str, str] = {}
    lock = threading.Lock()

    def owner(user: str) -> str:
        with lock:
            return owners.setdefault("".join("\ufffd" if ord(c) > 0xFFFF else c for c in user), user)

    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        user = body.get("external_user_id") if isinstance(body, dict) else None
        if isinstance(user, str) and owner(user) != user:
            body["external_user_id"] = owner(user)  # type: ignore[index]
            ex.set_request_json(body)
        in_path = ex.user_in_path()
        if in_path is not None and owner(in_path) != in_path:
            ex.path = "/v1/users/" + owner(in_path) + ex.path[len("/v1/users/") + len(in_path):]
        if ex.path == "/v1/balance" and ex.query:
            pairs = [(k, owner(v) if k == "external_user_id" else v) for k, v in parse_qsl(ex.query, True)]
            ex.query = urlencode(pairs, quote_via=quote)
        header = ex.header(USER_HEADER)
        if header is not None and owner(header) != header:
            ex.drop_header(USER_HEADER)
            ex.headers[USER_HEADER] = owner(header)
        return False

    return middleware(correct_app(), None, before)


@mutant(ACCOUNT, "chat.stream_parity",
        "a streamed chat is billed the hold for its answer limit (max_tokens, 4096 without one) because the "
        "stream handler cannot know the length up front, and reports that hold as credits_used: the same "
        "request costs more streamed than not")
def stream_billed_at_max_tokens() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_charge
    state, before = _stream_limits()

    def apply_charge(user_id: Any, amount: int, model: str, prompt: int, completion: int, now: float) -> Any:
        if getattr(state, "on", False):
            amount = max(amount, service.seed.prices.cost(model, prompt, state.limit or 4096))
        return original(user_id, amount, model, prompt, completion, now)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, None, before)


@mutant(CHAT, "chat.stream_parity",
        "the streamed usage chunk counts the role chunk as a token: completion_tokens and total_tokens one "
        "more than the same request without stream (the charge is right)")
def stream_usage_off_by_one() -> Flask:
    def change(chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            usage["completion_tokens"] += 1
            usage["total_tokens"] += 1

    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and is_stream(ex):
            edit_events(ex, change)

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.stream_parity",
        "a streamed chat's quota block is built before the charge: quota.balance_after equals balance_before "
        "(the JSON path is right)")
def stream_quota_stale_balance() -> Flask:
    def change(chunk: dict[str, Any]) -> None:
        quota = chunk.get("quota")
        if isinstance(quota, dict):
            quota["balance_after"] = quota["balance_before"]

    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and is_stream(ex):
            edit_events(ex, change)

    return middleware(correct_app(), after)


@mutant(CHAT, "chat.stream_parity",
        "the streaming handler does not forward max_tokens / max_completion_tokens to the provider: a "
        "streamed answer runs to the default length (and is charged for it); the JSON path honours the limit")
def stream_ignores_max_tokens() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and body.get("stream") is True:
            body.pop("max_tokens", None)
            body.pop("max_completion_tokens", None)
            ex.set_request_json(body)
        return False

    return middleware(correct_app(), None, before)


@mutant(CHAT, "chat.stream_sse",
        "a stream's charge is sent as a named SSE event of its own ('event: quota', data {\"quota\": {...}}) before "
        "[DONE]: OpenAI's SDK reads every event as a chunk, yields one without choices, and an app iterating "
        "chunk.choices fails (seen with openai 3.57: TypeError 'NoneType' object is not iterable)")
def stream_quota_named_event() -> Flask:
    def after(ex: Exchange) -> None:
        if not is_stream(ex):
            return
        out: list[bytes] = []
        for line in ex.response.split(b"\n"):
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                quota = chunk.pop("quota", None)
                out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode())
                if quota is not None:
                    out += [b"", b"event: quota", b"data: " + json.dumps({"quota": quota}).encode()]
                continue
            out.append(line)
        ex.response = b"\n".join(out)

    return middleware(correct_app(), after)
