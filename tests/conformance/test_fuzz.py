"""The schema-driven phase: no false failures on correct-but-strict deployments, server errors
found on edge inputs, a time budget that reports what it did not explore, coverage in every
report, and production safety with generated amounts."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import pytest

from conformance import Options, run
from conformance.fuzz import header_safe
from conformance.report import as_json, as_junit, human
from conformance.results import Status
from mockserver import mock_state

from .edge_mutants import EDGE_MUTANTS, KEY, Request, fixed_app, strict_app, wrap

ALL_SOURCES = ("edges", "coverage", "positive", "negative")
ONE_DOLLAR = 1_000_000


def go(app: Any, **options: Any) -> Any:
    # The staging budget: the rules' probes spend most of a dollar; generated grants need some too.
    settings = {"max_examples": 2, "seed": 1, "fuzz_seconds": 3600.0, "budget_micros": 5 * ONE_DOLLAR, **options}
    return run(Options(api_key=KEY, **settings), app=app)


def failed(report: Any) -> dict[str, str]:
    return {name: record.reason for name, record in report.results.records.items()
            if record.status is Status.FAILED}


def assert_within_budget(app: Any, report: Any) -> None:
    grants = [e for e in mock_state(app).service.store.ledger() if e.kind == "grant"]
    assert sum(e.amount for e in grants) <= report.summary.budget_reserved_micros <= report.summary.budget_total_micros
    assert grants and all(e.user_id.startswith("conformance-") for e in grants)


# -- no false failures ---------------------------------------------------------------------


def test_a_strict_deployment_passes_the_documented_profile_with_the_true_reasons():
    """Integral floats and unknown fields refused with 400 (as Go servers and OpenAI do): every
    generated-data source sends such requests, and none of them is a documented failure."""
    app = strict_app()
    report = go(app, fuzz_sources=ALL_SOURCES, max_examples=1)
    assert failed(report) == {}
    assert report.exit_code == 0
    refused = report.results.records["schema.positive_data"]
    assert refused.status is Status.WARNED
    messages = "\n".join(f.message for f in refused.findings)
    # The true reason, whichever of the two the generated requests met (test_plain.py holds
    # each reason's wording to its own case).
    assert "an integral float" in messages or "which openapi.yaml does not define" in messages
    assert "max_tokens must be an integer" in messages  # what the server said
    assert "additional properties" not in messages  # Schemathesis' guess is gone
    # The contract's call: a warning here, a failure under --profile strict (test_profiles).
    assert all(f.provenance == "contract" for f in refused.findings)
    assert_within_budget(app, report)


def test_a_refused_plain_request_is_a_documented_failure():
    """The other side: a server refusing a plainly documented chat fails the documented profile."""

    def refuse_all_chats(request: Request) -> Any:
        if request.chat and isinstance(request.body, dict):
            return 400, {"error": {"code": "bad_request", "message": "model not allowed"}}
        return None

    report = go(wrap(fixed_app(), refuse_all_chats), fuzz_sources=("edges",))
    record = report.results.records["schema.positive_data"]
    assert record.status is Status.FAILED
    documented = [f for f in record.findings if f.provenance == "documented"]
    assert documented and "The request is plainly documented" in documented[0].message


# -- fuzzing with teeth --------------------------------------------------------------------


def test_the_mocks_own_integral_float_regression_is_caught_at_the_default_budget():
    """issue 10: the mock answered 500 to "max_tokens": 3.0. The probes spend the default $0.10;
    the phase then bills a user they funded, so the code behind billing runs."""
    report = go(wrap(fixed_app(), EDGE_MUTANTS["integral_float_max_tokens"][1]), fuzz_sources=("edges",),
                budget_micros=Options(api_key=KEY).budget_micros)
    assert "errors.no_server_error" in failed(report)
    curls = [c for f in report.results.records["errors.no_server_error"].findings for c in f.curl]
    assert any('"max_tokens": 1.0' in c for c in curls)


def test_every_planted_edge_500_is_caught():
    """One deployment with every planted 500 (integral floats, long strings, non-ASCII and
    emoji text, empty objects, boundary amounts, 64-bit overflow): each one must be reached."""
    fired: Counter[str] = Counter()
    sent: list[Request] = []

    def all_of_them(request: Request) -> Any:
        sent.append(request)
        for name, (_, hook) in EDGE_MUTANTS.items():
            answer = hook(request)
            if answer is not None:
                fired[name] += 1
                return answer
        return None

    app = wrap(fixed_app(), all_of_them)
    report = go(app, fuzz_sources=("edges", "coverage"))
    assert "errors.no_server_error" in failed(report)
    assert set(fired) == set(EDGE_MUTANTS), f"never reached: {sorted(set(EDGE_MUTANTS) - set(fired))}"
    # Safe all the same: every user named is one of this run's, no unusual method was sent.
    assert_within_budget(app, report)
    assert {r.method for r in sent} <= {"GET", "HEAD", "OPTIONS", "POST"}  # OPTIONS: auth.other_forms, a safe method
    named = [user for r in sent for user in users_named(r)]
    assert named and all(user.startswith("conformance-") for user in named), sorted(set(named))[:5]


def users_named(request: Request) -> list[str]:
    """The user ids a request names where a server reads them: the path, the query, the chat
    header, a grant's body."""
    found = [*request.query.get("external_user_id", []), *filter(None, [request.headers.get("x-external-user-id")])]
    if request.path.startswith("/v1/users/"):
        found.append(request.path.removeprefix("/v1/users/").rsplit("/", 2 if request.chat else 1)[0])
    user = request.field("external_user_id") if request.grant else None
    if isinstance(user, str | int | float | bool):
        found.append(str(user))
    return found


