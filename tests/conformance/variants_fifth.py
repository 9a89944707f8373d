"""Correct deployments a fifth adversary round (ff5) tried against the suite: real LLM-gateway
behaviours where the vendor's docs are silent. Registered by variants.py's last import.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from mockserver.domain.completions import complete
from mockserver.domain.errors import INSUFFICIENT_BALANCE, QuotaError

from .mutants.kit import (
    GRANT,
    Exchange,
    chat_answers_rewritten,
    chat_path,
    correct_app,
    is_stream,
    middleware,
    rewrite_answer,
    rewrite_events,
    service_of,
)
from .variants import variant
from .variants_fourth import developer_usage_app

# -- helpers ---------------------------------------------------------------------------------


def _chat_request_flags() -> tuple[threading.local, Callable[[Exchange], bool]]:
    """A thread-local holding the current chat request's body (``body``) and whether it streams."""
    local = threading.local()

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        local.body = body if isinstance(body, dict) else None
        local.stream = isinstance(body, dict) and body.get("stream") is True
        return False

    return local, before


def _chat_service(app: Flask, change: Callable[[Any, Any], Any], charge: Callable[[int], int] | None = None,
                  refuse: Callable[[Any, Any, int, int | None], bool] | None = None) -> None:
    """Replace the service's chat: ``change(completion, max_tokens)`` rewrites the provider's
    completion before it is priced; ``charge`` rewrites the price; ``refuse(service, user,
    estimate, balance)`` may refuse with 402 before the provider is called."""
    service = service_of(app)

    def chat(user_id: Any, model: str, messages: Any, max_tokens: Any, options: Any = None) -> Any:
        from mockserver.domain.service import ChatOutcome

        if user_id is not None:
            service.user_balance(user_id)
        if refuse is not None:
            held = service.user_balance(user_id) if user_id is not None else service.developer_balance()
            from mockserver.domain.completions import prompt_tokens
            estimate = service.seed.prices.cost(model, prompt_tokens(messages, options.tools if options else ()),
                                                max_tokens or 4096)
            if refuse(service, user_id, estimate, held):
                raise QuotaError(INSUFFICIENT_BALANCE, "User balance too low for this request's max_tokens")
        completion = change(complete(model, messages, max_tokens, options), max_tokens)
        cost = service.seed.prices.cost(model, completion.prompt_tokens, completion.completion_tokens)
        if charge is not None:
            cost = charge(cost)
        now = service.clock.now()
        result = service.store.apply_charge(user_id, cost, model, completion.prompt_tokens,
                                            completion.completion_tokens, now)
        return ChatOutcome(completion, result, now)

    service.chat = chat  # type: ignore[method-assign]


def _with_text(completion: Any, tokens: int, text: str | None = None, finish: str | None = None) -> Any:
    choices = tuple(dataclasses.replace(c, completion_tokens=tokens,
                                        text=(c.text or "")[: tokens * 4] if text is None else text,
                                        finish_reason=finish or c.finish_reason,
                                        logprob_tokens=None if c.logprob_tokens is None else
                                        c.logprob_tokens[:tokens])
                    for c in completion.choices)
    return dataclasses.replace(completion, choices=choices)


# -- variants --------------------------------------------------------------------------------


@variant("streamed chats are metered by the gateway itself (its own tokenizer, as LiteLLM or Helicone count a "
         "stream): the stream's usage counts 3 more prompt tokens than the provider's count on the JSON path, and "
         "the stream is charged by that usage; each answer's charge matches its own usage and the balance",
         "public-facts: stream: true answers with server-sent events, OpenAI style, and the response carries usage; "
         "the docs never say a stream's token counts equal the unstreamed request's, nor which tokenizer meters "
         "them ('Content, usage and charge equal' is openapi.yaml's own sentence)")
def stream_metered_by_gateway() -> Flask:
    app = correct_app()
    local, before = _chat_request_flags()

    def change(completion: Any, max_tokens: Any) -> Any:
        if getattr(local, "stream", False):
            return dataclasses.replace(completion, prompt_tokens=completion.prompt_tokens + 3)
        return completion

    _chat_service(app, change)
    return middleware(app, None, before)


