"""One conformance run: preflight, the rules' probes (planned within the budget), the work they
left for the end, then the schema-driven phase."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

# The rule modules: importing them registers their rules, in this order (the report's).
from . import (  # noqa: F401
    builtin_checks,
    checks,
    fuzz,
    rules_access,
    rules_chat,
    rules_grants,
    rules_idempotency,
    rules_identity,
    rules_retention,
)
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
    notes: list[str] = []
    _preflight(target)
    probes = []
    for rule in REGISTRY.probes():
        if options.selects(rule.name):
            probes.append(rule)
        else:
            for name in (rule.name, *rule.records):
                results.skip(name, "not selected (--rule)")
    try:
        shares = plan(probes, target)
        for rule in probes:
            if rule.name in shares:
                run_rule(target, rule, shares[rule.name])
        for rule_name, work in target.deferred:
            _run_deferred(target, rule_name, work)
    except LimitReached as limit:
        notes.append(f"stopped early: {limit}")
    fuzzer = fuzz.Fuzzer(target)
    builtins = [rule.name for rule in REGISTRY.of_kind(Kind.BUILTIN)]
    if options.fuzz and not target.guard.seconds_left <= 0:
        try:
            fuzzer.run()
        except LimitReached as limit:
            notes.append(f"stopped early: {limit}")
        notes.append(f"schema-driven phase: {fuzzer.sent} generated requests sent"
                     + (f", {sum(fuzzer.not_sent.values())} not sent ({_fmt(fuzzer.not_sent)})"
                        if fuzzer.not_sent else ""))
        if fuzzer.stopped:
            notes.append(f"schema-driven phase stopped early: {fuzzer.stopped}")
    else:
        for name in builtins:
            results.skip(name, "schema-driven phase disabled (--no-fuzz)")
    for name in builtins:
        results.skip(name, "read-only mode: not exercised" if options.read_only else "not exercised")
    guard = session.guard
    summary = Summary(
        target=options.base_url or "in-process mock",
        profile=options.profile.value,
        read_only=options.read_only,
        records=list(results.records.values()),
        elapsed_seconds=time.monotonic() - started,
        requests_sent=guard.stats.requests,
        budget_total_micros=guard.budget.total,
        budget_reserved_micros=guard.budget.reserved,
        refused=dict(guard.stats.refused),
        notes=notes,
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


def _fmt(counter: Any) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(counter.items()))
