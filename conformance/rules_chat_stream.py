"""The rules of streamed chats: ``stream: true`` answers server-sent events, each a JSON
chat.completion.chunk, ending ``data: [DONE]``; and a streamed chat counts and charges as the
same chat unstreamed (the streamed path as a second, less-tested copy of the JSON one).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from mockserver.contract import CONTRACT
from mockserver.domain.money import MICROS_PER_CENT

from .actions import chat_body, code_text, header_chat, shown, user_balance, user_chat
from .chat_helpers import BILLING, NEEDS, charged, funded_user, small_chat
from .checks import json_integer, parse_money
from .engine import Exchange
from .properties import Probe, usd
from .registry import Cost, probe
from .sse import sse_events

CENT = MICROS_PER_CENT


@probe("chat.stream_sse", sources=("public-facts: stream: true answers with server-sent events, OpenAI style.",),
       elements=("#/components/responses/ChatCompletion",), cost=Cost(CENT, 2), needs=NEEDS, stage=9)
def chat_stream_sse(p: Probe) -> None:
    """``stream: true`` answers text/event-stream: ``data:`` events, each a JSON
    chat.completion.chunk (the answer's chunks under one id), the last one ``data: [DONE]``."""
    user = funded_user(p, 1)  # a cent pays for a small chat many times over
    body = small_chat(p, stream=True)
    if p.first:  # as OpenAI's SDKs send every request: a stream must not be negotiated away by it
        exchange = user_chat(p, user, body, accept="application/json")
    else:
        exchange = user_chat(p, user, body) if p.draw(st.booleans()) else header_chat(p, user, body)
    if not exchange.ok:
        p.fail([exchange], "A streamed chat was refused",
               f"a funded user's chat with stream: true answered {exchange.status} {code_text(exchange)}")
        return
    content_type = exchange.header("Content-Type") or ""
    events = sse_events(exchange)
    problems = []
    if not content_type.startswith("text/event-stream"):
        problems.append(f"Content-Type is {shown(content_type)}, not text/event-stream")
    if not events or events[-1] != "[DONE]":
        problems.append("the stream does not end with data: [DONE]"
                        + (f" (its last event is {events[-1][:60]!r})" if events else " (no data: events at all)"))
    ids: set[str] = set()
    for payload in events[:-1]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            problems.append(f"an event is not JSON: {payload[:60]!r}")
            break
        if not isinstance(chunk, dict) or chunk.get("object") != "chat.completion.chunk":
            problems.append(f"an event is not a chat.completion.chunk: {payload[:60]!r}")
            break
        if chunk.get("choices") and isinstance(chunk.get("id"), str) and chunk["id"]:
            ids.add(chunk["id"])  # the answer's chunks; a usage or quota chunk may stand apart
    if len(ids) > 1:
        problems.append(f"the chunks of one answer carry {len(ids)} different ids (OpenAI's chunks share the "
                        f"completion's id): {sorted(ids)[:3]}")
    p.require(not problems, [exchange], "A streamed chat is not server-sent events ending [DONE]",
              "; ".join(problems))


# max_tokens of the paired chats: one token (an answer cut at once: a stream that ignores the
# limit, or counts a token too many, shows), and a limit past a short answer's length (a stream
# charged for its limit rather than for its answer shows).
PAIRED_LIMITS = (1, 64)


@probe("chat.stream_parity", sources=("public-facts: stream: true answers with server-sent events, OpenAI style.",
                                      *BILLING),
       elements=("#/components/schemas/ChatCompletionChunk",), cost=Cost(2 * CENT, 1),
       needs=NEEDS, stage=9)
def chat_stream_parity(p: Probe) -> None:
    """A chat streamed (with ``stream_options.include_usage``) and the same chat not streamed,
    for one funded user: the stream's usage counts no more completion tokens than max_tokens,
    and prompt + completion in total, and a stream that counts answer tokens carries some of the
    answer; with the same usage it is charged the same; its last quota block ends on the balance
    read right after, and the user's balance drops by exactly what the two chats report (the
    same prompt tokens both ways is the contract's reading)."""
    funds = 2  # four small chats: two cents even where a chat is charged a whole cent
    user = funded_user(p, funds)
    held = funds * CENT
    limits = PAIRED_LIMITS if p.first else (p.draw(st.sampled_from((1, 2, 8, 64))),)
    for limit in limits:
        body = chat_body(p, max_tokens=limit)
        streamed = user_chat(p, user, {**body, "stream": True, "stream_options": {"include_usage": True}})
        if streamed.status == 400:  # the docs name no stream_options: a server may refuse the field
            streamed = user_chat(p, user, {**body, "stream": True})
        if not streamed.ok:
            p.fail([streamed], "A streamed chat was refused",
                   f"a funded user's chat with stream: true answered {streamed.status} {code_text(streamed)}")
            return
        after_stream = user_balance(p, user)
        plain = user_chat(p, user, body)
        after_plain = user_balance(p, user)
        steps = [streamed, after_stream.exchange, plain, after_plain.exchange]
        if not plain.ok:
            p.skip(f"the same chat without stream answered {plain.status} {code_text(plain)} (see chat.user_debit)")
        problems, stream_cost, plain_cost = [], charged(streamed), charged(plain)
        chunks = _chunks(streamed)
        usage = next((c["usage"] for c in reversed(chunks) if isinstance(c.get("usage"), dict)), None)
        quota = next((c["quota"] for c in reversed(chunks) if isinstance(c.get("quota"), dict)), None)
        problems += _usage_problems("the stream's", usage, limit)
        if _answers_tokens(usage) and not _carries_an_answer(chunks):
            problems.append(f"the stream's usage counts {usage.get('completion_tokens')} completion tokens, yet no "
                            "chunk carries any of the answer (content, refusal or a tool call)")
        problems += _usage_problems("the plain chat's", plain.field("usage"), limit)
        # The same prompt counted otherwise streamed (a gateway metering streams with its own
        # tokenizer) breaks only openapi.yaml's "usage equal to the same request's".
        prompts = (_tokens(usage) or (None,))[0], (_tokens(plain.field("usage")) or (None,))[0]
        contract_only = [] if None in prompts or prompts[0] == prompts[1] else [
            f"the stream's usage counts {prompts[0]} prompt tokens, the same chat unstreamed {prompts[1]}"]
        if (stream_cost is not None and plain_cost is not None and _tokens(usage) is not None
                and _tokens(usage) == _tokens(plain.field("usage")) and stream_cost != plain_cost):
            problems.append(f"with the same usage {_tokens(usage)}, the stream cost {stream_cost} micro-dollars and "
                            f"the plain chat {plain_cost}")
        if stream_cost is not None:
            ends_on = parse_money(quota.get("balance_after")) if isinstance(quota, dict) else None
            if isinstance(quota, dict) and after_stream.ok and ends_on != after_stream.cents:
                problems.append(f"the stream's quota block ends on {shown(quota.get('balance_after'))}, the balance "
                                f"read right after is {after_stream.shown}")
            if not after_stream.agrees_with(held - stream_cost):
                problems.append(f"the user held {usd(held)}, the stream cost {stream_cost} micro-dollars, and the "
                                f"balance reads {after_stream.shown}")
        p.require(not problems and not contract_only, steps,
                  "A streamed chat did not count or charge as the same chat unstreamed",
                  f"max_tokens {limit}: " + "; ".join(problems or contract_only), None if problems else CONTRACT)
        if problems or stream_cost is None or plain_cost is None:
            return
        held -= stream_cost + plain_cost


def _chunks(exchange: Exchange) -> list[dict[str, Any]]:
    chunks = []
    for payload in sse_events(exchange):
        try:
            chunk = json.loads(payload)
        except ValueError:
            continue
        if isinstance(chunk, dict):
            chunks.append(chunk)
    return chunks


def _answers_tokens(usage: Any) -> bool:
    """Whether a usage block counts completion tokens that are the answer's (not reasoning's,
    which a stream does not show)."""
    tokens = _tokens(usage)
    if tokens is None or not tokens[1]:
        return False
    details = usage.get("completion_tokens_details")
    reasoning = json_integer(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    return not reasoning


def _carries_an_answer(chunks: list[dict[str, Any]]) -> bool:
    """Whether any chunk's delta holds a piece of the answer: text, a refusal or a tool call."""
    for chunk in chunks:
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            if any(isinstance(delta.get(k), str) and delta[k] for k in ("content", "refusal")):
                return True
            if delta.get("tool_calls") or delta.get("function_call"):
                return True
    return False


def _tokens(usage: Any) -> tuple[int | None, int | None] | None:
    if not isinstance(usage, dict):
        return None
    return json_integer(usage.get("prompt_tokens")), json_integer(usage.get("completion_tokens"))


def _usage_problems(whose: str, usage: Any, limit: int) -> list[str]:
    """A usage block's counts against the limit and its own total."""
    tokens = _tokens(usage)
    if tokens is None:
        return []
    prompt, completion = tokens
    total = json_integer(usage.get("total_tokens"))
    problems = []
    if completion is not None and completion > limit:
        problems.append(f"{whose} usage counts {completion} completion tokens, past max_tokens {limit}")
    if None not in (prompt, completion, total) and total != prompt + completion:  # type: ignore[operator]
        problems.append(f"{whose} usage totals {total} tokens, not {prompt} + {completion}")
    return problems
