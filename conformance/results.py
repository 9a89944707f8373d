"""What a run found: one record per rule, each passed, failed, warned, inconclusive or skipped,
with the reason."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from .profiles import Severity
from .registry import Rule, UnknownRule


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNED = "warned"
    # Ran, but what it saw cannot decide (another client moved a shared balance meanwhile).
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    check: str
    operation: str
    title: str
    message: str
    severity: Severity
    provenance: str
    # Shell commands reproducing it, in order (a replay needs its first request too).
    curl: tuple[str, ...] = ()


@dataclass
class CheckRecord:
    name: str
    description: str
    provenance: str = ""
    runs: int = 0
    skip_reason: str | None = None
    inconclusive: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The probe itself broke (a bug of the suite's): what did run proves nothing whole.
    broken: str | None = None

    @property
    def status(self) -> Status:
        if any(f.severity is Severity.FAILURE for f in self.findings):
            return Status.FAILED
        if self.findings:
            return Status.WARNED
        if self.broken is not None:
            return Status.INCONCLUSIVE
        if self.runs == 0:
            return Status.INCONCLUSIVE if self.inconclusive else Status.SKIPPED
        return Status.PASSED

    @property
    def reason(self) -> str:
        """The one-line explanation shown next to the status."""
        status = self.status
        if status is Status.SKIPPED:
            return self.skip_reason or "not exercised by this run"
        if status is Status.INCONCLUSIVE:
            return self.broken or self.inconclusive[0]
        if status is Status.PASSED:
            detail = f"{self.runs} observation{'s' if self.runs != 1 else ''} checked"
            undecided = [f"{len(self.inconclusive)} inconclusive ({self.inconclusive[0]})"] if self.inconclusive else []
            return "; ".join([detail, *undecided, *self.notes])
        first = self.findings[0]
        more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        return f"{first.operation}: {first.title}{more}"


class Results:
    """Thread-safe collector, one record per registered rule; findings are de-duplicated per
    rule, operation and title. A name no rule has is refused (:class:`UnknownRule`): a typo
    must not quietly become a rule of its own."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.records = {rule.name: CheckRecord(rule.name, rule.description, rule.provenance) for rule in rules}
        self._seen: set[tuple[str, str, str, str]] = set()
        self._lock = threading.Lock()

    def record(self, name: str) -> CheckRecord:
        try:
            return self.records[name]
        except KeyError:
            raise UnknownRule(name) from None

    def ran(self, name: str, count: int = 1) -> None:
        with self._lock:
            self.record(name).runs += count

    def skip(self, name: str, reason: str) -> None:
        with self._lock:
            record = self.record(name)
            if record.skip_reason is None:
                record.skip_reason = reason

    def undecided(self, name: str, reason: str) -> None:
        """The rule ran but could not decide (see :attr:`Status.INCONCLUSIVE`)."""
        with self._lock:
            self.record(name).inconclusive.append(reason)

    def broke(self, name: str, reason: str) -> None:
        """The rule's probe stopped on an error of its own: INCONCLUSIVE, never PASSED."""
        with self._lock:
            record = self.record(name)
            if record.broken is None:
                record.broken = reason

    def note(self, name: str, note: str) -> None:
        with self._lock:
            record = self.record(name)
            if note not in record.notes:
                record.notes.append(note)

    def add(self, finding: Finding) -> None:
        key = (finding.check, finding.operation, finding.title, finding.message.split("\n", 1)[0])
        with self._lock:
            record = self.record(finding.check)
            record.runs += 1
            if key in self._seen:
                return
            self._seen.add(key)
            record.findings.append(finding)

    def statuses(self) -> dict[str, Status]:
        return {name: record.status for name, record in self.records.items()}

    @property
    def failed(self) -> bool:
        return any(record.status is Status.FAILED for record in self.records.values())
