"""Chat completions on both paths: a JSON completion, or OpenAI-style server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Response

from ..domain.completions import Message
from ..domain.money import format_money
from ..domain.service import ChatOutcome
from .presenters import json_response
from .state import Caller, MockState
from .validation import ValidatedRequest

_WORDS_PER_CHUNK = 3


def create_user_chat_completion(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    return _chat(state, req, req.path["external_user_id"])


def create_chat_completion(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    # Without X-External-User-ID the developer pays; with it, that user does.
    return _chat(state, req, req.headers.get("x-external-user-id"))


def _chat(state: MockState, req: ValidatedRequest, user_id: str | None) -> Response:
    body = req.body
    model = body["model"]
    messages = [Message(m["role"], m["content"]) for m in body["messages"]]
    outcome = state.service.chat(user_id, model, messages, body.get("max_tokens"))
    billing_mode = "developer" if user_id is None else "user"
    if body.get("stream"):
        return Response(
            _events(outcome, model, billing_mode), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    return json_response(_completion_body(outcome, model, billing_mode))


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


def _completion_body(outcome: ChatOutcome, model: str, billing_mode: str) -> dict[str, Any]:
    return {
        "id": _completion_id(outcome),
        "object": "chat.completion",
        "created": int(outcome.created),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": outcome.completion.text},
                "finish_reason": outcome.completion.finish_reason,
            }
        ],
        "usage": _usage(outcome),
        "quota": _quota(outcome, billing_mode),
    }


def _events(outcome: ChatOutcome, model: str, billing_mode: str) -> Iterator[str]:
    """``chat.completion.chunk`` events: the role, the text a few words at a time, the finish
    (with usage and the quota block, already charged), then ``[DONE]``."""
    base = {
        "id": _completion_id(outcome),
        "object": "chat.completion.chunk",
        "created": int(outcome.created),
        "model": model,
    }

    def event(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
        return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"

    yield event({"role": "assistant", "content": ""})
    words = outcome.completion.text.split(" ")
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        piece = " ".join(words[start : start + _WORDS_PER_CHUNK])
        yield event({"content": piece if start == 0 else " " + piece})
    yield event({}, outcome.completion.finish_reason, usage=_usage(outcome), quota=_quota(outcome, billing_mode))
    yield "data: [DONE]\n\n"
