"""A charged fake completion in OpenAI's shapes: a ``chat.completion`` body, or the
``chat.completion.chunk`` events of a stream.

Both are rendered from the same :class:`ChatOutcome`, so a streamed answer has the same
choices, text, tool calls, usage and charge as the JSON one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..domain.completions import Choice, ToolCall, split_tokens
from ..domain.money import format_money
from ..domain.service import ChatOutcome

_TOKENS_PER_CHUNK = 3
_ARGUMENT_CHARS_PER_CHUNK = 16
_FINGERPRINT = "fp_quota_mock"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def completion_body(outcome: ChatOutcome, model: str, billing_mode: str, top_logprobs: int) -> dict[str, Any]:
    legacy = outcome.completion.legacy_functions
    return {
        "id": _completion_id(outcome),
        "object": "chat.completion",
        "created": int(outcome.created),
        "model": model,
        "system_fingerprint": _FINGERPRINT,
        "choices": [
            {
                "index": choice.index,
                "message": _message(choice, legacy),
                "finish_reason": choice.finish_reason,
                "logprobs": _logprobs(choice.logprob_tokens, top_logprobs),
            }
            for choice in outcome.completion.choices
        ],
        "usage": _usage(outcome),
        "quota": _quota(outcome, billing_mode),
    }


def completion_events(
    outcome: ChatOutcome, model: str, billing_mode: str, top_logprobs: int, include_usage: bool
) -> Iterator[str]:
    """Each choice's chunks in turn (role, pieces, finish), then the usage chunk when asked
    for; the quota block rides on the last chunk before ``[DONE]``."""
    base: dict[str, Any] = {
        "id": _completion_id(outcome),
        "object": "chat.completion.chunk",
        "created": int(outcome.created),
        "model": model,
        "system_fingerprint": _FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None  # OpenAI: null on every chunk but the usage chunk
    quota = _quota(outcome, billing_mode)
    choices = outcome.completion.choices
    legacy = outcome.completion.legacy_functions
    for position, choice in enumerate(choices):
        for delta, logprobs in _deltas(choice, legacy, top_logprobs):
            yield _event(base, choice.index, delta, None, logprobs)
        last = position == len(choices) - 1 and not include_usage
        yield _event(base, choice.index, {}, choice.finish_reason, None, quota if last else None)
    if include_usage:
        yield "data: " + _encode({**base, "choices": [], "usage": _usage(outcome), "quota": quota}) + "\n\n"
    yield "data: [DONE]\n\n"


def _event(
    base: dict[str, Any],
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None,
    logprobs: dict[str, Any] | None,
    quota: dict[str, Any] | None = None,
) -> str:
    chunk = {
        **base,
        "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
    }
    if quota is not None:
        chunk["quota"] = quota
    return "data: " + _encode(chunk) + "\n\n"


def _deltas(choice: Choice, legacy: bool, top_logprobs: int) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    if choice.tool_calls:
        yield {"role": "assistant", "content": None}, None
        for position, call in enumerate(choice.tool_calls):
            pieces = _pieces(call.arguments, _ARGUMENT_CHARS_PER_CHUNK)
            if legacy:
                yield {"function_call": {"name": call.name, "arguments": ""}}, None
                for piece in pieces:
                    yield {"function_call": {"arguments": piece}}, None
                continue
            yield {"tool_calls": [_call_start(position, call)]}, None
            for piece in pieces:
                yield {"tool_calls": [{"index": position, call.kind: {_input_key(call): piece}}]}, None
        return
    yield {"role": "assistant", "content": "", "refusal": None}, None
    tokens = split_tokens(choice.text or "")
    for start in range(0, len(tokens), _TOKENS_PER_CHUNK):
        piece = tokens[start : start + _TOKENS_PER_CHUNK]
        logprobs = _logprobs(tuple(piece), top_logprobs) if choice.logprob_tokens is not None else None
        yield {"content": "".join(piece)}, logprobs


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _input_key(call: ToolCall) -> str:
    return "arguments" if call.kind == "function" else "input"


def _call_start(position: int, call: ToolCall) -> dict[str, Any]:
    return {"index": position, "id": call.id, "type": call.kind, call.kind: {"name": call.name, _input_key(call): ""}}


def _message(choice: Choice, legacy: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
    if choice.tool_calls and legacy:
        call = choice.tool_calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
    elif choice.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": c.kind, c.kind: {"name": c.name, _input_key(c): c.arguments}}
            for c in choice.tool_calls
        ]
    return message


def _logprobs(tokens: tuple[str, ...] | None, top: int) -> dict[str, Any] | None:
    """The mock is certain of every token (log probability 0); its alternatives are less likely."""
    if tokens is None:
        return None

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {
        "content": [
            {**entry(token, 0.0), "top_logprobs": [entry(token + "~" * k, -2.5 * k) for k in range(top)]}
            for token in tokens
        ],
        "refusal": None,
    }


def _completion_id(outcome: ChatOutcome) -> str:
    return "chatcmpl-" + outcome.charge.ledger_id.removeprefix("ledg_")


def _usage(outcome: ChatOutcome) -> dict[str, int]:
    completion = outcome.completion
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.total_tokens,
    }


def _quota(outcome: ChatOutcome, billing_mode: str) -> dict[str, Any]:
    charge = outcome.charge
    return {
        "credits_used": charge.amount,
        "balance_before": format_money(charge.balance_before),
        "balance_after": format_money(charge.balance_after),
        "billing_mode": billing_mode,
    }
