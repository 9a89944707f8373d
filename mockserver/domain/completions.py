"""Deterministic fake chat completions: the same request always gets the same answer.

No network and no model. The answer is derived from the prompt: text (an opener chosen by a
hash of the conversation, then an echo of the last user message), or a tool call when the
request asks for one, or JSON when ``response_format`` asks for it. Tokens are counted with
the usual rule of thumb (about four characters a token) so that costs look realistic; images,
audio clips and files count a flat number of tokens each (the contract's ``ChatContentPart``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .json_sample import sample_value

# OpenAI counts a few tokens of framing per message and per reply.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 2
_CHARS_PER_TOKEN = 4
_DEFAULT_MAX_TOKENS = 256
# Flat prompt tokens per non-text part, written in openapi.yaml (ChatContentPart): 85 is
# OpenAI's figure for a low-detail image; audio and files are the contract's own choice.
IMAGE_TOKENS = 85
AUDIO_TOKENS = 100
FILE_TOKENS = 200

_OPENERS = ("Sure.", "Here you go.", "Certainly.", "Of course.")
_TOOL_RESULT_ROLES = ("tool", "function")


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the pricing sees it: its text, and how many media parts it carries."""

    role: str
    content: str
    images: int = 0
    audio_clips: int = 0
    files: int = 0


@dataclass(frozen=True, slots=True)
class Tool:
    kind: str  # "function" or "custom"
    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """What the request asks of tools: ``none``, ``auto``, ``required``, or one named tool."""

    mode: str = "auto"
    name: str | None = None
    allowed: tuple[str, ...] | None = None  # allowed_tools: the names the model may call


@dataclass(frozen=True)
class ChatOptions:
    """The OpenAI request fields beyond model, messages and max_tokens that change the answer."""

    n: int = 1
    stop: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None  # None: "auto" with tools, "none" without
    legacy_functions: bool = False  # the deprecated functions/function_call pair
    response_format: str = "text"  # text, json_object or json_schema
    json_schema: Mapping[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    kind: str
    name: str
    arguments: str  # JSON text for a function; the free-form input for a custom tool


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    completion_tokens: int
    logprob_tokens: tuple[str, ...] | None = None  # the answer's tokens, when logprobs were asked


@dataclass(frozen=True, slots=True)
class FakeCompletion:
    choices: tuple[Choice, ...]
    prompt_tokens: int
    legacy_functions: bool = False

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    # The first choice, for callers that ask for one answer.
    @property
    def text(self) -> str | None:
        return self.choices[0].text

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason


def count_tokens(text: str) -> int:
    return -(-len(text) // _CHARS_PER_TOKEN)


def split_tokens(text: str) -> list[str]:
    """The answer's tokens, as ``count_tokens`` counts them: four characters each."""
    return [text[i : i + _CHARS_PER_TOKEN] for i in range(0, len(text), _CHARS_PER_TOKEN)]


def message_tokens(message: Message) -> int:
    return (
        _TOKENS_PER_MESSAGE
        + count_tokens(message.content)
        + IMAGE_TOKENS * message.images
        + AUDIO_TOKENS * message.audio_clips
        + FILE_TOKENS * message.files
    )


def prompt_tokens(messages: Sequence[Message], tools: Sequence[Tool] = ()) -> int:
    """Messages, their media, and the tool definitions the model is shown."""
    tool_text = "".join(t.name + t.description + dumps(t.parameters or {}) for t in tools)
    return sum(message_tokens(m) for m in messages) + count_tokens(tool_text) + _TOKENS_PER_REPLY


def complete(
    model: str, messages: Sequence[Message], max_tokens: int | None, options: ChatOptions | None = None
) -> FakeCompletion:
    """The mock's answer, one choice per ``options.n``."""
    options = options or ChatOptions()
    digest = hashlib.sha256(repr((model, [(m.role, m.content) for m in messages])).encode()).digest()
    limit = max_tokens or _DEFAULT_MAX_TOKENS
    tool = _tool_to_call(messages, options)
    choices = tuple(_choice(index, model, messages, digest, limit, tool, options) for index in range(max(options.n, 1)))
    return FakeCompletion(choices, prompt_tokens(messages, options.tools), options.legacy_functions)


def _choice(
    index: int,
    model: str,
    messages: Sequence[Message],
    digest: bytes,
    limit: int,
    tool: Tool | None,
    options: ChatOptions,
) -> Choice:
    if tool is not None:
        arguments = _tool_input(tool)
        finish_reason = "function_call" if options.legacy_functions else "tool_calls"
        if options.tool_choice is not None and options.tool_choice.name is not None and not options.legacy_functions:
            finish_reason = "stop"  # OpenAI ends a forced named call with "stop"
        if count_tokens(arguments) > limit:
            arguments, finish_reason = arguments[: limit * _CHARS_PER_TOKEN], "length"
        call_id = "call_" + hashlib.sha256(digest + f"{index}:{tool.name}".encode()).hexdigest()[:24]
        call = ToolCall(call_id, tool.kind, tool.name, arguments)
        return Choice(index, None, (call,), finish_reason, count_tokens(tool.name) + count_tokens(arguments))
    text = _answer_text(index, model, messages, digest, options)
    finish_reason = "stop"
    cut = min((text.find(s) for s in options.stop if s and s in text), default=-1)
    if cut >= 0:
        text = text[:cut]
    if count_tokens(text) > limit:
        text, finish_reason = text[: limit * _CHARS_PER_TOKEN], "length"
    tokens = tuple(split_tokens(text)) if options.logprobs else None
    return Choice(index, text, (), finish_reason, count_tokens(text), tokens)


def _answer_text(index: int, model: str, messages: Sequence[Message], digest: bytes, options: ChatOptions) -> str:
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    opener = _OPENERS[(digest[0] + index) % len(_OPENERS)]
    echo = " ".join(last_user.split()[:24])
    text = (
        f"{opener} This is a mock reply from {model} to: {echo}"
        if echo
        else f"{opener} This is a mock reply from {model}."
    )
    if options.response_format == "json_schema":
        return dumps(sample_value(options.json_schema or {}))
    if options.response_format == "json_object":
        return dumps({"reply": text})
    return text


def _tool_to_call(messages: Sequence[Message], options: ChatOptions) -> Tool | None:
    """The tool the answer calls, if any: see the contract's ``ChatToolChoice``."""
    if not options.tools:
        return None
    choice = options.tool_choice or ToolChoice("auto")
    if choice.mode == "none":
        return None
    candidates = [t for t in options.tools if choice.allowed is None or t.name in choice.allowed]
    if choice.name is not None:
        candidates = [t for t in candidates if t.name == choice.name]
    if not candidates:
        return None
    if choice.mode == "auto" and messages and messages[-1].role in _TOOL_RESULT_ROLES:
        return None  # the tool's result is in: answer in words, ending the round-trip
    return candidates[0]


def _tool_input(tool: Tool) -> str:
    if tool.kind == "custom":
        return "mock input"
    return dumps(sample_value(tool.parameters or {}))


def dumps(value: Any) -> str:
    """JSON text of a caller-provided value; exact decimals are written as numbers."""
    return json.dumps(value, default=_json_number, ensure_ascii=False)


def _json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
