"""How the Redis store writes its values as text, and reads them back exactly."""

from __future__ import annotations

import json
from typing import Any

from .records import IdempotencyView, LedgerEntry
from .usage import ModelUsage, UsageSummary
from .usage_index import UNKNOWN_MODEL


def member(scope: str, key: str) -> str:
    """An idempotency record's name. Length-prefixed, so that no (scope, key) pair can
    collide with another one."""
    return f"{len(scope)}:{scope}:{key}"


def scope_and_key(name: str) -> tuple[str, str]:
    length, rest = name.split(":", 1)
    size = int(length)
    return rest[:size], rest[size + 1 :]


def time_text(seconds: float) -> str:
    # repr() round-trips a float exactly; Lua and json.loads read the same value back.
    return repr(float(seconds))


def tail(
    ledger_id: str,
    kind: str,
    user_id: str | None,
    description: str | None,
    model: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> str:
    """A ledger entry's fields after the balances, as the scripts append them."""
    # ASCII-only JSON: any user id or description is escaped, so the entry always parses.
    return "," + json.dumps([ledger_id, kind, user_id, description, model, prompt_tokens, completion_tokens])[1:]


def ledger_entry(raw: str) -> LedgerEntry:
    at, amount, before, after, ledger_id, kind, user_id, description, model, prompt, completion = json.loads(raw)
    return LedgerEntry(
        ledger_id, kind, amount, user_id, float(at), before, after, description, model, prompt, completion
    )


def key_view(name: str, state: str, expires_at: str, ledger_id: str) -> IdempotencyView:
    scope, key = scope_and_key(name)
    return IdempotencyView(
        scope=scope,
        key=key,
        state="in_flight" if state == "flight" else "completed",
        expires_at=float(expires_at),
        ledger_id=ledger_id or None,
    )


def usage_summary(reply: list[Any]) -> UsageSummary:
    """The USAGE script's answer (after its time and pool) as a summary: for each series,
    the running totals at the window's far edge minus those at its near edge."""
    summary = UsageSummary(since=float(reply[1]), until=float(reply[2]))
    for position in range(4, len(reply), 3):
        name, low, high = reply[position : position + 3]
        if not high:  # nothing up to the window's far edge (a window upside down)
            continue
        count, sums = _difference(low, high)
        if count <= 0:  # an empty (or upside-down) window
            continue
        kind = name.split(":", 2)[1:]  # "<run>:g" or "<run>:c:<model>"
        if kind[0] == "g":
            summary.grant_count += count
            summary.grant_total += sums[0]
            continue
        prompt, completion, spend = sums
        model = kind[1] or UNKNOWN_MODEL
        per_model = summary.by_model.get(model)
        if per_model is None:
            per_model = summary.by_model[model] = ModelUsage(model)
        for target in (summary, per_model):
            target.requests += count
            target.prompt_tokens += prompt
            target.completion_tokens += completion
            target.spend += spend
    return summary


def _difference(low: str, high: str) -> tuple[int, list[int]]:
    # A member is "<count>:<total>:<total>...", each a running total up to that entry.
    high_values = [int(part) for part in high.split(":")]
    low_values = [int(part) for part in low.split(":")] if low else [0] * len(high_values)
    count, *sums = (h - lo for h, lo in zip(high_values, low_values, strict=True))
    return count, sums