@variant("the provider answers max_tokens: 1 with an empty message and 0 completion tokens (finish_reason "
         "length: the one token it produced was a stripped leading space/BOS); the chat is charged for its prompt",
         "the docs say only that requests carry max_tokens and responses usage (public-facts); what a provider "
         "produces under a one-token limit is not documented, and OpenAI's own models can answer \"\" there")
def zero_tokens_at_limit_one() -> Flask:
    app = correct_app()

    def change(completion: Any, max_tokens: Any) -> Any:
        return _with_text(completion, 0, "", "length") if max_tokens == 1 else completion

    _chat_service(app, change)
    return app


@variant("completions are sampled (temperature 1): the same request answers a different length each time, "
         "from one token up to max_tokens, and is charged for what was produced",
         "a chat gateway fronts an LLM: the docs never say completions are deterministic; usage and quota "
         "report what each answer cost")
def nondeterministic_completions() -> Flask:
    app = correct_app()
    rng = random.Random(5)
    lock = threading.Lock()

    def change(completion: Any, max_tokens: Any) -> Any:
        most = max(c.completion_tokens for c in completion.choices)
        if most <= 1:
            return completion
        with lock:
            tokens = rng.randint(1, most)
        return _with_text(completion, tokens, finish="stop")

    _chat_service(app, change)
    return app


@variant("a request's max_tokens is a budget the gateway reserves before calling the provider: a chat whose "
         "prompt plus max_tokens (4,096 when absent) at the model's price exceeds the balance answers 402 "
         "insufficient_balance, before any completion (as OpenRouter does)",
         "seed: 402 insufficient_balance 'User balance too low'; public-facts: requests get 402 at zero - the docs "
         "never say how low is too low, and a gateway cannot know a completion's cost before it runs")
def preauthorized_max_tokens() -> Flask:
    app = correct_app()

    def refuse(service: Any, user: Any, estimate: int, held: int | None) -> bool:
        return held is not None and estimate > held

    _chat_service(app, lambda c, m: c, refuse=refuse)
    return app


@variant("each chat's charge is rounded up to the next $0.0001 (100 micro-dollars), the gateway's billing "
         "precision; quota.credits_used and the debit are the rounded charge",
         "public-facts: effective_cost = base_cost * (1 + markup) and money is tracked in micro-dollars - how the "
         "cost is rounded to the ledger's precision is undocumented (the mock itself rounds up)")
