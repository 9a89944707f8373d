"""What the chat rule modules share: the chat operations and the sources on who a chat bills,
what a chat rule needs, a user funded to chat as, a small chat body, and what a chat answer
(plain or streamed) says it cost.

No rule is registered here: importing this module registers nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from mockserver.domain.money import MICROS_PER_CENT

from .actions import BIG_PROMPT, chat_body, grant, quota_micros
from .checks import json_integer
from .engine import Exchange
from .properties import Probe
from .registry import Needs
from .sse import sse_events

CENT = MICROS_PER_CENT
USER_CHAT_OP = "#/paths/~1v1~1users~1{external_user_id}~1chat~1completions/post"
CHAT_OP = "#/paths/~1v1~1chat~1completions/post"
BILLING = ("public-facts: POST /v1/chat/completions bills the developer; for user billing, "
           "POST /v1/users/:external_user_id/chat/completions (or the X-External-User-ID header on the plain path).",)
NEEDS = (Needs.WRITES, Needs.CHAT)


def funded_user(p: Probe, cents: int, suffix: str = "") -> str:
    """A new user of this run holding ``cents``; the rule is skipped if the grant fails."""
    user = p.t.guard.new_user() + suffix
    funded = grant(p, user, cents, description="quota-conformance chat funds")
    if not funded.ok:
        p.skip(f"could not fund a user to chat with: the grant answered {funded.status}")
    return user


def small_chat(p: Probe, stream: bool = False) -> dict[str, Any]:
    if p.first:
        return chat_body(p, max_tokens=4, stream=stream)
    copies = p.draw(st.integers(1, 3))
    prompt = p.draw(st.sampled_from(["Say hello.", "Count to three.", "Résumé en une phrase: 🎉", BIG_PROMPT[:400]]))
    return chat_body(p, prompt, copies, p.draw(st.integers(1, 16)), stream=stream)




def charged(exchange: Exchange) -> int | None:
    """What a chat answer says it cost (micro-dollars): its quota block, or a stream's last one."""
    if exchange.header("Content-Type") and "text/event-stream" in (exchange.header("Content-Type") or ""):
        for payload in reversed(sse_events(exchange)):
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue
            quota = chunk.get("quota") if isinstance(chunk, dict) else None
            value = json_integer(quota.get("credits_used")) if isinstance(quota, dict) else None
            if value is not None:
                return value
        return None
    return quota_micros(exchange)


def quota_block(exchange: Exchange) -> dict[str, Any] | None:
    """A chat answer's quota block: its own, or a stream's last one."""
    if "text/event-stream" in (exchange.header("Content-Type") or ""):
        for payload in reversed(sse_events(exchange)):
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue
            if isinstance(chunk, dict) and isinstance(chunk.get("quota"), dict):
                return chunk["quota"]
        return None
    quota = exchange.field("quota")
    return quota if isinstance(quota, dict) else None
