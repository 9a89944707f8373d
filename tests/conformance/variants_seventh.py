"""Correct deployments an ff7 adversary round tried against the suite (registered by variants.py's
last import): gateways, proxies and production set-ups in front of a correct Quota API."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

from flask import Flask

from .mutants.kit import (
    GRANT,
    KEY,
    KEY2,
    Exchange,
    chat_path,
    correct_app,
    is_stream,
    middleware,
)
from .variants import variant

VALID_KEYS = {f"Bearer {KEY}", f"Bearer {KEY2}"}


def _events(ex: Exchange) -> list[bytes]:
    """The stream's events as the mock writes them (``data: ...`` blocks, blank-line separated)."""
    return [event for event in ex.response.split(b"\n\n") if event.strip()]


# -- SSE framing -------------------------------------------------------------------------------


@variant("SSE framing with every optional field: a leading 'retry: 3000', each event with 'id: N' and an explicit "
         "'event: message', and ': ping' comment lines between events (as OpenRouter's ': OPENROUTER PROCESSING')",
         "the docs say OpenAI-style server-sent events; the SSE format's default event type is 'message', and id, "
         "retry and comments carry no data")
def sse_ids_retry_and_pings() -> Flask:
    def after(ex: Exchange) -> None:
        if not (chat_path(ex) and ex.status == 200 and is_stream(ex)):
            return
        out = [b"retry: 3000\n\n"]
        for number, event in enumerate(_events(ex), 1):
            out.append(b": ping\n\n")
            out.append(b"id: %d\nevent: message\n" % number + event + b"\n\n")
        ex.response = b"".join(out)

    return middleware(correct_app(), after)


@variant("streams open with a UTF-8 byte order mark (a .NET StreamWriter's preamble)",
         "the docs say server-sent events; the SSE format (WHATWG HTML 9.2.5) allows one U+FEFF at the start of "
         "the stream and tells clients to ignore it")
def sse_bom() -> Flask:
    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and is_stream(ex):
            ex.response = b"\xef\xbb\xbf" + ex.response

    return middleware(correct_app(), after)


@variant("Spring-style Content-Types: application/json;charset=UTF-8 and text/event-stream;charset=UTF-8 (no "
         "space, upper-case charset)",
         "the docs show JSON bodies and server-sent events; media-type parameters and their case are HTTP's")
def spring_content_types() -> Flask:
    def after(ex: Exchange) -> None:
        media = ex.response_headers.get("Content-Type", "")
        if media.startswith("application/json"):
            ex.response_headers["Content-Type"] = "application/json;charset=UTF-8"
        elif media.startswith("text/event-stream"):
            ex.response_headers["Content-Type"] = "text/event-stream;charset=UTF-8"

    return middleware(correct_app(), after)


# -- rate limits and retries -------------------------------------------------------------------

BURST_LIMIT, BURST_WINDOW = 40, 2.0




RATE_LIMITED_DATE_EVERY = 6




# -- latency and locking -----------------------------------------------------------------------

PROVIDER_SECONDS = 0.3




GRANT_COMMIT_SECONDS = 0.15




def _write_subject(ex: Exchange) -> str | None:
    """The app user a write touches (a grant's, a user-billed chat's), or None."""
    if ex.method != "POST":
        return None
    if ex.path == GRANT:
        body = ex.request_json
        user = body.get("external_user_id") if isinstance(body, dict) else None
        return user if isinstance(user, str) else None
    if chat_path(ex):
        return ex.user_in_path() or ex.header("X-External-User-Id")
    return None




# -- storage limits ----------------------------------------------------------------------------

DESCRIPTION_COLUMN = 255


@variant(f"a Postgres ledger: description is VARCHAR({DESCRIPTION_COLUMN}) and text cannot hold NUL, so a longer "
         "description or one holding U+0000 answers 400 bad_request naming the field",
         "seed: description is an optional string 'stored in the ledger', no length given; openapi.yaml's 500 "
         "characters are the contract's own limit")
