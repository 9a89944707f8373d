"""The rules against the docs and the contract (issue 10, sections 1 and 4): every documented
sentence maps to a rule, every rule's provenance is openapi.yaml's mark, every contract choice
is judged by a rule; and the rules' own machinery: varied inputs, the budget plan, inconclusive
verdicts, the second key, retention, unusual methods, the reports."""

from __future__ import annotations

import functools
import itertools
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.facts import ContractFacts
from conformance.profiles import Provenance
from conformance.registry import REGISTRY, Kind
from conformance.report import as_json, as_junit, human, rules_markdown
from conformance.results import Status
from conformance.strategies import amount_json, float_prone_within, near_miss_keys, user_suffixes
from mockserver import create_app, mock_state
from mockserver.contract import CONTRACT, default_contract
from mockserver.domain.completions import Message

from .conftest import FAST
from .mutants import KEY, MUTANTS, Exchange, base_app, middleware
from .variants import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "docs" / "vendor" / "funding-api-seed.txt"
KEY2 = "sk-quota-conformance-second-key-0000000"
TABLE_HEADERS = ("FieldTypeDescription", "StatusCodeEndpointDescription")


def documented_sentences(text: str) -> list[str]:
    """The seed's statements: each prose sentence and each row of its two tables. Headings,
    endpoint lines, curl commands and JSON examples are not statements (the examples are the
    response schemas, which schema.response holds every answer to)."""
    statements, in_table = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            in_table = False
            continue
        if line in TABLE_HEADERS:
            in_table = True
            continue
        if in_table:
            statements.append(line)
            continue
        if line.startswith(("curl", "-H", "-d", "{", "}", '"', "'")) or line.endswith("\\"):
            continue
        if len(line.split()) < 4 or not line.endswith((".", ":")):
            continue  # a heading or an endpoint line
        statements += [s.strip() for s in re.split(r"(?<=[.)])\s+(?=[A-Z])", line) if s.strip()]
    return statements


def _squash(text: str) -> str:
    return re.sub(r"[\s`]+", "", text).lower().rstrip(".:")


def _cites(source: str, statement: str) -> bool:
    quote = _squash(source.removeprefix("seed:").removeprefix("public-facts:"))
    return bool(quote) and (quote in _squash(statement) or _squash(statement) in quote)


def test_the_seed_is_read_as_statements():
    statements = documented_sentences(SEED.read_text(encoding="utf-8"))
    assert "Provide an Idempotency-Key header to prevent duplicates." in statements
    assert "402insufficient_balancePOST /v1/users/:id/chat/completionsUser balance too low" in statements
    assert not any(s.startswith(("curl", "{", "POST /")) for s in statements)
    assert len(statements) >= 15


def test_every_documented_sentence_maps_to_a_rule():
    seed_sources = [(rule.name, s) for rule in REGISTRY for s in rule.sources if s.startswith("seed:")]
    unmapped = [statement for statement in documented_sentences(SEED.read_text(encoding="utf-8"))
                if not any(_cites(source, statement) for _, source in seed_sources)]
    assert unmapped == []


def test_every_source_quotes_the_vendor_docs():
    docs = {"seed:": SEED.read_text(encoding="utf-8"),
            "public-facts:": (ROOT / "docs" / "vendor" / "public-facts.md").read_text(encoding="utf-8")}
    for rule in REGISTRY:
        for source in rule.sources:
            prefix = next(p for p in docs if source.startswith(p))
            words = _squash(source.removeprefix(prefix))
            assert words in _squash(docs[prefix]), (rule.name, source)


def test_every_rules_provenance_agrees_with_openapi_yaml():
    marks = Provenance(default_contract())
    for rule in REGISTRY:
        assert rule.elements, f"{rule.name} names no openapi.yaml element it enforces"
        for pointer in rule.elements:
            assert marks.at(pointer) == rule.provenance, (rule.name, pointer, marks.at(pointer))
        for pointer in rule.choices:
            assert any(c == pointer or c.startswith(pointer + "/") for c in contract_choices()), (rule.name, pointer)


