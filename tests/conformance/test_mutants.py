"""The mutant matrix: each broken variant of the mock makes the suite fail, naming the check."""

from __future__ import annotations

import pytest

from conformance.report import human
from conformance.results import Status

from .mutants import KEY, MUTANTS, silent_variant


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_caught_by_the_right_check(run_app, name):
    factory, check = MUTANTS[name]
    report = run_app(factory())
    assert report.exit_code == 1
    record = report.results.records[check]
    assert record.status is Status.FAILED, f"{check} did not catch {name!r}: {record.status} {record.reason}"
    text = human(report.summary, KEY)
    assert f"FAILED   {check}" in text
    assert all(finding.curl for finding in record.findings)  # every failure can be reproduced


def test_matrix_is_large_enough():
    assert len(MUTANTS) >= 15


def test_silent_differences_pass_documented_with_warnings(run_app):
    report = run_app(silent_variant())
    statuses = report.results.statuses()
    assert report.exit_code == 0, {n: s for n, s in statuses.items() if s is Status.FAILED}
    warned = {n for n, s in statuses.items() if s is Status.WARNED}
    assert {"reused_key_with_other_body_rejected", "replay_sends_idempotent_replayed_header",
            "response_schema_conformance"} <= warned
    assert "WARNED" in human(report.summary, KEY)


def test_silent_differences_fail_strict(run_app):
    report = run_app(silent_variant(), profile="strict")
    assert report.exit_code == 1
    statuses = report.results.statuses()
    assert statuses["reused_key_with_other_body_rejected"] is Status.FAILED
    assert statuses["response_schema_conformance"] is Status.FAILED
