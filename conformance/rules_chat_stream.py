"""The rule of streamed chats: ``stream: true`` answers server-sent events, each a JSON
chat.completion.chunk, ending ``data: [DONE]``.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from mockserver.domain.money import MICROS_PER_CENT

from .actions import code_text, header_chat, shown, user_chat
from .chat_helpers import NEEDS, funded_user, small_chat
from .properties import Probe
from .registry import Cost, probe
from .sse import sse_events

CENT = MICROS_PER_CENT


@probe("chat.stream_sse", sources=("public-facts: stream: true answers with server-sent events, OpenAI style.",),
       elements=("#/components/responses/ChatCompletion",), cost=Cost(2 * CENT, 2), needs=NEEDS, stage=9)
def chat_stream_sse(p: Probe) -> None:
    """``stream: true`` answers text/event-stream: ``data:`` events, each a JSON
    chat.completion.chunk, the last one ``data: [DONE]``."""
    user = funded_user(p, 2)
    body = small_chat(p, stream=True)
    exchange = user_chat(p, user, body) if p.first or p.draw(st.booleans()) else header_chat(p, user, body)
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
    for payload in events[:-1]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            problems.append(f"an event is not JSON: {payload[:60]!r}")
            break
        if not isinstance(chunk, dict) or chunk.get("object") != "chat.completion.chunk":
            problems.append(f"an event is not a chat.completion.chunk: {payload[:60]!r}")
            break
    p.require(not problems, [exchange], "A streamed chat is not server-sent events ending [DONE]",
              "; ".join(problems))
