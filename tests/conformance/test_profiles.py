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


def test_profiles():
    assert severity("documented", Profile.DOCUMENTED) is Severity.FAILURE
    assert severity("contract", Profile.DOCUMENTED) is Severity.WARNING
    assert severity("contract", Profile.STRICT) is Severity.FAILURE
