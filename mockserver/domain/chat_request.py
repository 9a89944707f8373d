"""An OpenAI chat completion request (already valid against openapi.yaml) as domain values.

The contract's schema has checked every field's shape and the combinations OpenAI refuses
(``tool_choice`` without ``tools``, ``top_logprobs`` without ``logprobs``...), so that every
request the schema accepts is answered; this module only reads the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .completions import ChatOptions, Message, Tool, ToolChoice


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None
    options: ChatOptions
    stream: bool = False
    include_usage: bool = False


def parse_chat_request(body: Mapping[str, Any]) -> ChatRequest:
    stream_options = body.get("stream_options")
    logprobs = bool(body.get("logprobs"))
    tools, legacy = _tools(body)
    options = ChatOptions(
        n=_integer(body.get("n")) or 1,
        stop=_stop(body.get("stop")),
        tools=tools,
        tool_choice=_tool_choice(body, legacy),
        legacy_functions=legacy,
        response_format=(body.get("response_format") or {}).get("type", "text"),
        json_schema=((body.get("response_format") or {}).get("json_schema") or {}).get("schema"),
        logprobs=logprobs,
        top_logprobs=_integer(body.get("top_logprobs")) or 0,
    )
    return ChatRequest(
        model=body["model"],
        messages=tuple(_message(m) for m in body["messages"]),
        max_tokens=_answer_limit(body),
        options=options,
        stream=bool(body.get("stream")),
        include_usage=bool((stream_options or {}).get("include_usage")),
    )


def _integer(value: Any) -> int | None:
    """Integral JSON numbers arrive as ``3`` or ``Decimal('3.0')``; both are the integer 3."""
    return None if value is None else int(value)


def _answer_limit(body: Mapping[str, Any]) -> int | None:
    limits = [_integer(body.get(name)) for name in ("max_tokens", "max_completion_tokens")]
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def _message(message: Mapping[str, Any]) -> Message:
    """A message's text (parts, refusals and tool calls included) and its media parts."""
    texts: list[str] = []
    media = {"image_url": 0, "input_audio": 0, "file": 0}
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            kind = part["type"]
            if kind in media:
                media[kind] += 1
            else:
                texts.append(part.get("text") or part.get("refusal") or "")
    if message.get("refusal"):
        texts.append(message["refusal"])
    for call in message.get("tool_calls") or ():
        called = call.get("function") or call.get("custom") or {}
        texts.append(called.get("name", "") + (called.get("arguments") or called.get("input") or ""))
    if message.get("function_call"):
        texts.append(message["function_call"]["name"] + message["function_call"]["arguments"])
    return Message(
        role=message["role"],
        content="\n".join(texts),
        images=media["image_url"],
        audio_clips=media["input_audio"],
        files=media["file"],
    )


def _tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], bool]:
    """The tools, or the deprecated ``functions`` (then ``legacy`` is true)."""
    tools = []
    for tool in body.get("tools") or ():
        if tool["type"] == "function":
            function = tool["function"]
            tools.append(
                Tool("function", function["name"], function.get("description", ""), function.get("parameters"))
            )
        else:
            custom = tool["custom"]
            tools.append(Tool("custom", custom["name"], custom.get("description", "")))
    if tools or not body.get("functions"):
        return tuple(tools), False
    functions = tuple(
        Tool("function", f["name"], f.get("description", ""), f.get("parameters")) for f in body["functions"]
    )
    return functions, True


def _tool_choice(body: Mapping[str, Any], legacy: bool) -> ToolChoice | None:
    """What the request asks of tools; a named tool missing from ``tools`` gets a text answer."""
    choice = body.get("function_call" if legacy else "tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        return ToolChoice(choice)
    if legacy:
        return ToolChoice("required", choice["name"])
    if choice["type"] == "allowed_tools":
        allowed = choice["allowed_tools"]
        names = tuple((t.get("function") or t.get("custom") or {}).get("name", "") for t in allowed["tools"])
        return ToolChoice(allowed["mode"], allowed=names)
    return ToolChoice("required", choice[choice["type"]]["name"])
