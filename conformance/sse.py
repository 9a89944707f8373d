"""Server-sent events as the SSE format reads them: shared by the chat rules and the schema
checks (a module of its own, so that neither imports the other)."""

from __future__ import annotations

import re
from typing import Any

_SSE_LINES = re.compile(r"\r\n|\r|\n")


def sse_events(exchange: Any) -> list[str]:
    """The data of each server-sent event of a stream, in order, read as the SSE format says:
    an event ends at a blank line, its ``data:`` lines are joined with a newline (a server may
    split one JSON chunk over several), one space after the colon is dropped, and comments and
    other fields (``id:``, ``event:``) carry no data. A last event without its blank line counts."""
    text = exchange.response.content.decode("utf-8", "replace")
    events: list[str] = []
    data: list[str] | None = None
    for line in _SSE_LINES.split(text):
        if not line:
            if data is not None:
                events.append("\n".join(data).strip())
            data = None
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data = [*(data or []), value[1:] if value.startswith(" ") else value]
    if data is not None:
        events.append("\n".join(data).strip())
    return events


def is_event_stream(exchange: Any) -> bool:
    return "text/event-stream" in (exchange.header("Content-Type") or "")
