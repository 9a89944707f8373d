"""One conformance run: preflight, the rules' probes (planned within the budget), the work they
left for the end, then the schema-driven phase."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

# The rule modules: importing them registers their rules, in this order. It is the order of
# the report within a family and, within a stage, the order in which probes are given the
# budget: a module moved in this list changes both. (The helpers they share, rule_helpers and
# chat_helpers, register nothing.)
# isort: off
from . import (  # noqa: F401
    builtin_checks,
    checks,
    fuzz,
    rules_access,
    rules_me,
    rules_edges,
    rules_grants,
    rules_pool,
    rules_grant_requests,
    rules_chat_billing,
    rules_chat_refusals,
    rules_chat_stream,
    rules_idempotency,
    rules_identity,
    rules_retention,
)
# isort: on
from .coverage import StatusObserver, measure
from .engine import Target
from .facts import BALANCE, ContractFacts
from .options import Options
from .properties import Skip, plan, run_rule
from .registry import REGISTRY, Kind
from .report import Summary
from .results import Results
from .safety import GuardedSession, LimitReached, RequestRefused, SafetyGuard
from .transport import WSGIAdapter

EXIT_CONFORMANT, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2


class TargetUnreachable(Exception):
    """The target cannot be tested (no answer, or a key refused); exit code 2."""


def catalogue() -> dict[str, str]:
    """Every rule of the suite, in report order, with what it verifies."""
    return {rule.name: rule.description for rule in REGISTRY}


@dataclass
class RunReport:
    summary: Summary
    results: Results
    api_key: str
    secrets: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CONFORMANT if self.summary.conformant else EXIT_VIOLATIONS


def make_session(options: Options, app: Any = None, facts: ContractFacts | None = None) -> GuardedSession:
    session = GuardedSession(SafetyGuard(options, facts=facts))
    if app is not None:
        session.mount(options.target_url + "/", WSGIAdapter(app))
    return session


def run(options: Options, app: Any = None, session: GuardedSession | None = None,
        sleep: Callable[[float], None] = time.sleep) -> RunReport:
    """Run the suite against ``options.base_url``, or in-process against the WSGI ``app``.
    ``sleep`` is how the run waits (``--retention-check``): a test can move a mock's clock."""
    started = time.monotonic()
    options = options.checked()
    own_session = session is None
    session = session or make_session(options, app)
    try:
        return _run(options, session, started, sleep)
    finally:
        if own_session:
            session.close()  # no keep-alive connection left for the server to wait on


def _run(options: Options, session: GuardedSession, started: float, sleep: Callable[[float], None]) -> RunReport:
    results = Results(REGISTRY)
    target = Target(options, session, results, sleep=sleep)
    observer = StatusObserver(target.contract, urlsplit(options.target_url).path)
    session.observers.append(observer)
    notes: list[str] = []
    _preflight(target)
    probes = []
    for rule in REGISTRY.probes():
        if options.selects(rule.name):
            probes.append(rule)
        else:
            for name in (rule.name, *rule.records):
                results.skip(name, "not selected (--rule)")
    # Before the probes: it watches their grants (a funded user for its chats, see fuzz.py).
    fuzzer = fuzz.Fuzzer(target)
    try:
        shares = plan(probes, target)
        for rule in probes:
            if rule.name in shares:
                run_rule(target, rule, shares[rule.name])
        for rule_name, work in target.deferred:
            _run_deferred(target, rule_name, work)
    except LimitReached as limit:
        notes.append(f"stopped early: {limit}")
    builtins = [rule.name for rule in REGISTRY.of_kind(Kind.BUILTIN)]
    if options.fuzz and not target.guard.seconds_left <= 0:
        try:
            fuzzer.run()
        except LimitReached as limit:
            notes.append(f"stopped early: {limit}")
        notes += fuzz_notes(fuzzer)
    else:
        for name in builtins:
            results.skip(name, "schema-driven phase disabled (--no-fuzz)")
    for name in builtins:
        results.skip(name, "read-only mode: not exercised" if options.read_only else "not exercised")
    guard = session.guard
    records = list(results.records.values())
    summary = Summary(
        target=options.base_url or "in-process mock",
        profile=options.profile.value,
        read_only=options.read_only,
        records=records,
        elapsed_seconds=time.monotonic() - started,
        requests_sent=guard.stats.requests,
        budget_total_micros=guard.budget.total,
        budget_reserved_micros=guard.budget.reserved,
        refused=dict(guard.stats.refused),
        notes=notes,
        coverage=measure(target.contract, observer, records),
        fuzz=fuzz_summary(fuzzer) if options.fuzz and fuzzer.explorations else None,
    )
    return RunReport(summary, results, options.api_key, options.secrets)


