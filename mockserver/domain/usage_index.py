"""Usage kept as money moves, so that ``GET /v1/me`` costs the same at a million entries.

What ``/v1/me`` sums (see :func:`.usage.summarize`) is kept as running totals indexed by
time: one series for the grants and one per model for the charges, each a column of entry
times and columns of cumulative sums. The usage of any window ``[since, until]`` is then two
binary searches and a subtraction per series: exact at any boundary, whatever the number of
entries, with no entry read. (Fixed time buckets would need the entries of the buckets the
window's edges cut through to stay exact; a dense minute at the edge would be read whole.)

A series is time-ordered as long as the clock only moves forward. When an entry is earlier
than its series' last one (the clock was moved back), a new *run* starts: each run is
ordered, and a window sums over the runs. Runs are as many as the backward clock moves.

A grant costs 16 bytes here (its time, one running total), a charge 32.

Not thread-safe on its own: the memory store's lock guards it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from typing import Any

from .usage import ModelUsage, UsageSummary

UNKNOWN_MODEL = "unknown"


class _Run:
    """Entries of one series in time order: their times, and cumulative sums with a leading 0."""

    __slots__ = ("sums", "times")

    def __init__(self, width: int) -> None:
        self.times = array("d")
        self.sums: list[Any] = [array("q", [0]) for _ in range(width)]

    def add(self, at: float, values: tuple[int, ...]) -> None:
        self.times.append(at)
        for position, value in enumerate(values):
            column = self.sums[position]
            total = column[-1] + value
            try:
                column.append(total)
            except OverflowError:  # past 2**63 micro-dollars: keep exact Python ints from here on
                column = self.sums[position] = list(column)
                column.append(total)

    def window(self, since: float, until: float) -> tuple[int, list[int]]:
        """How many entries fall in ``[since, until]``, and their sums."""
        low = bisect_left(self.times, since)
        high = bisect_right(self.times, until)
        if high <= low:
            return 0, [0] * len(self.sums)
        return high - low, [column[high] - column[low] for column in self.sums]


class _Series:
    __slots__ = ("runs", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self.runs: list[_Run] = []

    def add(self, at: float, values: tuple[int, ...]) -> None:
        if not self.runs or (self.runs[-1].times and at < self.runs[-1].times[-1]):
            self.runs.append(_Run(self.width))
        self.runs[-1].add(at, values)

    def window(self, since: float, until: float) -> tuple[int, list[int]]:
        count, sums = 0, [0] * self.width
        for run in self.runs:
            run_count, run_sums = run.window(since, until)
            count += run_count
            sums = [a + b for a, b in zip(sums, run_sums, strict=True)]
        return count, sums


class UsageIndex:
    """Running totals of grants and of each model's charges; see the module's docstring."""

    def __init__(self) -> None:
        self._grants = _Series(1)  # amount
        self._charges: dict[str, _Series] = {}  # per model: prompt, completion, spend

    def add_grant(self, at: float, amount: int) -> None:
        self._grants.add(at, (amount,))

    def add_charge(self, at: float, model: str | None, prompt_tokens: int, completion_tokens: int, spend: int) -> None:
        name = model or UNKNOWN_MODEL
        series = self._charges.get(name)
        if series is None:
            series = self._charges[name] = _Series(3)
        series.add(at, (prompt_tokens, completion_tokens, spend))

    def summary(self, since: float, until: float) -> UsageSummary:
        """The same summary :func:`.usage.summarize` computes from the ledger, exactly."""
        summary = UsageSummary(since=since, until=until)
        summary.grant_count, (summary.grant_total,) = self._grants.window(since, until)
        for model, series in self._charges.items():
            requests, (prompt, completion, spend) = series.window(since, until)
            if requests:
                summary.by_model[model] = ModelUsage(model, requests, prompt, completion, spend)
                summary.requests += requests
                summary.prompt_tokens += prompt
                summary.completion_tokens += completion
                summary.spend += spend
        return summary