# -- budgeted by time, nothing hidden ------------------------------------------------------


def test_a_spent_time_budget_reports_every_operation_not_explored():
    report = go(fixed_app(), fuzz_seconds=1e-6, fuzz_sources=ALL_SOURCES)
    text = "\n".join(report.summary.notes)
    assert "NOT EXPLORED" in text and "time budget spent" in text and "--fuzz-time" in text
    operations = report.summary.fuzz["operations"]
    assert len(operations) == 7 and all(op["not_explored"] for op in operations)
    assert report.exit_code == 0  # a verdict on what was checked; the gap is reported, not hidden


def test_a_request_bound_is_shared_by_every_operation_and_reported():
    probes_only = go(fixed_app(), fuzz=False).summary.requests_sent
    # The phase's own funded grant, then a few turns for each of the 7 operations.
    report = go(fixed_app(), max_requests=probes_only + 1 + 7 * 3)
    fuzz = report.summary.fuzz
    assert "request bound" in fuzz["stopped"]
    assert all(sum(op["sent"].values()) >= 2 for op in fuzz["operations"]), fuzz["operations"]
    assert "NOT EXPLORED" in "\n".join(report.summary.notes)


def test_max_examples_bounds_the_generated_cases_per_operation_and_mode(run_app):
    report = run_app(fixed_app(), max_examples=2, fuzz_sources=("positive", "negative"))
    for op in report.summary.fuzz["operations"]:
        assert op["sent"].get("positive", 0) <= 2 and op["sent"].get("negative", 0) <= 2
        assert op["extra_batches"] == 0
    assert "NOT EXPLORED" not in "\n".join(report.summary.notes)


# -- coverage ------------------------------------------------------------------------------