def postgres_description_limits() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method != "POST" or ex.path != GRANT:
            return False
        body = ex.request_json
        text = body.get("description") if isinstance(body, dict) else None
        if isinstance(text, str) and (len(text) > DESCRIPTION_COLUMN or "\x00" in text):
            return ex.error(400, "bad_request",
                            f"description: at most {DESCRIPTION_COLUMN} characters, and no NUL character")
        return False

    return middleware(correct_app(), None, before)


IDEMPOTENCY_KEY_MAX = 64


@variant(f"Idempotency-Keys are 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters (as Adyen's 64): a longer "
         "key, or one with other characters, answers 400 bad_request, granting nothing",
         "seed: 'Provide an Idempotency-Key header' - no length or alphabet; openapi.yaml's 255 characters are the "
         "contract's own limit (its example key has 23)")
def idempotency_key_64() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method != "POST" or ex.path != GRANT:
            return False
        key = ex.header("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= IDEMPOTENCY_KEY_MAX and all(" " < c <= "~" for c in key)):
            return ex.error(400, "bad_request",
                            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters")
        return False

    return middleware(correct_app(), None, before)


CONTEXT_TOKENS = 32_768


@variant(f"a gateway that routes only gpt-4o-mini and caps a request's input at {CONTEXT_TOKENS:,} tokens (about 4 "
         "characters a token; LiteLLM's max_input_tokens): a longer prompt answers 400 bad_request \"This model's "
         "maximum context length is ...\", as OpenAI's context_length_exceeded, before any balance check",
         "the docs name no model and no context size; public-facts lists 400 bad_request for an invalid body, and "
         "every model has a context window; openapi.yaml's plain pattern for model is gpt-4o-mini")
def context_window_32k() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if not isinstance(body, dict):
            return False
        if isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return ex.error(400, "bad_request", f"The model `{body['model']}` does not exist or you do not have "
                            "access to it")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return False
        tokens = len(json.dumps(messages, default=str)) // 4
        if tokens > CONTEXT_TOKENS:
            return ex.error(400, "bad_request", f"This model's maximum context length is {CONTEXT_TOKENS} tokens. "
                            f"However, your messages resulted in {tokens} tokens. Please reduce the length of the "
                            "messages.")
        return False

    return middleware(correct_app(), None, before)


# -- compression, packages, auth on the public route -------------------------------------------


@variant("nginx gzip with gzip_types application/json text/event-stream: every answer with a body (errors and "
         "streams included) is gzip-encoded when the request accepts gzip",
         "the docs are silent on transfer details; HTTP lets a server encode what the client accepts")
def gzip_everything() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.response and "gzip" in (ex.header("Accept-Encoding") or ""):
            ex.response = gzip.compress(ex.response)
            ex.response_headers["Content-Encoding"] = "gzip"
            ex.response_headers["Vary"] = "Accept-Encoding"

    return middleware(correct_app(), after)


@variant("GET /v1/packages lists the largest package first, adds an Enterprise tier ($100.00 for $94.00, a better "
         "rate still) and a currency field on each",
         "public-facts gives an example response; the order of the list and further tiers are not said, and larger "
         "packages still get a better rate")
def packages_descending_extra_tier() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path != "/v1/packages" or ex.status != 200 or not isinstance(ex.json, dict):
            return
        body = ex.json
        packages = list(reversed(body.get("packages", [])))
        packages.insert(0, {"id": "enterprise", "name": "Enterprise", "price_cents": 10000,
                            "balance_display": "$94.00", "balance_microdollars": 94_000_000})
        for package in packages:
            package["currency"] = "usd"
        ex.set_json({**body, "packages": packages})

    return middleware(correct_app(), after)


@variant("a key sent to the public GET /v1/packages is still checked: an invalid one answers 401 invalid_api_key "
         "(as GitHub answers bad credentials on public endpoints); no key, or a valid one, lists the packages",
         "seed: 'public endpoint, no auth required' - requiring none; 401 invalid_api_key is for an invalid key on "
         "'All' endpoints")
def invalid_key_refused_on_public() -> Flask:
    def before(ex: Exchange) -> bool:
        auth = ex.header("Authorization")
        if ex.path == "/v1/packages" and auth is not None and auth not in VALID_KEYS:
            return ex.error(401, "invalid_api_key", "Invalid API key")
        return False

    return middleware(correct_app(), None, before)


# -- stream shapes -----------------------------------------------------------------------------


def _data(event: bytes) -> Any:
    if not event.startswith(b"data: {"):
        return None
    return json.loads(event[6:])


@variant("vLLM/Ollama-style stream chunks: the first chunk carries the role and the first piece of text together, "
         "and finish_reason (with the quota block when no usage chunk follows) rides on the last text chunk, with "
         "no separate empty finish chunk",
         "public-facts: stream: true answers with server-sent events, OpenAI style; how text is cut into chunks is "
         "not said (OpenAI-compatible servers cut it so)")
def stream_merged_role_and_finish() -> Flask:
    def after(ex: Exchange) -> None:
        if not (chat_path(ex) and ex.status == 200 and is_stream(ex)):
            return
        events = _events(ex)
        chunks = [_data(e) for e in events]
        text = [i for i, c in enumerate(chunks)
                if c and len(c.get("choices", [])) == 1 and set(c["choices"][0]["delta"]) == {"content"}]
        roles = [i for i, c in enumerate(chunks) if c and c.get("choices") and "role" in c["choices"][0]["delta"]]
        finishes = [i for i, c in enumerate(chunks)
                    if c and c.get("choices") and c["choices"][0].get("finish_reason") is not None]
        indexes = {c["choices"][0]["index"] for c in chunks if c and c.get("choices")}
        if len(indexes) != 1 or len(roles) != 1 or len(finishes) != 1 or not text:
            return  # several choices, tool calls, ...: left as they are
        role, finish = roles[0], finishes[0]
        if "tool_calls" in chunks[role]["choices"][0]["delta"] or chunks[role]["choices"][0]["delta"].get("content"):
            return
        first, last = chunks[text[0]], chunks[text[-1]]
        first["choices"][0]["delta"] = {**chunks[role]["choices"][0]["delta"], **first["choices"][0]["delta"]}
        last["choices"][0]["finish_reason"] = chunks[finish]["choices"][0]["finish_reason"]
        if "quota" in chunks[finish]:
            last["quota"] = chunks[finish]["quota"]
        out = []
        for i, (event, chunk) in enumerate(zip(events, chunks, strict=True)):
            if i in (role, finish):
                continue
            out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() if chunk is not None else event)
        ex.response = b"\n\n".join(out) + b"\n\n"

    return middleware(correct_app(), after)


@variant("the gateway always asks its provider for usage (stream_options.include_usage forced on every streamed "
         "chat, as OpenRouter and LiteLLM do): every stream ends with the empty-choices usage chunk carrying the "
         "quota block, and the other chunks carry usage: null",
         "public-facts: stream: true answers with server-sent events, OpenAI style, plus a quota object; "
         "openapi.yaml: the quota block rides on the stream's last chunk before [DONE]")
def usage_chunk_always() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and body.get("stream") is True:
            options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
            body["stream_options"] = {**options, "include_usage": True}
            ex.set_request_json(body)
        return False

    return middleware(correct_app(), None, before)




@variant("SSE written tersely: 'data:' with no space before the value, and every line ended by a lone CR (\\r)",
         "the docs say server-sent events; the SSE format makes the space after the colon optional and accepts CR, "
         "LF or CRLF as line ends")
def sse_terse_cr() -> Flask:
    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and is_stream(ex):
            ex.response = ex.response.replace(b"data: ", b"data:").replace(b"\n", b"\r")

    return middleware(correct_app(), after)


@variant("an older OpenAI-compatible provider API (as Azure OpenAI before 2024-09): stream_options is refused with "
         "400 bad_request \"Unrecognized request argument supplied: stream_options\", and a stream carries no usage "
         "(its quota block rides on the finish chunk)",
         "public-facts: requests carry model, messages, max_tokens and stream; stream_options is the contract's "
         "addition (x-quota-provenance: contract)")
def stream_options_unsupported() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and "stream_options" in body:
            return ex.error(400, "bad_request", "Unrecognized request argument supplied: stream_options")
        return False

    return middleware(correct_app(), None, before)


METERING_LAG_SECONDS = 60.0
_CHAT_USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend", "spend_microdollars",
                      "by_model")


