"""The suite passes against the mock, in-process and over HTTP, and stays within its bounds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conformance import Options, run
from conformance.results import Status
from mockserver import mock_state

from .conftest import FAST, grants_in_ledger, recording
from .mutants import KEY, base_app

# Rules that need an option a plain run does not give, and the rule no test budget reaches.
NEED_OPTIONS = {"idem.scope_per_key", "auth.second_key", "idem.retention", "grant.pool_insufficient"}


def test_passes_in_process(run_app):
    report = run_app(budget_micros=5_000_000)
    statuses = report.results.statuses()
    assert report.exit_code == 0
    not_passed = {n: s for n, s in statuses.items() if s != Status.PASSED}
    assert set(not_passed) == NEED_OPTIONS, not_passed
    records = report.results.records
    assert "--second-api-key" in records["idem.scope_per_key"].reason
    assert "--retention-check" in records["idem.retention"].reason
    assert "needs --budget >= $" in records["grant.pool_insufficient"].reason


def test_passes_over_http(served):
    url = served(base_app())
    report = run(Options(api_key=KEY, base_url=url, **{**FAST, "budget_micros": 5_000_000}))
    assert report.exit_code == 0
    assert {n for n, s in report.results.statuses().items() if s != Status.PASSED} == NEED_OPTIONS
    assert report.summary.target == url


def test_default_budget_does_what_fits_and_names_the_budget_for_the_rest(run_app):
    report = run_app()
    assert report.exit_code == 0
    records = report.results.records
    skipped = {n: r.reason for n, r in records.items() if r.status is Status.SKIPPED}
    assert not {n for n, r in records.items() if r.status in (Status.FAILED, Status.WARNED)}
    for name in ("grant.arithmetic", "grant.readback", "grant.pool_debit", "idem.replay", "chat.user_debit",
                 "auth.missing_key", "auth.near_miss_key", "packages.listed", "user.not_found"):
        assert records[name].status is Status.PASSED, (name, records[name].reason)
    for name, reason in skipped.items():
        assert name in NEED_OPTIONS or reason.startswith("needs --budget >= $"), (name, reason)
    assert skipped, "a $0.10 budget cannot cover every rule"


@pytest.mark.parametrize("budget", ["0.00", "0.04", "0.10", "1.00"])
def test_budget_is_never_exceeded(run_app, budget):
    app = base_app()
    report = run_app(app, budget_micros=int(Decimal(budget) * 1_000_000), max_examples=6)
    granted = sum(entry.amount for entry in grants_in_ledger(app))
    assert granted <= report.summary.budget_reserved_micros <= int(Decimal(budget) * 1_000_000)
    # Every grant went to a user this run created.
    assert all(entry.user_id.startswith("conformance-") for entry in grants_in_ledger(app))
    assert mock_state(app).service.conservation().holds


def test_no_budget_skips_with_the_option_that_enables_it(run_app):
    report = run_app(budget_micros=0)
    record = report.results.records["grant.arithmetic"]
    assert record.status is Status.SKIPPED and "--budget" in record.reason
    assert report.exit_code == 0


def test_read_only_sends_no_mutating_request():
    log: list[tuple[str, str]] = []
    app = recording(base_app(), log)
    ledger_before = mock_state(app).service.store.ledger_size()
    report = run(Options(api_key=KEY, read_only=True, **FAST), app=app)
    assert log, "the run sent nothing"
    assert {method for method, _ in log} <= {"GET", "HEAD", "OPTIONS"}  # the safe methods (RFC 9110, 9.2.1)
    assert mock_state(app).service.store.ledger_size() == ledger_before
    assert report.exit_code == 0
    records = report.results.records
    for name in ("grant.arithmetic", "idem.replay", "grant.missing_fields"):
        assert records[name].status is Status.SKIPPED and "read-only" in records[name].reason
    chat = records["chat.insufficient"]
    assert chat.status is Status.SKIPPED and "--read-only" in chat.reason  # says how to enable it
    assert records["auth.missing_key"].status is Status.PASSED


def test_user_prefix_is_honoured(run_app):
    app = base_app()
    run_app(app, user_prefix="acme-ci-")
    users = set(mock_state(app).service.store.users())
    created = users - {"user_123", "user_456"}
    assert created and all(user.startswith("acme-ci-") and len(user) > len("acme-ci-") for user in created)


def test_chat_disabled_reports_skipped_never_passed(run_app):
    report = run_app(chat=False)
    record = report.results.records["chat.insufficient"]
    assert record.status is Status.SKIPPED and "--no-chat" in record.reason


def test_request_bound_stops_the_run(run_app):
    report = run_app(max_requests=30)
    assert report.summary.requests_sent <= 30
    assert any("request bound" in note for note in report.summary.notes)


def test_by_default_the_schema_driven_phase_is_budgeted_by_time(run_app):
    """Without --max-examples, generation goes on batch after batch until --fuzz-time is spent
    (the chat operations never run out of new inputs), then stops: no request cap decides."""
    assert Options(api_key="x").max_examples is None and Options(api_key="x").max_requests is None
    report = run_app(max_examples=None, fuzz_seconds=2.0, seed=0)
    assert report.exit_code == 0
    assert "time budget spent" in report.summary.fuzz["stopped"]
    assert report.summary.elapsed_seconds > 0  # reported; never a timing gate (CI machines are shared and noisy)


def test_without_max_examples_batches_go_on_while_there_is_room(run_app):
    """Batch after batch while new inputs come (a request bound stops it here, not the clock,
    so that the test does not depend on the machine's speed); the first batch was all sent, so
    nothing is reported unexplored."""
    probes = run_app(read_only=True, fuzz=False).summary.requests_sent
    report = run_app(read_only=True, max_examples=None, fuzz_seconds=3600.0, max_requests=probes + 150)
    fuzz = report.summary.fuzz
    assert "request bound" in fuzz["stopped"]
    assert any(op["extra_batches"] for op in fuzz["operations"])
    assert not any(op["not_explored"] for op in fuzz["operations"])


def test_a_probe_that_breaks_is_inconclusive_never_passed(run_app, monkeypatch):
    """A bug in a probe (here a NameError after its first check passed) must not read as a
    pass: the rule is INCONCLUSIVE, with the error in its reason."""
    import dataclasses

    from conformance.registry import REGISTRY

    rule = REGISTRY["packages.listed"]
    original = rule.probe

    def broken(p):
        original(p)
        raise NameError("name 'DOCUMENTED' is not defined")

    monkeypatch.setitem(REGISTRY.rules, rule.name, dataclasses.replace(rule, probe=broken))
    report = run_app(rules=("packages.listed",), fuzz=False)
    record = report.results.records["packages.listed"]
    assert record.status == Status.INCONCLUSIVE and "NameError" in record.reason, record.reason
