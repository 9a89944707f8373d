"""The one registry of rules: names declared once, unknown names refused, classification and
contract facts read from where they live (the rule, and the contract the operation comes from)."""

from __future__ import annotations

import copy

import pytest
import schemathesis

from conformance.checks import ContractViolation, error_code_matches_status
from conformance.facts import ContractFacts, attach, facts_of
from conformance.options import OptionsError, parse_budget
from conformance.registry import REGISTRY, Kind, Registry, UnknownRule
from conformance.results import Results, Status
from conformance.runner import catalogue
from mockserver.contract import Contract, default_contract


class _Response:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content


def test_results_refuse_an_unknown_name():
    results = Results(REGISTRY)
    with pytest.raises(UnknownRule, match=r"grant\.arithmetik"):
        results.ran("grant.arithmetik")
    results.ran("grant.arithmetic")
    assert results.records["grant.arithmetic"].status is Status.PASSED


def test_a_new_check_is_one_decorated_function():
    registry = Registry()

    @registry.response_check("grant.short_ledger_ids", provenance="contract")
    def ledger_ids_are_short(ctx, response, case):
        """Ledger ids are at most 64 characters."""

    rule = registry["grant.short_ledger_ids"]
    assert (rule.kind, rule.provenance, rule.description, rule.family) == (
        Kind.RESPONSE, "contract", "Ledger ids are at most 64 characters.", "grant")
    assert registry.response_checks() == (ledger_ids_are_short,)
    assert Results(registry).records.keys() == {"grant.short_ledger_ids"}
    with pytest.raises(ValueError, match="twice"):
        registry.response_check("grant.short_ledger_ids")(ledger_ids_are_short)
    with pytest.raises(ValueError, match="provenance"):
        registry.probe("grant.other", provenance="vendor")(lambda p: None)

    # A probe of the same rule joins its response check: one rule, both ways of checking it.
    @registry.probe("grant.short_ledger_ids", provenance="contract")
    def probe_ledger_ids(p):
        """Grants answer short ledger ids."""

    rule = registry["grant.short_ledger_ids"]
    assert rule.check is ledger_ids_are_short and rule.probe is probe_ledger_ids
    assert registry.probes() == [rule]


def test_every_rule_is_reported_once_with_its_description():
    names = list(catalogue())
    assert len(names) == len(set(names)) == len(REGISTRY.rules)
    assert all(catalogue().values())
    # Each probe and response check is registered where it is defined.
    assert REGISTRY["idem.replay"].kind is Kind.PROBE
    assert REGISTRY["errors.envelope"].kind is Kind.RESPONSE
    assert REGISTRY["schema.response"].classify is not None
    arithmetic = REGISTRY["grant.arithmetic"]
    assert arithmetic.check is not None and arithmetic.probe is not None


def _contract_with_bad_request_code(code: str) -> Contract:
    document = copy.deepcopy(default_contract().document)
    document["components"]["schemas"]["BadRequestError"]["allOf"][1] = {
        "properties": {"error": {"properties": {"code": {"const": code}}}}}
    return Contract(document)


def test_checks_judge_by_the_contract_of_the_operation():
    other = _contract_with_bad_request_code("invalid_request")
    schema = schemathesis.openapi.from_dict(copy.deepcopy(other.document), config=schemathesis.Config())
    attach(schema, ContractFacts(other))
    case = schema["/v1/funding/grant"]["POST"].Case(body={})
    answer = _Response(400, b'{"error": {"code": "bad_request", "message": "Missing required fields"}}')
    with pytest.raises(ContractViolation, match="invalid_request"):
        error_code_matches_status(None, answer, case)
    right = _Response(400, b'{"error": {"code": "invalid_request", "message": "Missing required fields"}}')
    assert error_code_matches_status(None, right, case) is None
    # A schema loaded without the suite (stock Schemathesis) is judged by its own document too.
    plain = schemathesis.openapi.from_dict(copy.deepcopy(other.document), config=schemathesis.Config())
    assert facts_of(plain["/v1/funding/grant"]["POST"].Case(body={})).error("BadRequest").code == "invalid_request"


def test_contract_facts_are_read_from_openapi_yaml():
    facts = ContractFacts.default()
    assert facts.error("InvalidApiKey").status == 401 and facts.error("InvalidApiKey").code == "invalid_api_key"
    assert facts.error("IdempotencyKeyReused").provenance == "contract"
    limits = facts.amount_limits
    assert (limits.exclusive_minimum, limits.maximum, limits.step) == (0, 10_000_000_000, 10_000)
    assert facts.post_operation("/v1/funding/grant") == ("grantUserBalance", {})
    assert facts.post_operation("/v1/users/a/b c/chat/completions") == (
        "createUserChatCompletion", {"external_user_id": "a/b c"})
    assert facts.post_operation("/v1/balance") is None
    assert facts.user_header == "X-External-User-ID"


def test_budget_is_parsed_exactly_never_truncated():
    assert parse_budget("0.10") == parse_budget("$0.10") == 100_000
    assert parse_budget("5") == 5_000_000
    for bad in ("0.0000001", "ten dollars", "-1", "nan"):
        with pytest.raises(OptionsError):
            parse_budget(bad)