@variant(f"GET /v1/me: grants are counted from the ledger at once, but chat usage (requests, tokens, spend, "
         f"by_model) comes from an asynchronous metering pipeline that lags by {METERING_LAG_SECONDS:g} s",
         "seed: GET /v1/me returns the authenticated user with a 30-day usage summary; public-facts lists its shape "
         "as undocumented, and the docs never say how fresh any part of it is (usage dashboards lag)")
def me_chat_usage_metered_async() -> Flask:
    lock = threading.Lock()
    snapshot: dict[str, tuple[float, dict[str, Any]]] = {}

    def after(ex: Exchange) -> None:
        if ex.method != "GET" or ex.path != "/v1/me" or ex.status != 200 or not isinstance(ex.json, dict):
            return
        body = ex.json
        usage = body.get("usage")
        if not isinstance(usage, dict):
            return
        who = ex.header("Authorization") or ""
        now = time.monotonic()
        with lock:
            taken = snapshot.get(who)
            if taken is None or now - taken[0] >= METERING_LAG_SECONDS:
                taken = snapshot[who] = (now, {f: usage.get(f) for f in _CHAT_USAGE_FIELDS})
        ex.set_json({**body, "usage": {**usage, **taken[1]}})

    return middleware(correct_app(), after)


COMPLETION_TOKENS_CAP = 16_384


