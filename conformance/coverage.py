"""How much of the contract a run exercised, like Microcks' conformance index: a pass that
saw half the contract says so.

Two things are counted, and summed into one percentage:

- the **operation × documented status** pairs the run actually observed. Every answer the
  target gives (behavioural probes and schema-driven phase alike) is matched to the operation
  of its request. Pairs a client cannot provoke (429 and 5xx: the server's own state) are
  listed apart and left out of the percentage; a request to no operation of the contract
  counts for the global 404 and 405 answers (``x-quota-global-responses``);
- the **rules** that ran, against those that never got to (each with its reason).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mockserver.contract import Contract

from .results import CheckRecord, Status

# Answers that depend on the server's state or load, not on what a client sends.
TOO_MANY_REQUESTS = 429
GLOBAL = "(any other route or method)"


def provokable(status: int) -> bool:
    return status < 500 and status != TOO_MANY_REQUESTS


class StatusObserver:
    """A session observer recording the (operation, status) of every answer."""

    def __init__(self, contract: Contract, base_path: str = "") -> None:
        self.contract = contract
        self.seen: Counter[tuple[str, int]] = Counter()
        self._base_path = base_path.rstrip("/")
        self._routes = [(op.method, re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(op.path))),
                         f"{op.method} {op.path}") for op in contract.operations]
        self._lock = threading.Lock()

    def __call__(self, request: Any, response: Any) -> None:
        label = self.operation_of(request.method or "GET", urlsplit(request.url or "").path)
        with self._lock:
            self.seen[(label, response.status_code)] += 1

    def operation_of(self, method: str, raw_path: str) -> str:
        """The operation a request went to, read from its path as sent (a path value's
        percent-encoded slash stays inside that value, as the server routes it)."""
        path = raw_path[len(self._base_path):] if raw_path.startswith(self._base_path) else raw_path
        method = method.upper()
        for route_method, pattern, label in self._routes:
            # HEAD is GET without a body (RFC 9110 9.3.2).
            if method in (route_method, "HEAD" if route_method == "GET" else route_method) and pattern.fullmatch(path):
                return label
        return GLOBAL


@dataclass(frozen=True)
class PairSeen:
    operation: str
    status: int
    answers: int

    @property
    def provokable(self) -> bool:
        return provokable(self.status)


@dataclass
class Coverage:
    pairs: list[PairSeen]
    rules: dict[str, str | None]  # rule -> None if it ran, else why not
    undocumented: list[PairSeen] = field(default_factory=list)  # answers with a status openapi.yaml omits

    @property
    def counted_pairs(self) -> list[PairSeen]:
        return [pair for pair in self.pairs if pair.provokable]

    @property
    def pairs_observed(self) -> int:
        return sum(1 for pair in self.counted_pairs if pair.answers)

    @property
    def rules_run(self) -> int:
        return sum(1 for why in self.rules.values() if why is None)

    @property
    def not_run(self) -> dict[str, str]:
        return {name: why for name, why in self.rules.items() if why is not None}

    @property
    def percent(self) -> float:
        total = len(self.counted_pairs) + len(self.rules)
        return 100.0 * (self.pairs_observed + self.rules_run) / total if total else 100.0

    def by_operation(self) -> dict[str, list[PairSeen]]:
        grouped: dict[str, list[PairSeen]] = {}
        for pair in self.pairs:
            grouped.setdefault(pair.operation, []).append(pair)
        return grouped


def measure(contract: Contract, observer: StatusObserver, records: list[CheckRecord]) -> Coverage:
    documented: list[PairSeen] = []
    known: set[tuple[str, int]] = set()
    for op in contract.operations:
        label = f"{op.method} {op.path}"
        for status in sorted(int(s) for s in op.responses if s.isdigit()):
            documented.append(PairSeen(label, status, observer.seen[(label, status)]))
            known.add((label, status))
    for status in sorted(int(s) for s in contract.global_responses if s.isdigit()):
        documented.append(PairSeen(GLOBAL, status, observer.seen[(GLOBAL, status)]))
        known.add((GLOBAL, status))
    undocumented = [PairSeen(label, status, n) for (label, status), n in sorted(observer.seen.items())
                    if (label, status) not in known]
    rules = {record.name: (record.reason if record.status is Status.SKIPPED else None) for record in records}
    return Coverage(documented, rules, undocumented)


# -- reports ------------------------------------------------------------------------------


def human_lines(coverage: Coverage) -> list[str]:
    lines = [f"Coverage: {coverage.percent:.0f}% ({coverage.pairs_observed} of {len(coverage.counted_pairs)} "
             f"operation x status pairs a client can provoke observed, {coverage.rules_run} of "
             f"{len(coverage.rules)} rules ran)"]
    width = max((len(label) for label in coverage.by_operation()), default=10)
    for label, pairs in coverage.by_operation().items():
        seen = " ".join(str(p.status) for p in pairs if p.provokable and p.answers)
        missing = " ".join(str(p.status) for p in pairs if p.provokable and not p.answers)
        server = " ".join(str(p.status) for p in pairs if not p.provokable)
        parts = [f"seen {seen or '-'}"]
        if missing:
            parts.append(f"NOT seen {missing}")
        if server:
            parts.append(f"server conditions {server}")
        lines.append(f"  {label:<{width}}  {'; '.join(parts)}")
    if coverage.undocumented:
        shown = ", ".join(f"{p.operation} {p.status} (x{p.answers})" for p in coverage.undocumented)
        lines.append(f"  statuses openapi.yaml does not list: {shown}")
    for name, why in coverage.not_run.items():
        lines.append(f"  never ran: {name}: {why}")
    return lines


def as_dict(coverage: Coverage) -> dict[str, Any]:
    return {
        "percent": round(coverage.percent, 1),
        "pairs_observed": coverage.pairs_observed,
        "pairs_counted": len(coverage.counted_pairs),
        "rules_run": coverage.rules_run,
        "rules_total": len(coverage.rules),
        "pairs": [{"operation": p.operation, "status": p.status, "answers": p.answers,
                   "provokable": p.provokable} for p in coverage.pairs],
        "undocumented_statuses": [{"operation": p.operation, "status": p.status, "answers": p.answers}
                                  for p in coverage.undocumented],
        "rules_not_run": [{"name": name, "reason": why} for name, why in coverage.not_run.items()],
    }


def junit_properties(coverage: Coverage) -> dict[str, str]:
    missing = [f"{p.operation} {p.status}" for p in coverage.counted_pairs if not p.answers]
    return {
        "coverage.percent": f"{coverage.percent:.1f}",
        "coverage.pairs.observed": str(coverage.pairs_observed),
        "coverage.pairs.counted": str(len(coverage.counted_pairs)),
        "coverage.pairs.not_observed": "; ".join(missing),
        "coverage.rules.run": str(coverage.rules_run),
        "coverage.rules.total": str(len(coverage.rules)),
        "coverage.rules.not_run": "; ".join(coverage.not_run),
    }
