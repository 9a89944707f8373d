"""Bugs a second adversary round found the suite passing, even under --profile strict: keys
stored in a narrow or case-insensitive column, a chat that writes back a balance it read
before the provider's call, and a usage summary that forgets chats. Each is here now that a
rule catches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from .kit import Exchange, correct_app, middleware, mutant, service_patch, write_balance

# The corpus' families (test_mutants.FAMILIES): conflated keys answer a new grant as a replay.
REPLAY = "replay"
STALE = "stale read"
FACTS = "documented facts"
# How long the "provider" takes in the stale-write mutant: a real model takes seconds.
PROVIDER_SECONDS = 0.3


def _keys_stored_as(canon: Callable[[str], str]) -> Flask:
    """Idempotency-Keys looked up by ``canon(key)``: every key with the same form is one key."""

    def wrap(service: Any, original: Any) -> Any:
        def grant(**request: Any) -> Any:
            if request.get("idempotency_key") is not None:
                request["idempotency_key"] = canon(request["idempotency_key"])
            return original(**request)

        return grant

    return service_patch("grant", wrap)


@mutant(REPLAY, "idem.distinct_keys",
        "Idempotency-Keys kept in a VARCHAR(64) (the contract allows 255): keys sharing their first 64 "
        "characters are one key, and the second grant is answered as the first's replay")
def idem_keys_truncated_64() -> Flask:
    return _keys_stored_as(lambda key: key[:64])


@mutant(REPLAY, "idem.distinct_keys",
        "Idempotency-Keys looked up case-insensitively (a citext column): 'Order-A' and 'order-a' are one key")
def idem_keys_case_insensitive() -> Flask:
    return _keys_stored_as(str.lower)


@mutant(STALE, "chat.grant_during_chat",
        "the chat reads the user's balance before the provider's call and writes back read - cost after "
        "it: a grant that lands during the chat is lost (sequentially, nothing shows)")
def chat_writes_stale_balance() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def chat(user_id: str | None, *args: Any, **kwargs: Any) -> Any:
            read = service.store.user_balance(user_id) if user_id is not None else None
            time.sleep(PROVIDER_SECONDS)
            outcome = original(user_id, *args, **kwargs)
            if read is not None:
                write_balance(service, user_id, read - outcome.charge.amount)
            return outcome

        return chat

    return service_patch("chat", wrap)


@mutant(FACTS, "me.usage",
        "GET /v1/me's usage summary is computed from the grants table only: chats never count "
        "(requests, tokens and spend stay where they were)")
def me_usage_ignores_chats() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path == "/v1/me" and ex.status == 200 and isinstance(ex.json, dict):
            body = ex.json
            usage = body.get("usage", {})
            usage.update(requests=0, prompt_tokens=0, completion_tokens=0, total_tokens=0, spend="$0.00",
                         spend_microdollars=0, by_model=[])
            ex.set_json(body)

    return middleware(correct_app(), after)