@variant(f"the provider's own cap on completion tokens is passed through: max_tokens (or max_completion_tokens) above "
         f"{COMPLETION_TOKENS_CAP:,} answers 400 bad_request \"max_tokens is too large: N. This model supports at most "
         f"{COMPLETION_TOKENS_CAP} completion tokens, whereas you provided N.\" (OpenAI's answer for gpt-4o)",
         "public-facts: request and response are OpenAI-shaped, 400 bad_request for an invalid body; the docs set no "
         "bound on max_tokens (openapi.yaml's 1,000,000 is the contract's own), and every model caps its output")
def provider_completion_cap() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if not isinstance(body, dict):
            return False
        for field in ("max_tokens", "max_completion_tokens"):
            value = body.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > COMPLETION_TOKENS_CAP:
                return ex.error(400, "bad_request", f"{field} is too large: {value}. This model supports at most "
                                f"{COMPLETION_TOKENS_CAP} completion tokens, whereas you provided {value}.")
        return False

    return middleware(correct_app(), None, before)


@variant("when no usage chunk was asked for, the quota block rides on a chunk of its own after the finish chunk: "
         "empty choices, no usage, just the quota (then [DONE])",
         "public-facts: a quota object besides OpenAI's fields; openapi.yaml: the quota block rides on the stream's "
         "last chunk before [DONE] - here it is that chunk")
def quota_in_trailing_chunk() -> Flask:
    def after(ex: Exchange) -> None:
        if not (chat_path(ex) and ex.status == 200 and is_stream(ex)):
            return
        events = _events(ex)
        chunks = [_data(e) for e in events]
        if any(c is not None and c.get("choices") == [] for c in chunks):
            return  # a usage chunk carries it already
        carrier = next((i for i in range(len(chunks) - 1, -1, -1) if chunks[i] and "quota" in chunks[i]), None)
        if carrier is None:
            return
        quota = chunks[carrier].pop("quota")
        trailer = {k: v for k, v in chunks[carrier].items() if k in ("id", "object", "created", "model",
                                                                    "system_fingerprint")}
        trailer.update(choices=[], quota=quota)
        out = [b"data: " + json.dumps(c, separators=(",", ":")).encode() if c is not None else e
               for e, c in zip(events, chunks, strict=True)]
        out.insert(len(out) - 1, b"data: " + json.dumps(trailer, separators=(",", ":")).encode())
        ex.response = b"\n\n".join(out) + b"\n\n"

    return middleware(correct_app(), after)
