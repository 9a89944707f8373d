"""Provenance comes from openapi.yaml's marks; profiles turn it into failures or warnings."""

from __future__ import annotations

from conformance.options import Profile
from conformance.profiles import Provenance, Severity, severity
from mockserver.contract import default_contract


def test_marks_are_read_from_the_contract():
    p = Provenance(default_contract())
    assert p.at("#/components/schemas/GrantResponse/properties/duplicate") == "documented"
    assert p.at("#/components/headers/IdempotentReplayed") == "contract"
    assert p.at("#/paths/~1v1~1funding~1grant/post/responses/422") == "contract"


def test_schema_violations_are_told_apart_inside_allof():
    contract = default_contract()
    p = Provenance(contract)
    grant = contract.by_id["grantUserBalance"]
    assert p.schema_violations(grant, 422, {"error": {"code": "x", "message": "m"}})[0][0] == "contract"
    assert p.schema_violations(grant, 400, {"error": {"code": "x", "message": "m"}})[0][0] == "documented"
    assert p.schema_violations(grant, 422, {"message": "no envelope"})[0][0] == "documented"


def test_a_value_failing_anyof_only_on_the_contracts_parts_of_a_branch_is_the_contracts():
    """GET /v1/balance?external_user_id= answers the user shape; the id echo is the contract's."""
    contract = default_contract()
    p = Provenance(contract)
    balance = contract.by_id["getBalance"]
    no_echo = {"balance": "$0.01", "balance_microdollars": 10000, "billing_mode": "user"}
    assert [mark for mark, _ in p.schema_violations(balance, 200, no_echo)] == ["contract"]
    no_money = {"external_user_id": "u", "billing_mode": "user"}  # no branch fits without a documented field
    assert [mark for mark, _ in p.schema_violations(balance, 200, no_money)] == ["documented"]
    wrong_type = {**no_echo, "balance": 0.01}
    assert [mark for mark, _ in p.schema_violations(balance, 200, wrong_type)] == ["documented"]


def test_codes_of_the_contracts_own_conditions_are_told_apart():
    contract = default_contract()
    p = Provenance(contract)
    grant = contract.by_id["grantUserBalance"]
    assert p.names_a_contract_condition(grant, "idempotency_key_reused")  # 422, the contract's
    assert p.names_a_contract_condition(grant, "not_found")  # an unknown route, on every path
    assert not p.names_a_contract_condition(grant, "bad_request")  # the seed's 400
    assert not p.names_a_contract_condition(grant, "invalid_api_key")
    assert not p.names_a_contract_condition(grant, "no_such_code")


def test_profiles():
    assert severity("documented", Profile.DOCUMENTED) is Severity.FAILURE
    assert severity("contract", Profile.DOCUMENTED) is Severity.WARNING
    assert severity("contract", Profile.STRICT) is Severity.FAILURE