@functools.cache
def contract_choices() -> list[str]:
    """Every element openapi.yaml marks as the contract's own choice, as a JSON pointer."""
    found: list[str] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            if node.get("x-quota-provenance") == CONTRACT:
                found.append("#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path))
            for key, value in node.items():
                walk(value, [*path, str(key)])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, [*path, str(i)])

    walk(yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8")), [])
    return found


def test_every_contract_choice_is_judged_by_a_rule():
    judged = [p for rule in REGISTRY for p in (*rule.elements, *rule.choices)]
    assert contract_choices()
    unjudged = [c for c in contract_choices() if not any(c == j or c.startswith(j + "/") for j in judged)]
    assert unjudged == []
    # Behavioural choices are judged by a rule of their own, not only by the schema checks.
    for response in ("GrantPoolTooLow", "IdempotencyKeyReused", "RouteNotFound", "MethodNotAllowed"):
        pointer = f"#/components/responses/{response}"
        assert any(pointer in (*r.elements, *r.choices) for r in REGISTRY if r.kind is not Kind.BUILTIN), pointer


def test_docs_list_every_rule_as_the_registry_does():
    text = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    block = text.split("<!-- rules:begin", 1)[1].split("-->", 1)[1].split("<!-- rules:end -->", 1)[0]
    assert block.strip() == rules_markdown(list(REGISTRY)), "run quota-conformance --list-rules into docs"


# -- varied inputs ---------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.data())
def test_inputs_stay_within_the_contract(data):
    limits = ContractFacts.default().amount_limits
    key = "sk-quota-" + data.draw(st.text("abcdef0123456789", min_size=32, max_size=32))
    label, near = data.draw(near_miss_keys(key))
    assert near != key and label
    user = "conformance-0123456789abcdef-" + data.draw(user_suffixes())
    assert 1 <= len(user) <= 255 and not any(ord(ch) < 32 or ord(ch) == 127 for ch in user)
    most = data.draw(st.integers(0, 5_000_000))
    chosen = float_prone_within(most)
    assert sum(chosen) * 10_000 <= most and all(limits.allows(c * 10_000) for c in chosen)
    cents = data.draw(st.integers(1, 1_000_000))
    assert json.loads(json.dumps(amount_json(cents))) * 100 == pytest.approx(cents, abs=1e-9)


def test_float_prone_amounts_come_with_the_budget():
    assert float_prone_within(100_000) == [6, 1]  # the default $0.10: a float sum a cent short
    assert {29, 100, 201} <= set(float_prone_within(5_000_000))


# -- the budget plan ---------------------------------------------------------------------------


def test_a_skipped_rule_names_the_budget_that_runs_it(run_app):
    small = run_app(budget_micros=50_000, fuzz=False)
    record = small.results.records["idem.concurrent_distinct"]
    needed = re.fullmatch(r"needs --budget >= \$(\d+\.\d\d)", record.reason)
    assert record.status is Status.SKIPPED and needed, record.reason
    enough = run_app(budget_micros=int(float(needed.group(1)) * 1_000_000), fuzz=False)
    assert enough.results.records["idem.concurrent_distinct"].status is Status.PASSED


def test_budget_five_runs_every_rule_the_options_allow(run_app):
    app = create_app({"api_keys": [KEY, KEY2]})
    report = run_app(app, budget_micros=5_000_000, second_api_key=KEY2, unusual_methods=True,
                     retention_check_seconds=65, fuzz=False, sleep=mock_state(app).clock.advance)
    not_passed = {n: r.reason for n, r in report.results.records.items() if r.status is not Status.PASSED}
    builtin = {r.name for r in REGISTRY.of_kind(Kind.BUILTIN)}
    assert set(not_passed) - builtin == {"grant.pool_insufficient"}, not_passed
    assert report.summary.budget_reserved_micros <= 5_000_000


# -- verdicts that cannot decide ------------------------------------------------------------------


def busy_account():
    """A correct deployment whose developer balance other clients keep spending: every read of
    it comes after another client's $0.01 grant."""
    app = base_app()
    service = mock_state(app).service

    def before(ex: Exchange) -> bool:
        if ex.method == "GET" and ex.path == "/v1/balance" and "external_user_id" not in ex.query:
            service.grant(user_id="someone-else", amount=10_000, description=None, scope="other", idempotency_key=None,
                          fingerprint=b"", processing_delay=0.0)
        return False

    return middleware(app, None, before)


def test_a_shared_pool_moving_is_inconclusive_never_a_failure(run_app):
    report = run_app(busy_account(), budget_micros=1_000_000, rules=("grant.pool_debit",), fuzz=False)
    record = report.results.records["grant.pool_debit"]
    assert record.status is Status.INCONCLUSIVE, (record.status, record.reason)
    assert "other reasons" in record.reason and report.exit_code == 0
    document = json.loads(as_json(report.summary, KEY))
    entry = next(r for r in document["rules"] if r["id"] == "grant.pool_debit")
    assert entry["status"] == "inconclusive"
    assert 'message="inconclusive: ' in as_junit(report.summary, KEY)
    assert "INCONCLUSIVE" in human(report.summary, KEY)


def test_a_spend_inside_an_action_by_a_client_that_then_stops_is_measured_again(run_app):
    # Another client spends during the suite's first watched grant and is silent after it: the
    # pool is quiet once the grant is answered, and only running the example again tells that
    # spend from the deployment's own (a run before the re-measure failed grant.pool_debit here).
    report = run_app(VARIANTS["neighbour_that_stops"].build(), budget_micros=1_000_000,
                     rules=("grant.pool_debit",), fuzz=False)
    record = report.results.records["grant.pool_debit"]
    assert record.status is Status.PASSED, (record.status, record.reason, record.findings)
    assert any("the example run again decides" in reason for reason in record.inconclusive), record.inconclusive
    assert report.exit_code == 0


def test_a_pool_moved_wrongly_in_every_try_is_failed_once_measured_again(run_app):
    report = run_app(MUTANTS["pool_debited_with_fee"].build(), budget_micros=1_000_000,
                     rules=("grant.pool_debit",), fuzz=False)
    record = report.results.records["grant.pool_debit"]
    assert record.status is Status.FAILED, (record.status, record.reason)
    assert any("the example run again decides" in reason for reason in record.inconclusive), record.inconclusive
    assert report.exit_code != 0


def answers_lost_in_flight(every: int) -> Any:
    """A correct deployment behind a network that drops the connection after one grant in
    ``every`` was applied, before its answer reaches the client (a WSGI wrapper: the transport
    raises, as requests does on a reset connection)."""
    app = base_app()
    grants = itertools.count()
    lock = threading.Lock()

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        answer = list(app(environ, start_response))
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/v1/funding/grant":
            with lock:
                dropped = next(grants) % every == every - 1
            if dropped:
                raise requests.ConnectionError("connection reset by peer")
        return answer

    return wsgi


def test_a_request_failing_among_concurrent_ones_is_inconclusive_never_a_failure(run_app):
    # One of the grants sent together has no answer (it landed; the connection dropped): the
    # rule cannot count what landed from the answers, and judges nothing (a run before this
    # failed idem.concurrent_distinct for "answered 3 of 4", and a grant still waiting out a
    # Retry-After past 60 s was left behind the same way).
    report = run_app(answers_lost_in_flight(3), budget_micros=1_000_000, rules=("idem.concurrent_distinct",),
                     fuzz=False)
    record = report.results.records["idem.concurrent_distinct"]
    assert record.status is Status.INCONCLUSIVE, (record.status, record.reason, record.findings)
    assert "ConnectionError" in record.reason and report.exit_code == 0


def other_client_inside(every: int, *, varying: bool) -> Any:
    """A correct deployment where another client of the account grants to its own user and sends
    a developer-billed chat while one in ``every`` of the suite's grants and chats is in flight
    (the first among them): inside the very window me.usage measures. ``varying``: its grants
    and chats differ in size from one window to the next."""
    app = base_app()
    service = mock_state(app).service
    seen = [0]

    def before(ex: Exchange) -> bool:
        suite_chat = ex.method == "POST" and ex.path.endswith("/chat/completions")
        if suite_chat or (ex.method == "POST" and ex.path == "/v1/funding/grant"):
            seen[0] += 1
            if (seen[0] - 1) % every == 0:
                size = 1 + seen[0] % 3 if varying else 1
                service.grant(user_id="someone-else", amount=10_000 * size, description=None, scope="other",
                              idempotency_key=None, fingerprint=b"")
                service.chat(None, "gpt-4o-mini", [Message("user", "hi " * size)], 3)
        return False

    return middleware(app, None, before)


def me_usage_of(report) -> Any:
    return report.results.records["me.usage"]


def test_me_usage_tries_again_when_another_client_lands_inside_a_window(run_app):
    # Every other window of the suite's is shared with another client's grant and chat: the
    # first grant and each chat form's first chat are measured again, and the second try is exact.
    report = run_app(other_client_inside(2, varying=False), rules=("me.usage",), fuzz=False)
    record = me_usage_of(report)
    assert record.status is Status.PASSED, (record.status, record.reason)
    assert report.exit_code == 0


def test_me_usage_inside_every_window_is_inconclusive_never_a_failure(run_app):
    # Another client in every window, by varying amounts: no try is exact, and the summary's
    # error is not alike from try to try, so it is no wrong count.
    report = run_app(other_client_inside(1, varying=True), rules=("me.usage",), fuzz=False)
    record = me_usage_of(report)
    assert not record.findings, record.findings
    assert record.inconclusive == ["the usage summary moved for other reasons meanwhile"], record.reason
    assert report.exit_code == 0


def test_me_usage_judges_a_count_wrong_alike_in_every_try(run_app):
    # The same overcount in every try is the summary's own: a mutant's, failed by me.usage.
    report = run_app(MUTANTS["me_counts_header_chats_twice"].build(), rules=("me.usage",), fuzz=False)
    record = me_usage_of(report)
    assert record.status is Status.FAILED and "(alike in 3 tries)" in record.findings[0].message, record.findings

# -- options: second key, retention, state file, unusual methods --------------------------------


def test_second_key_scopes_idempotency(run_app):
    app = create_app({"api_keys": [KEY, KEY2]})
    report = run_app(app, budget_micros=1_000_000, second_api_key=KEY2, rules=("idem.scope_per_key",), fuzz=False)
    assert report.results.records["idem.scope_per_key"].status is Status.PASSED
    text = human(report.summary, (KEY, KEY2))
    assert KEY2 not in text


def test_retention_check_waits_and_replays(run_app):
    app = base_app()
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        mock_state(app).clock.advance(seconds)

    report = run_app(app, budget_micros=1_000_000, retention_check_seconds=65, rules=("idem.retention", "grant"),
                     sleep=sleep, fuzz=False)
    assert report.results.records["idem.retention"].status is Status.PASSED
    assert waited and 0 < waited[0] <= 65


def test_state_file_lets_the_next_run_replay(run_app, tmp_path):
    app = base_app()
    state = tmp_path / "conformance-state.json"
    first = run_app(app, budget_micros=1_000_000, state_file=str(state), rules=("idem.retention",), fuzz=False)
    record = first.results.records["idem.retention"]
    assert record.status is Status.SKIPPED and "for the next run" in record.reason and state.exists()
    saved = json.loads(state.read_text())["grants"]
    assert len(saved) == 1 and KEY not in state.read_text()
    mock_state(app).clock.advance(3600)
    second = run_app(app, budget_micros=1_000_000, state_file=str(state), rules=("idem.retention",), fuzz=False)
    record = second.results.records["idem.retention"]
    assert record.status is Status.PASSED and record.runs == 1  # the saved grant, replayed (and a new one saved)
    assert json.loads(state.read_text())["grants"][0]["key"] != saved[0]["key"]


def test_unusual_methods_only_when_asked(run_app):
    log: list[tuple[str, str]] = []

    def before(ex: Exchange) -> bool:
        log.append((ex.method, ex.path))
        return False

    run_app(middleware(base_app(), None, before), rules=("edges",), fuzz=False)
    assert not {m for m, _ in log} & {"PUT", "PATCH", "DELETE"}
    log.clear()
    report = run_app(middleware(base_app(), None, before), rules=("edges",), unusual_methods=True, fuzz=False)
    assert {"PUT", "PATCH", "DELETE"} <= {m for m, _ in log}
    assert report.results.records["edges.wrong_method"].status is Status.PASSED


def test_messages_never_print_python_none(run_app):
    from .mutants import MUTANTS

    for name in ("stale_balance_reads", "replay_credits_again", "user_not_found_wrong_code"):
        mutant = MUTANTS[name]
        probe = REGISTRY[mutant.rule].probe is not None
        report = run_app(mutant.build(), budget_micros=1_000_000, rules=(mutant.rule,) if probe else (),
                         fuzz=not probe)
        text = human(report.summary, KEY)
        assert "FAILED" in text and not re.search(r"\bNone\b", text), text


# -- over a real socket, as CI runs it ------------------------------------------------------------


@pytest.mark.slow
def test_cli_against_a_running_quota_mock(tmp_path):
    from tests.e2e.conftest import start_quota_mock

    live = start_quota_mock("--api-key", KEY, "--api-key", KEY2)
    try:
        report = tmp_path / "report.json"
        done = subprocess.run(
            [sys.executable, "-m", "conformance.cli", "--base-url", live.base_url, "--budget", "5",
             "--second-api-key", KEY2, "--unusual-methods", "--json", str(report), *FAST_ARGV],
            capture_output=True, text=True, timeout=300, env={"QUOTA_API_KEY": KEY, "PATH": ""})
    finally:
        live.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    statuses = {r["id"]: r["status"] for r in json.loads(report.read_text())["rules"]}
    assert statuses["idem.scope_per_key"] == "passed" and statuses["edges.wrong_method"] == "passed"


FAST_ARGV = ["--max-examples", str(FAST["max_examples"]), "--seed", str(FAST["seed"])]


# -- provider and store failures: skipped while they look like bad luck ---------------------------


def test_unavailable_answers_skip_an_example_until_they_come_five_in_a_row():
    from types import SimpleNamespace

    from conformance.actions import UNAVAILABLE_IN_A_ROW, _unless_unavailable
    from conformance.properties import Skip

    probe = SimpleNamespace(t=SimpleNamespace(unavailable={}), skip=_raise_skip(Skip))
    failing = SimpleNamespace(status=502, error_code="upstream_error")
    served = SimpleNamespace(status=200, error_code=None)
    for _ in range(UNAVAILABLE_IN_A_ROW - 1):
        with pytest.raises(Skip):
            _unless_unavailable(probe, failing, "chat")
    _unless_unavailable(probe, failing, "chat")  # the fifth in a row is judged: the rule sees the 502
    _unless_unavailable(probe, served, "chat")  # a served chat starts the count again
    for _ in range(UNAVAILABLE_IN_A_ROW + 1):  # 5 of 6 unavailable: more than half, judged from here on
        _unless_unavailable(probe, served, "chat")
    with pytest.raises(Skip):
        _unless_unavailable(probe, failing, "chat")
    _unless_unavailable(probe, SimpleNamespace(status=502, error_code=None), "chat")  # not the envelope: judged
    with pytest.raises(Skip):  # grants count apart from chats, and only 503 is theirs
        _unless_unavailable(probe, SimpleNamespace(status=503, error_code="service_unavailable"), "grant",
                            statuses=frozenset({503}))


def test_unavailable_answers_are_judged_once_they_are_most_answers():
    """Four chats in five failing never makes five in a row, but it is no bad luck."""
    from types import SimpleNamespace

    from conformance.actions import UNAVAILABLE_IN_A_ROW, _unless_unavailable
    from conformance.properties import Skip

    probe = SimpleNamespace(t=SimpleNamespace(unavailable={}), skip=_raise_skip(Skip))
    failing = SimpleNamespace(status=502, error_code="upstream_error")
    served = SimpleNamespace(status=200, error_code=None)
    judged = 0
    for n in range(40):
        exchange = served if n % 5 == 4 else failing
        try:
            _unless_unavailable(probe, exchange, "chat")
        except Skip:
            assert n < 2 * UNAVAILABLE_IN_A_ROW  # skipped only while few chats had been sent
        else:
            judged += exchange is failing
    assert judged >= 25
    # One in four failing (a flaky provider behind a correct deployment) is never judged.
    probe = SimpleNamespace(t=SimpleNamespace(unavailable={}), skip=_raise_skip(Skip))
    for n in range(200):
        if n % 4 == 3:
            with pytest.raises(Skip):
                _unless_unavailable(probe, failing, "chat")
        else:
            _unless_unavailable(probe, served, "chat")


def _raise_skip(skip: type[Exception]) -> Any:
    def raise_it(reason: str) -> None:
        raise skip(reason)

    return raise_it