def test_coverage_is_in_every_report(run_app):
    report = run_app(fixed_app())
    coverage = report.summary.coverage
    assert 0 < coverage.percent <= 100
    pairs = {(p.operation, p.status): p.answers for p in coverage.pairs}
    assert pairs[("POST /v1/funding/grant", 200)] > 0 and pairs[("GET /v1/packages", 200)] > 0
    assert ("POST /v1/chat/completions", 503) in pairs  # listed, though a client cannot provoke it
    text = human(report.summary, KEY)
    assert re.search(r"Coverage: \d+% \(\d+ of \d+ operation x status pairs", text)
    document = json.loads(as_json(report.summary, KEY))
    assert document["coverage"]["percent"] == round(coverage.percent, 1)
    assert document["fuzz"]["requests"] == report.summary.fuzz["requests"]
    properties = {p.get("name"): p.get("value") for p in ET.fromstring(as_junit(report.summary, KEY)).iter("property")}
    assert properties["coverage.percent"] == f"{coverage.percent:.1f}"
    assert "POST /v1/funding/grant 402" in properties["coverage.pairs.not_observed"]


def test_coverage_names_the_rules_that_never_ran_and_why(run_app):
    report = run_app(fixed_app(), read_only=True)
    coverage = report.summary.coverage
    assert coverage.not_run and all(coverage.not_run.values())
    assert "--read-only" in coverage.not_run["grant.arithmetic"]
    assert not any(p.answers for p in coverage.pairs if p.operation.startswith("POST"))
    assert coverage.percent < 75
    assert "never ran: grant.arithmetic" in human(report.summary, KEY)


@pytest.mark.parametrize("fuzz_time", ["0", "-1"])
def test_the_time_budget_must_be_positive(fuzz_time):
    from conformance.cli import main

    assert main(["--api-key", KEY, "--base-url", "http://127.0.0.1:9", "--fuzz-time", fuzz_time]) == 2


@pytest.mark.parametrize(("user", "safe"), [
    ("conformance-0123456789abcdef-ann", True), ("conformance-0123456789abcdef-zoe\u0308", False),
    ("conformance-0123456789abcdef-中", False), ("conformance-0123456789abcdef-bob ", False),
    ("conformance-0123456789abcdef-a\tb", False), (None, False),
])
def test_generated_chats_reuse_only_funded_users_a_header_can_carry(user, safe):
    # Over a socket a decomposed accent in X-External-User-ID crashed the run (latin-1).
    assert header_safe(user) is safe


def test_a_generated_request_left_without_an_answer_is_counted_and_the_run_goes_on():
    """A slow provider (a read timeout) or a dropped connection during the schema-driven phase
    judges nothing: the case is counted as not sent, and the run still reports (it ended in a
    traceback and no report)."""
    import requests

    chats = Counter[str]()

    def every_third_chat_times_out(request: Request) -> Any:
        if request.chat:
            chats["sent"] += 1
            if chats["sent"] % 3 == 0:
                raise requests.ReadTimeout("the provider took longer than the request timeout")
        return None

    report = go(wrap(fixed_app(), every_third_chat_times_out), fuzz_sources=("positive",))
    assert chats["sent"] >= 6
    assert report.exit_code in (0, 1)
    assert "no answer (ReadTimeout)" in human(report.summary, KEY)


def test_a_keyless_probe_refused_for_now_is_not_judged_by_ignored_auth(run_app):
    # A gateway that answers requests without a key 429 with a Retry-After past the suite's
    # longest wait (its limiter counts before the key check): ignored_auth's own probe never
    # reaches the key check, so it judges nothing (a CI run failed the documented rate limit so).
    from .mutants import Exchange, base_app, middleware

    def before(ex: Exchange) -> bool:
        if ex.method == "GET" and not ex.header("Authorization") and ex.path != "/v1/packages":
            ex.error(429, "rate_limit_exceeded", "Rate limit exceeded")
            ex.response_headers["Retry-After"] = "3600"
            return True
        return False

    report = run_app(middleware(base_app(), None, before), budget_micros=0)
    record = report.results.records["schema.ignored_auth"]
    assert record.status is not Status.FAILED, (record.status, record.findings)
    assert report.exit_code == 0, [n for n, r in report.results.records.items() if r.status is Status.FAILED]
