"""Deterministic fake chat completions: the same request always gets the same answer.

No network and no model: the text is derived from the prompt, and tokens are counted with
the usual rule of thumb (about four characters a token) so that costs look realistic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

# OpenAI counts a few tokens of framing per message and per reply.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 2
_CHARS_PER_TOKEN = 4
_DEFAULT_MAX_TOKENS = 256

_OPENERS = ("Sure.", "Here you go.", "Certainly.", "Of course.")


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class FakeCompletion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def count_tokens(text: str) -> int:
    return -(-len(text) // _CHARS_PER_TOKEN)


def prompt_tokens(messages: Sequence[Message]) -> int:
    return sum(_TOKENS_PER_MESSAGE + count_tokens(m.content) for m in messages) + _TOKENS_PER_REPLY


def complete(model: str, messages: Sequence[Message], max_tokens: int | None) -> FakeCompletion:
    """The mock's answer: an opener chosen by a hash of the prompt, then an echo of it."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    digest = hashlib.sha256(repr((model, [(m.role, m.content) for m in messages])).encode()).digest()
    opener = _OPENERS[digest[0] % len(_OPENERS)]
    echo = " ".join(last_user.split()[:24])
    text = (
        f"{opener} This is a mock reply from {model} to: {echo}"
        if echo
        else f"{opener} This is a mock reply from {model}."
    )
    limit = max_tokens or _DEFAULT_MAX_TOKENS
    finish_reason = "stop"
    if count_tokens(text) > limit:
        text = text[: limit * _CHARS_PER_TOKEN]
        finish_reason = "length"
    return FakeCompletion(text, prompt_tokens(messages), count_tokens(text), finish_reason)
