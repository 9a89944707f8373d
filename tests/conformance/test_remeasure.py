"""How an example whose grant pool moved wrongly is run again before it is judged
(conformance.properties.run_rule and Probe.remeasure), on a rule of the test's own: what each
try sees is scripted, so every outcome is exact rather than left to timing."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from conformance.properties import REMEASURES, Probe, run_rule
from conformance.registry import Cost, Kind, Rule
from conformance.results import Results, Status
from mockserver.domain.money import MICROS_PER_CENT

Script = Callable[[Probe], None]


def run_scripted(script: Script, examples: int = 1,
                 share: int = 10 * MICROS_PER_CENT) -> tuple[Results, list[int], list[str]]:
    """Run ``script`` as a rule's probe: its results, the attempts it was called with, in order,
    and the titles of the failures it recorded."""
    attempts: list[int] = []
    failures: list[str] = []

    def probe(p: Probe) -> None:
        attempts.append(p.attempt)
        script(p)

    rule = Rule("test.pool", "contract", "a scripted rule", Kind.PROBE, probe=probe,
                cost=Cost(MICROS_PER_CENT, examples))
    results = Results([rule])
    target = SimpleNamespace(options=SimpleNamespace(seed=7), results=results,
                             guard=SimpleNamespace(stats=SimpleNamespace(rate_limited=0)),
                             registry_provenance=lambda name: "contract",
                             violation=lambda name, exchanges, title, *more: failures.append(title))
    run_rule(target, rule, share)  # type: ignore[arg-type]
    return results, attempts, failures


def wrong_move_in_tries(*tries: int) -> Script:
    """The pool moves wrongly in these tries of the first example (0 = its first try)."""
    def script(p: Probe) -> None:
        p.wallet.take(MICROS_PER_CENT)
        if p.index == 0 and p.attempt in tries:
            p.remeasure("it moved by -$0.01")
            p.fail([], "The grant pool moved by the wrong amount", "scripted")
            return
        p.passed()

    return script


def test_a_wrong_move_seen_once_is_run_again_and_the_second_try_judges():
    results, attempts, failures = run_scripted(wrong_move_in_tries(0), examples=2)
    record = results.records["test.pool"]
    assert attempts == [0, 1, 0]  # the first example twice, then the second example
    assert record.status is Status.PASSED and not failures, (record, failures)
    # Passed by the second try, with the first one's wrong move on record as undecided.
    assert any("the example run again decides" in reason for reason in record.inconclusive), record


def test_a_wrong_move_seen_in_every_try_is_a_failure():
    _, attempts, failures = run_scripted(wrong_move_in_tries(*range(REMEASURES + 1)))
    assert attempts == list(range(REMEASURES + 1))
    assert failures == ["The grant pool moved by the wrong amount"]


def test_a_try_again_the_budget_cannot_pay_leaves_the_rule_undecided():
    def script(p: Probe) -> None:
        p.wallet.take(MICROS_PER_CENT * (1 + p.attempt))  # the second try asks more than the first spent
        if p.attempt == 0:
            p.remeasure("it moved by -$0.01")
        p.passed()

    results, attempts, failures = run_scripted(script, share=MICROS_PER_CENT)
    record = results.records["test.pool"]
    assert attempts == [0, 1] and not failures
    assert record.status is Status.INCONCLUSIVE, record
    assert any("could not be measured again" in reason for reason in record.inconclusive), record


def test_a_try_again_that_skips_leaves_the_rule_undecided_not_skipped():
    def script(p: Probe) -> None:
        if p.attempt == 0:
            p.remeasure("it moved by -$0.01")
        p.skip("the first grant answered 503")

    results, _, failures = run_scripted(script)
    record = results.records["test.pool"]
    assert record.status is Status.INCONCLUSIVE and record.skip_reason is None and not failures, record