def _run_deferred(target: Target, rule: str, work: Callable[[], None]) -> None:
    try:
        work()
    except LimitReached:
        raise
    except (Skip, RequestRefused) as skip:
        target.results.note(rule, f"its final step did not run: {skip}")


def _preflight(target: Target) -> None:
    try:
        public = [op for op in target.contract.operations if op.public and op.method == "GET"]
        probe = target.contract.by_id[BALANCE]
        if public:
            target.call(target.case(public[0].operation_id, auth=False))
        answer = target.call(target.case(probe.operation_id))
        second = target.options.second_api_key
        second_answer = target.call(target.case(probe.operation_id, auth=False, headers={
            "Authorization": f"Bearer {second}"})) if second else None
    except requests.RequestException as exc:
        raise TargetUnreachable(f"{target.options.target_url} is unreachable: {type(exc).__name__}") from exc
    refused = target.facts.error("InvalidApiKey").status
    if answer.status_code == refused:
        raise TargetUnreachable("the target refused the API key (401 on GET /v1/balance): check --api-key")
    if second_answer is not None and second_answer.status_code == refused:
        raise TargetUnreachable("the target refused the second API key (401 on GET /v1/balance): "
                                "check --second-api-key")


def fuzz_notes(fuzzer: fuzz.Fuzzer) -> list[str]:
    """What the schema-driven phase sent, and what it planned but did not explore."""
    by_source: Counter[str] = Counter()
    for record in fuzzer.explorations:
        by_source.update(record.sent)
    notes = [f"schema-driven phase: {fuzzer.sent} requests in {fuzzer.seconds:.1f} s ({_fmt(by_source)})"
             + (f"; {sum(fuzzer.not_sent.values())} not sent ({_fmt(fuzzer.not_sent)})" if fuzzer.not_sent else "")]
    left = [record.operation for record in fuzzer.explorations if record.more_available]
    if left:
        notes.append(f"schema-driven phase: coverage cases left when it stopped, for {', '.join(left)} "
                     "(raise --fuzz-time to send more)")
    unexplored = fuzzer.unexplored
    if unexplored:
        notes.append(f"NOT EXPLORED by the schema-driven phase ({fuzzer.stopped or 'stopped'}):")
        for record in unexplored:
            done = f"; sent {_fmt(record.sent)}" if record.sent else ""
            notes.append(f"  {record.operation}: {', '.join(record.unfinished)} not finished{done}")
    return notes


def fuzz_summary(fuzzer: fuzz.Fuzzer) -> dict[str, Any]:
    """The schema-driven phase for the JSON report."""
    return {
        "requests": fuzzer.sent,
        "seconds": round(fuzzer.seconds, 3),
        "stopped": fuzzer.stopped,
        "not_sent": dict(fuzzer.not_sent),
        "operations": [{"operation": r.operation, "sent": dict(r.sent), "not_sent": dict(r.not_sent),
                        "finished": r.finished, "not_explored": r.unfinished, "more_available": r.more_available,
                        "extra_batches": r.batches}
                       for r in fuzzer.explorations],
    }


def _fmt(counter: Any) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(counter.items()))
