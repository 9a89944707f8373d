"""Reports: the human summary, JUnit XML for CI, JSON for tools, and curl reproductions.

The API key never appears in any of them: curl commands read it from ``$QUOTA_API_KEY``,
and every text that leaves the suite passes :func:`redact` as a last line of defence (a
server echoing the key in an error message must not leak it into a CI log).
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from .results import CheckRecord, Status

REDACTED = "[REDACTED]"
KEY_VARIABLE = "$QUOTA_API_KEY"
# Headers requests adds by itself; a reproduction does not need them.
_NOISE = {"user-agent", "accept-encoding", "accept", "connection", "content-length", "x-schemathesis-testcaseid"}


Secrets = str | Sequence[str]


def redact(text: str, secret: Secrets) -> str:
    """``text`` with every key in ``secret`` (one key, or several) masked."""
    for key in sorted([secret] if isinstance(secret, str) else list(secret), key=len, reverse=True):
        if key:
            text = text.replace(key, REDACTED)
    return text


def curl_command(request: requests.PreparedRequest | None, api_key: str) -> str:
    """A shell command that sends this request again, the key taken from ``$QUOTA_API_KEY``."""
    if request is None:
        return ""
    parts = ["curl", "-X", request.method or "GET"]
    for name, value in request.headers.items():
        if name.lower() in _NOISE:
            continue
        if name.lower() == "authorization" and api_key and api_key in value:
            # Double quotes so that the shell expands the variable.
            parts.append('-H "' + name + ": " + value.replace(api_key, KEY_VARIABLE) + '"')
            continue
        parts.append("-H " + shlex.quote(f"{name}: {value}"))
    body = request.body
    if body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        if len(text) > 2000:
            text = text[:2000] + "...(truncated)"
        parts.append("-d " + shlex.quote(text))
    parts.append(shlex.quote(request.url or ""))
    return redact(" ".join(parts), api_key)


@dataclass
class Summary:
    """Everything a report shows about one run."""

    target: str
    profile: str
    read_only: bool
    records: list[CheckRecord]
    elapsed_seconds: float
    requests_sent: int
    budget_total_micros: int
    budget_reserved_micros: int
    refused: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for record in self.records:
            counts[record.status.value] += 1
        return counts

    @property
    def conformant(self) -> bool:
        return all(record.status is not Status.FAILED for record in self.records)


def _dollars(micros: int) -> str:
    return f"${micros / 1_000_000:.2f}" if micros % 10_000 == 0 else f"${micros / 1_000_000:.6f}"


def human(summary: Summary, api_key: Secrets, verbose: bool = True) -> str:
    lines = [
        f"quota-conformance against {summary.target} (profile {summary.profile}"
        f"{', read-only' if summary.read_only else ''})",
        "",
    ]
    width = max((len(r.name) for r in summary.records), default=10)
    for record in summary.records:
        lines.append(f"{record.status.value.upper():<12} {record.name:<{width}}  {record.reason}")
    details = [r for r in summary.records if r.findings]
    if verbose and details:
        lines += ["", "Details (reproduce with QUOTA_API_KEY set in your shell):"]
        for record in details:
            for finding in record.findings:
                lines.append("")
                lines.append(f"[{finding.severity.value.upper()}] {record.name} - {finding.operation}: {finding.title}"
                             f" ({finding.provenance})")
                lines += [f"    {line}" for line in finding.message.strip().splitlines()[:12]]
                for number, command in enumerate(finding.curl, 1):
                    label = "reproduce" if len(finding.curl) == 1 else f"step {number}"
                    lines.append(f"    {label}: {command}")
    counts = summary.counts
    lines += [
        "",
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['warned']} warned, "
        f"{counts['inconclusive']} inconclusive, {counts['skipped']} skipped",
        f"{summary.requests_sent} requests; granted at most {_dollars(summary.budget_reserved_micros)} "
        f"of the {_dollars(summary.budget_total_micros)} budget",
    ]
    if summary.refused:
        refused = ", ".join(f"{n} {why}" for why, n in sorted(summary.refused.items()))
        lines.append(f"not sent, by the safety guard: {refused}")
    lines += summary.notes
    lines.append(f"Time taken: {summary.elapsed_seconds:.1f} s")
    lines.append("RESULT: " + ("conformant" if summary.conformant else "NOT conformant"))
    return redact("\n".join(lines), api_key)


def as_json(summary: Summary, api_key: Secrets) -> str:
    document: dict[str, Any] = {
        "target": summary.target,
        "profile": summary.profile,
        "read_only": summary.read_only,
        "conformant": summary.conformant,
        "elapsed_seconds": round(summary.elapsed_seconds, 3),
        "requests_sent": summary.requests_sent,
        "budget": {"total_microdollars": summary.budget_total_micros,
                   "granted_at_most_microdollars": summary.budget_reserved_micros},
        "refused_by_guard": summary.refused,
        "counts": summary.counts,
        "rules": [
            {
                "id": r.name,
                "description": r.description,
                "provenance": r.provenance,
                "status": r.status.value,
                "reason": r.reason,
                "observations": r.runs,
                "findings": [
                    {"severity": f.severity.value, "provenance": f.provenance, "operation": f.operation,
                     "title": f.title, "message": f.message, "curl": list(f.curl)}
                    for f in r.findings
                ],
            }
            for r in summary.records
        ],
    }
    return redact(json.dumps(document, indent=2), api_key)


def as_junit(summary: Summary, api_key: Secrets) -> str:
    counts = summary.counts
    suite = ET.Element(
        "testsuite",
        name="quota-conformance",
        tests=str(len(summary.records)),
        failures=str(counts["failed"]),
        skipped=str(counts["skipped"] + counts["inconclusive"]),
        errors="0",
        time=f"{summary.elapsed_seconds:.3f}",
    )
    for record in summary.records:
        case = ET.SubElement(suite, "testcase", classname="quota-conformance", name=record.name)
        status = record.status
        text = "\n\n".join(
            "\n".join([f"{f.operation}: {f.title} ({f.severity.value}, {f.provenance})", f.message, *f.curl])
            for f in record.findings
        )
        if status is Status.FAILED:
            ET.SubElement(case, "failure", message=record.reason, type="ContractViolation").text = text
        elif status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=record.reason)
        elif status is Status.INCONCLUSIVE:
            ET.SubElement(case, "skipped", message=f"inconclusive: {record.reason}")
        elif status is Status.WARNED:
            ET.SubElement(case, "system-out").text = "WARNING (the contract's own choice)\n" + text
    root = ET.Element("testsuites")
    root.append(suite)
    return redact(ET.tostring(root, encoding="unicode", xml_declaration=True), api_key)


def rules_markdown(rules: Sequence[Any]) -> str:
    """The rule catalogue as a Markdown table (``quota-conformance --list-rules``; docs/conformance.md
    holds the same table, and a test keeps the two equal)."""
    lines = ["| rule | provenance | needs | what it verifies |", "| --- | --- | --- | --- |"]
    for rule in rules:
        needs = ", ".join(sorted(str(n) for n in rule.needs)) or "-"
        budget = rule.cost.least
        if budget:
            needs = f"{needs}, ${budget / 1_000_000:.2f}" if needs != "-" else f"${budget / 1_000_000:.2f}"
        text = rule.description.replace("|", "\\|")
        lines.append(f"| `{rule.name}` | {rule.provenance} | {needs} | {text} |")
    return "\n".join(lines)