def charge_rounded_to_hundredth_cent() -> Flask:
    app = correct_app()
    _chat_service(app, lambda c, m: c, charge=lambda cost: -(-cost // 100) * 100)
    return app


@variant("Express-style Content-Types: application/json; charset=utf-8 on every JSON answer, text/event-stream; "
         "charset=utf-8 on streams",
         "the docs show JSON bodies and say streams are server-sent events; a charset parameter is how Express, "
         "NestJS and Fastify send both")
def charset_content_types() -> Flask:
    def after(ex: Exchange) -> None:
        kind = ex.response_headers.get("Content-Type", "")
        if kind.startswith("application/json") and "charset" not in kind:
            ex.response_headers["Content-Type"] = "application/json; charset=utf-8"
        elif kind.startswith("text/event-stream") and "charset" not in kind:
            ex.response_headers["Content-Type"] = "text/event-stream; charset=utf-8"

    return middleware(correct_app(), after)


@variant("with include_usage, every chunk carries the usage so far (vLLM's continuous_usage_stats), the last "
         "chunk the whole request's",
         "public-facts: stream: true answers with server-sent events, OpenAI style; what a chunk's usage holds "
         "before the last is openapi.yaml's choice (contract)")
def usage_on_every_chunk() -> Flask:
    def after(ex: Exchange) -> None:
        if not chat_path(ex) or ex.status != 200 or not is_stream(ex):
            return
        final = None
        for line in ex.response.split(b"\n"):
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if isinstance(chunk.get("usage"), dict):
                    final = chunk["usage"]
        if final is None:
            return
        seen = [0]

        def change(chunk: dict[str, Any]) -> dict[str, Any]:
            if "usage" in chunk and chunk["usage"] is None:
                for choice in chunk.get("choices", []):
                    seen[0] += max(1, len((choice.get("delta") or {}).get("content") or "") // 4)
                done = min(seen[0], final["completion_tokens"])
                chunk["usage"] = {"prompt_tokens": final["prompt_tokens"], "completion_tokens": done,
                                  "total_tokens": final["prompt_tokens"] + done}
            return chunk

        rewrite_events(ex, change)

    return middleware(correct_app(), after)


@variant("streams always report usage and the quota block on the last finish chunk (choices non-empty), with or "
         "without stream_options.include_usage, and send no separate empty-choices usage chunk (as Anthropic- "
         "and Gemini-backed gateways do)",
         "public-facts: stream: true answers with server-sent events, OpenAI style; the docs name no "
         "stream_options, and which chunk carries usage is openapi.yaml's choice (contract)")
def usage_on_finish_chunk() -> Flask:
    def after(ex: Exchange) -> None:
        if not chat_path(ex) or ex.status != 200 or not is_stream(ex):
            return
        chunks = [json.loads(line[6:]) for line in ex.response.split(b"\n") if line.startswith(b"data: {")]
        usage = next((c["usage"] for c in chunks if isinstance(c.get("usage"), dict)), None)
        quota = next((c["quota"] for c in reversed(chunks) if isinstance(c.get("quota"), dict)), None)
        finishes = [i for i, c in enumerate(chunks) if c.get("choices") and c["choices"][0].get("finish_reason")]
        last_finish = finishes[-1] if finishes else None
        out: list[dict[str, Any]] = []
        for i, chunk in enumerate(chunks):
            if not chunk.get("choices") and isinstance(chunk.get("usage"), dict):
                continue  # the separate usage chunk: folded into the finish chunk
            chunk.pop("usage", None)
            chunk.pop("quota", None)
            if i == last_finish:
                if usage is not None:
                    chunk["usage"] = usage
                if quota is not None:
                    chunk["quota"] = quota
            out.append(chunk)
        ex.response = b"".join(b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in out)
        ex.response += b"data: [DONE]\n\n"

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and body.get("stream") is True:
            body["stream_options"] = {"include_usage": True}  # the gateway always asks its provider for usage
            ex.set_request_json(body)
        return False

    app = correct_app()
    return middleware(app, after, before)


@variant("grant ledger ids are numbered per user (ledg_1, ledg_2, ... in each user's own ledger), as a ledger "
         "table keyed by (external_user_id, entry number) gives them; a replay answers its original's",
         "seed: ledger_id 'ledg_123' in a response that names its external_user_id, and 'Notes stored in the "
         "ledger' of that user: the docs never say a ledger id is unique across users")
def per_user_ledger_ids() -> Flask:
    lock = threading.Lock()
    per_user: dict[str, int] = {}
    renamed: dict[str, str] = {}

    def after(ex: Exchange) -> None:
        if ex.path != GRANT or ex.status != 200 or not isinstance(ex.json, dict):
            return
        body = ex.json
        original, user = body.get("ledger_id"), body.get("external_user_id")
        with lock:
            if original not in renamed:
                per_user[user] = per_user.get(user, 0) + 1
                renamed[original] = f"ledg_{per_user[user]}"
            body["ledger_id"] = renamed[original]
        ex.set_json(body)

    return middleware(correct_app(), after)


@variant("the router matches paths case-insensitively and redirects a trailing slash with 308 (to the path "
         "without it), both behind the same key check: /V1/BALANCE with the key is the developer balance, without "
         "it 401",
         "the docs give each path in lower case and say nothing of other spellings; a 308 is no 2xx, and the key "
         "is checked on every form")
def case_insensitive_router_308_slash() -> Flask:
    from urllib.parse import quote

    def before(ex: Exchange) -> bool:
        if len(ex.path) > 1 and ex.path.endswith("/"):
            location = quote(ex.path.rstrip("/"), safe="/%") + (f"?{ex.query}" if ex.query else "")
            ex.status, ex.response = 308, b""
            ex.response_headers = {"Location": location}
            return True
        parts = ex.path.split("/")
        # Static segments only: /v1/users/{id}/... keeps its id as sent.
        lowered = [s if (i == 3 and len(parts) > 3 and parts[2].lower() == "users") else s.lower()
                   for i, s in enumerate(parts)]
        ex.path = "/".join(lowered)
        return False

    return middleware(correct_app(), None, before)


@variant("OpenAI's answers passed through whole: the response model is the dated snapshot "
         "(gpt-4o-mini-2024-07-18 for gpt-4o-mini), usage carries prompt_tokens_details and "
         "completion_tokens_details, service_tier \"default\", messages carry annotations: [], and stream chunks "
         "carry an obfuscation field",
         "public-facts: request and response are OpenAI-shaped; OpenAI answers exactly so")
def openai_passthrough_fields() -> Flask:
    def enrich(chunk: dict[str, Any]) -> dict[str, Any]:
        model = chunk.get("model")
        if isinstance(model, str) and model == "gpt-4o-mini":
            chunk["model"] = "gpt-4o-mini-2024-07-18"
        elif isinstance(model, str) and model == "gpt-4o":
            chunk["model"] = "gpt-4o-2024-08-06"
        chunk["service_tier"] = "default"
        if isinstance(chunk.get("usage"), dict):
            chunk["usage"]["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
            chunk["usage"]["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0,
                                                           "accepted_prediction_tokens": 0,
                                                           "rejected_prediction_tokens": 0}
        for choice in chunk.get("choices", []):
            if isinstance(choice.get("message"), dict):
                choice["message"]["annotations"] = []
        if chunk.get("object") == "chat.completion.chunk":
            chunk["obfuscation"] = "a1B2c3"
        return chunk

    return chat_answers_rewritten(enrich)


@variant("401 answers carry WWW-Authenticate: Bearer realm=\"quota\", error=\"invalid_token\" (RFC 6750), and "
         "every answer an X-Quota-Api-Version header",
         "seed: 401 invalid_api_key for a missing or invalid key; the docs say nothing of headers, and RFC 6750 "
         "asks a Bearer server to send WWW-Authenticate")
def www_authenticate_on_401() -> Flask:
    def after(ex: Exchange) -> None:
        ex.response_headers["X-Quota-Api-Version"] = "2026-01-01"
        if ex.status == 401:
            ex.response_headers["WWW-Authenticate"] = 'Bearer realm="quota", error="invalid_token"'

    return middleware(correct_app(), after)


@variant("a grant answers 202 Accepted (applied synchronously, body as documented); its replay answers 202 too",
         "the seed shows the grant's response body but never its status code")
def grant_202_accepted() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path == GRANT and ex.status == 200:
            ex.status = 202

    return middleware(correct_app(), after)


@variant("the gateway routes only gpt-4o-mini, and refuses any other model with 400 bad_request in its own words: "
         "\"`gpt-4o` is not enabled for this app\"",
         "the docs name no model (openapi.yaml's x-quota-plain-pattern for model is '^gpt-4o-mini$'); message texts "
         "are not documented (only the envelope's code and message members are), so the refusal's wording is the "
         "deployment's")
def only_mini_plain_refusal_text() -> Flask:
    from .variants import _bad_request

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return _bad_request(ex, f"`{body['model']}` is not enabled for this app")
        return False

    return middleware(correct_app(), None, before)


EXPRESS_JSON_LIMIT = 100 * 1024


@variant(f"a Node (Express) gateway: JSON bodies over body-parser's default limit ({EXPRESS_JSON_LIMIT // 1024} KB) "
         "answer 413 payload_too_large in the envelope, and it routes only gpt-4o-mini (400 bad_request \"The model "
         "`gpt-4o` does not exist or you do not have access to it\")",
         "the docs set no body limit (openapi.yaml's 64 MiB for a chat is the contract's choice, x-quota-body-limit); "
         "the model allow-list is the existing only_documented_model variant")
def express_body_limit_mini_only() -> Flask:
    from .variants import _bad_request

    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and len(ex.body) > EXPRESS_JSON_LIMIT:
            return ex.error(413, "payload_too_large", "request entity too large")
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return _bad_request(ex, f"The model `{body['model']}` does not exist or you do not have access to it")
        return False

    return middleware(correct_app(), None, before)


@variant("an edge (load balancer) answers every HEAD itself with 200 and no body, for any path, without forwarding "
         "it: nothing of the account (not even whether a user exists) is in the answer",
         "the docs define GET and POST operations only; HEAD is no documented operation, and an answer identical "
         "for every path leaks nothing the key protects")
def edge_answers_head() -> Flask:
    app = correct_app()
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "HEAD":
            start_response("200 OK", [("Content-Length", "0"), ("Server", "edge")])
            return [b""]
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


@variant("GET /v1/me's usage counts every chat's requests and tokens, but its spend (spend, spend_microdollars, "
         "by_model spend) is what the developer paid: chats billed to users' own balances add no spend",
         "public-facts: 'The shape of /v1/me and its 30-day usage summary' is not documented anywhere; the "
         "authenticated user is the developer, and user-billed chats are paid by the users")
def me_spend_developer_paid_only() -> Flask:
    def spend_of_own(everyone: Any, own: Any) -> Any:
        usage = dataclasses.replace(everyone, by_model={
            name: dataclasses.replace(m, spend=own.by_model[name].spend if name in own.by_model else 0)
            for name, m in everyone.by_model.items()})
        usage.spend = own.spend
        return usage

    return developer_usage_app(spend_of_own)


@variant("the gateway routes only gpt-4o-mini and passes OpenAI's own refusal of any other model through: 404 "
         "model_not_found \"The model `gpt-4o` does not exist or you do not have access to it.\"",
         "public-facts: request and response are OpenAI-shaped, and the docs name no model; this is OpenAI's "
         "answer to an unknown model (the suite's model fallback names it)")
def only_mini_openai_404() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] != "gpt-4o-mini":
            return ex.error(404, "model_not_found",
                            f"The model `{body['model']}` does not exist or you do not have access to it.")
        return False

    return middleware(correct_app(), None, before)


@variant("an Azure OpenAI-backed gateway: each stream opens with a chunk of empty choices carrying "
         "prompt_filter_results, and every choice carries content_filter_results",
         "public-facts: stream: true answers with server-sent events, OpenAI style; Azure OpenAI streams so")
def azure_filter_results_in_stream() -> Flask:
    def after(ex: Exchange) -> None:
        if not chat_path(ex) or ex.status != 200 or not is_stream(ex):
            return
        first = None

        def change(chunk: dict[str, Any]) -> dict[str, Any]:
            nonlocal first
            for choice in chunk.get("choices", []):
                choice["content_filter_results"] = {"hate": {"filtered": False, "severity": "safe"}}
            if first is None:
                first = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
            return chunk

        rewrite_events(ex, change)
        if first is not None:
            opening = {**first, "choices": [], "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}]}
            ex.response = b"data: " + json.dumps(opening).encode() + b"\n\n" + ex.response

    return middleware(correct_app(), after)


@variant("the provider caches prompts (as OpenAI, DeepSeek and Anthropic do): a request repeating a prompt it saw "
         "in the last 5 minutes bills its prompt tokens at half price, reports them in "
         "usage.prompt_tokens_details.cached_tokens, and is charged so",
         "public-facts: effective_cost = base_cost * (1 + developer_markup_percentage) - the base cost is the "
         "provider's, and a provider's cached input is cheaper; the docs never say equal usage costs the same")
def provider_prompt_cache() -> Flask:
    from mockserver.domain.service import ChatOutcome

    app = correct_app()
    service = service_of(app)
    seen: set[Any] = set()
    lock = threading.Lock()
    local = threading.local()

    def chat(user_id: Any, model: str, messages: Any, max_tokens: Any, options: Any = None) -> Any:
        if user_id is not None:
            service.user_balance(user_id)
        completion = complete(model, messages, max_tokens, options)
        key = (model, tuple((m.role, m.content) for m in messages))
        with lock:
            hit = key in seen
            seen.add(key)
        price = service.seed.prices.price_of(model)
        input_micros = price.input_per_million * completion.prompt_tokens // (2 if hit else 1)
        numerator = (input_micros + completion.completion_tokens * price.output_per_million) \
            * (100 + service.seed.prices.markup_percent)
        cost = -(-numerator // (1_000_000 * 100))
        local.cached = completion.prompt_tokens if hit else 0
        now = service.clock.now()
        charge = service.store.apply_charge(user_id, cost, model, completion.prompt_tokens,
                                            completion.completion_tokens, now)
        return ChatOutcome(completion, charge, now)

    service.chat = chat  # type: ignore[method-assign]

    def after(ex: Exchange) -> None:
        if not chat_path(ex) or ex.status != 200:
            return

        def add(chunk: dict[str, Any]) -> dict[str, Any]:
            if isinstance(chunk.get("usage"), dict):
                chunk["usage"]["prompt_tokens_details"] = {"cached_tokens": getattr(local, "cached", 0)}
            return chunk

        rewrite_answer(ex, add)

    return middleware(app, after)
