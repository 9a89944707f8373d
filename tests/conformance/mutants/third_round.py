"""Bugs a third adversary round found the suite passing: the streamed-chat code path as a
second, less-tested copy of the JSON one (usage logging, the header form, the balance check)."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask

from .kit import KEY, KEY2, Exchange, chat_path, correct_app, every_nth, middleware, mutant, stream_flag

CHAT = "chat"
WRONG_ACCOUNT = "wrong account"
STATUS = "wrong status"


def _stream_events(ex: Exchange) -> list[dict[str, Any]]:
    events = []
    for line in ex.response.splitlines():
        if line.startswith(b"data: {"):
            events.append(json.loads(line[6:]))
    return events


@mutant(CHAT, "me.usage",
        "GET /v1/me's usage summary is logged by the JSON chat handler only: streamed chats are charged but "
        "never counted (requests, tokens and spend stay where they were)")
def me_usage_ignores_streams() -> Flask:
    streaming, flag = stream_flag()
    lock = threading.Lock()
    missed = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
              "spend_microdollars": 0}

    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200 and getattr(streaming, "on", False):
            quota = next((e["quota"] for e in reversed(_stream_events(ex)) if "quota" in e), None)
            usage = next((e["usage"] for e in reversed(_stream_events(ex)) if e.get("usage")), None)
            with lock:
                missed["requests"] += 1
                if quota:
                    missed["spend_microdollars"] += quota["credits_used"]
                if usage:
                    for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                        missed[k] += usage[k]
        elif ex.path == "/v1/me" and ex.status == 200 and isinstance(ex.json, dict):
            body = ex.json
            usage = body.get("usage", {})
            with lock:
                for k, v in missed.items():
                    if isinstance(usage.get(k), int):
                        usage[k] = max(0, usage[k] - v)
            ex.set_json(body)

    return middleware(correct_app(), after, flag)


@mutant(WRONG_ACCOUNT, "chat.header_form",
        "the streaming handler reads the billed user from the path only: a streamed chat on "
        "/v1/chat/completions with X-External-User-ID is billed to the developer (the JSON path is right)")
def header_stream_bills_developer() -> Flask:
    streaming, flag = stream_flag()

    def before(ex: Exchange) -> bool:
        flag(ex)
        if ex.path == "/v1/chat/completions" and getattr(streaming, "on", False):
            ex.drop_header("X-External-User-ID")
        return False

    return middleware(correct_app(), None, before)


@mutant(STATUS, "chat.insufficient",
        "a streamed chat the balance cannot cover opens the stream first: 200 text/event-stream carrying the "
        "error envelope as an event, then [DONE] (nothing charged); the JSON path answers 402")
def stream_insufficient_as_event() -> Flask:
    streaming, flag = stream_flag()

    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 402 and getattr(streaming, "on", False):
            error = ex.response
            ex.status = 200
            ex.response = b"data: " + error.strip() + b"\n\ndata: [DONE]\n\n"
            ex.response_headers["Content-Type"] = "text/event-stream; charset=utf-8"

    return middleware(correct_app(), after, flag)



@mutant(STATUS, "chat.header_form",
        "the model provider behind the deployment fails most chats: four in every five answer 502 upstream_error "
        "in the envelope (never five in a row, so no single streak looks like an outage)")
def provider_fails_most_chats() -> Flask:
    served = every_nth(5)

    def before(ex: Exchange) -> bool:
        authenticated = ex.header("Authorization") in (f"Bearer {KEY}", f"Bearer {KEY2}")
        return chat_path(ex) and authenticated and not served() and ex.error(
            502, "upstream_error", "The model provider answered with an error")

    return middleware(correct_app(), None, before)
