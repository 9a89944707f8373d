"""The 30-day usage summary of ``GET /v1/me``, computed from the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .records import CHARGE, GRANT, LedgerEntry

USAGE_WINDOW_DAYS = 30
USAGE_WINDOW_SECONDS = USAGE_WINDOW_DAYS * 24 * 60 * 60


@dataclass(slots=True)
class ModelUsage:
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class UsageSummary:
    since: float
    until: float
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: int = 0
    grant_count: int = 0
    grant_total: int = 0
    by_model: dict[str, ModelUsage] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def summarize(entries: Iterable[LedgerEntry], since: float, until: float) -> UsageSummary:
    """Sum charges (requests, tokens, spend, per model) and grants within ``[since, until]``."""
    summary = UsageSummary(since=since, until=until)
    for entry in entries:
        if not since <= entry.at <= until:
            continue
        if entry.kind == GRANT:
            summary.grant_count += 1
            summary.grant_total += entry.amount
        elif entry.kind == CHARGE:
            model = entry.model or "unknown"
            per_model = summary.by_model.get(model)
            if per_model is None:
                per_model = summary.by_model[model] = ModelUsage(model)
            for bucket in (summary, per_model):
                bucket.requests += 1
                bucket.prompt_tokens += entry.prompt_tokens
                bucket.completion_tokens += entry.completion_tokens
                bucket.spend += entry.amount
    return summary


@dataclass(frozen=True, slots=True)
class Overview:
    """What ``GET /v1/me`` shows of the books: the pool, and the usage window ending now."""

    pool: int
    usage: UsageSummary
