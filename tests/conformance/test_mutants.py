"""The mutant matrix: each broken variant of the mock makes the suite fail, naming the check."""

from __future__ import annotations

import re

import pytest

from conformance.registry import REGISTRY
from conformance.report import human
from conformance.results import Status

from .mutants import KEY, MUTANTS, silent_variant


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_caught_by_the_right_check(run_app, name):
    factory, check = MUTANTS[name]
    # As a staging job runs it (--budget 5), but only the rule that must catch it, when it has a probe.
    only = (check,) if REGISTRY[check].probe is not None else ()
    report = run_app(factory(), budget_micros=5_000_000, rules=only, fuzz=not only)
    assert report.exit_code == 1
    record = report.results.records[check]
    assert record.status is Status.FAILED, f"{check} did not catch {name!r}: {record.status} {record.reason}"
    text = human(report.summary, KEY)
    assert re.search(rf"^FAILED +{re.escape(check)} ", text, re.MULTILINE)
    assert all(finding.curl for finding in record.findings)  # every failure can be reproduced


def test_matrix_is_large_enough():
    assert len(MUTANTS) >= 15


def test_silent_differences_pass_documented_with_warnings(run_app):
    report = run_app(silent_variant(), budget_micros=5_000_000)
    statuses = report.results.statuses()
    assert report.exit_code == 0, {n: s for n, s in statuses.items() if s is Status.FAILED}
    warned = {n for n, s in statuses.items() if s is Status.WARNED}
    assert {"idem.reuse_changed", "idem.replay_header",
            "schema.response"} <= warned
    assert "WARNED" in human(report.summary, KEY)


def test_silent_differences_fail_strict(run_app):
    report = run_app(silent_variant(), profile="strict", budget_micros=5_000_000)
    assert report.exit_code == 1
    statuses = report.results.statuses()
    assert statuses["idem.reuse_changed"] is Status.FAILED
    assert statuses["schema.response"] is Status.FAILED
