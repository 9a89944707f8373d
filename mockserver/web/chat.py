"""Chat completions on both paths: a JSON completion, or OpenAI-style server-sent events."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Response, request

from ..domain.chat_request import parse_chat_request
from ..domain.faults import MAX_LATENCY_MS
from .chat_render import completion_body, completion_events
from .presenters import json_response
from .simulation import CHUNK_DELAY_ENVIRON_KEY, add_applied_preference
from .state import Caller, MockState
from .validation import ValidatedRequest


def create_user_chat_completion(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    return _chat(state, req, req.path["external_user_id"])


def create_chat_completion(state: MockState, req: ValidatedRequest, caller: Caller) -> Response:
    # Without X-External-User-ID the developer pays; with it, that user does.
    return _chat(state, req, req.headers.get("x-external-user-id"))


def _chat(state: MockState, req: ValidatedRequest, user_id: str | None) -> Response:
    chat = parse_chat_request(req.body)
    outcome = state.service.chat(user_id, chat.model, chat.messages, chat.max_tokens, chat.options)
    billing_mode = "developer" if user_id is None else "user"
    top_logprobs = chat.options.top_logprobs
    if chat.stream:
        events = completion_events(outcome, chat.model, billing_mode, top_logprobs, chat.include_usage)
        asked = request.environ.get(CHUNK_DELAY_ENVIRON_KEY)
        if asked is not None:
            add_applied_preference(f"chunk-delay={asked}")
        delay_ms = state.config.stream_chunk_delay_ms if asked is None else asked
        if delay_ms:
            events = _paced(events, delay_ms / 1000, state.hold)
        return Response(events, mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
    return json_response(completion_body(outcome, chat.model, billing_mode, top_logprobs))


def _paced(events: Iterator[str], seconds: float, hold: Callable[[float], None]) -> Iterator[str]:
    """The events with a pause before each one after the first, as a model's tokens arrive, for
    MAX_LATENCY_MS in all at most (then the rest at once: a 128-choice answer paced 30 s an event
    would hold a server thread for hours). The charge is already applied: a client that stops
    reading has still paid for the chat."""
    left = MAX_LATENCY_MS / 1000
    for index, event in enumerate(events):
        if index and left > 0:
            pause = min(seconds, left)
            hold(pause)
            left -= pause
        yield event
