"""Bugs an eighth adversary round tried: chats priced from other tokens than their usage says
(a system prompt, or a conversation's earlier turns, left out of the price; the header form
priced otherwise than the path form)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from mockserver.domain.completions import complete, prompt_tokens

from .kit import Exchange, chat_path, correct_app, middleware, mutant, service_of
from .sixth_round import _repriced

CHAT = "chat"


@mutant(CHAT, "chat.user_debit",
        "the gateway lifts system messages out of messages for the provider (Anthropic's separate system "
        "field) and prices the prompt from what is left: a system prompt, counted in usage.prompt_tokens, "
        "is never charged")
def system_prompt_not_billed() -> Flask:
    return _prompt_priced_from(lambda messages: [m for m in messages if m.role != "system"])


@mutant(CHAT, "chat.user_debit",
        "the gateway prices the prompt from the conversation's last user message (its pre-flight 'question' "
        "estimate, never corrected): the earlier turns of a conversation, counted in usage.prompt_tokens, "
        "are never charged")
def history_not_billed() -> Flask:
    return _prompt_priced_from(lambda messages: [m for m in messages if m.role == "user"][-1:])


def _prompt_priced_from(kept: Callable[[Any], list[Any]]) -> Flask:
    """A correct app whose chats price the prompt from ``kept(messages)`` only (the usage stays
    the real one); a chat where that keeps every message is priced right."""

    def reprice(model: str, messages: Any, max_tokens: Any, options: Any) -> Any:
        priced = kept(messages)
        if len(priced) == len(messages):
            return None
        done = complete(model, messages, max_tokens, options)
        return prompt_tokens(priced, options.tools if options is not None else ()), done.completion_tokens

    return _repriced(reprice)


@mutant(CHAT, "chat.user_debit",
        "the plain route's handler adds the developer-pays platform fee (10%) to every chat it prices, also "
        "when X-External-User-ID bills a user: the header form costs a user 10% more than the same chat on "
        "the user's path (credits_used says so)")
def header_form_surcharged() -> Flask:
    app = correct_app()
    store = service_of(app).store
    charge = store.apply_charge
    plain = threading.local()

    def before(ex: Exchange) -> bool:
        plain.on = chat_path(ex) and ex.user_in_path() is None
        return False

    def apply_charge(user_id: Any, amount: int, *rest: Any) -> Any:
        if user_id is not None and getattr(plain, "on", False):
            amount = -(-amount * 110 // 100)
        return charge(user_id, amount, *rest)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return middleware(app, None, before)
