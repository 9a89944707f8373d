"""Quality gates of openapi.yaml: valid, self-consistent, marked, and faithful to the docs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from openapi_spec_validator import validate

from mockserver.contract import CONTRACT, DOCUMENTED, HTTP_METHODS, Contract, contract_path

ROOT = Path(__file__).resolve().parents[2]
VENDOR_DOCS = ROOT / "docs" / "vendor"
CONTRACT_TEXT = contract_path().read_text(encoding="utf-8")
DOCUMENT = yaml.safe_load(CONTRACT_TEXT)
CONTRACT_OBJ = Contract(DOCUMENT)


def test_openapi_spec_validator_accepts_the_contract():
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_every_operation_has_id_summary_description_and_tags():
    for op in CONTRACT_OBJ.operations:
        assert op.operation_id and op.spec.get("summary") and op.spec.get("description"), op.path
        assert op.spec.get("tags"), op.operation_id


def test_the_documented_operations_are_all_there():
    assert {(op.method, op.path) for op in CONTRACT_OBJ.operations} == {
        ("POST", "/v1/funding/grant"),
        ("GET", "/v1/users/{external_user_id}/balance"),
        ("GET", "/v1/balance"),
        ("GET", "/v1/me"),
        ("GET", "/v1/packages"),
        ("POST", "/v1/users/{external_user_id}/chat/completions"),
        ("POST", "/v1/chat/completions"),
    }


def _examples(node: Any, where: str = "#"):
    """Yield (schema, example, where) for every media type, parameter and schema example."""
    if isinstance(node, dict):
        schema = node.get("schema")
        if schema is not None and "example" in node:
            yield schema, node["example"], where
        if schema is not None:
            for name, example in node.get("examples", {}).items():
                yield schema, example["value"], f"{where}/examples/{name}"
        if "type" in node or "allOf" in node or "$ref" in node:
            for example in node.get("examples", []) if isinstance(node.get("examples"), list) else []:
                yield node, example, where
        for key, value in node.items():
            yield from _examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _examples(item, f"{where}/{index}")


def test_every_example_validates_against_its_schema():
    seen = 0
    for schema, example, where in _examples(DOCUMENT):
        resolved = CONTRACT_OBJ.resolve(schema)
        errors = [e.message for e in jsonschema_rs.Draft202012Validator(resolved).iter_errors(example)]
        assert not errors, f"{where}: {errors}"
        seen += 1
    assert seen >= 20  # the walk really found the examples


def test_a_broken_example_would_be_caught():
    schema = CONTRACT_OBJ.resolve({"$ref": "#/components/schemas/GrantResponse"})
    bad = {**CONTRACT_OBJ.example("grantUserBalance"), "balance_after": "5.50"}
    assert not jsonschema_rs.Draft202012Validator(schema).is_valid(bad)


def test_every_error_response_uses_the_envelope():
    envelope = CONTRACT_OBJ.resolve({"$ref": "#/components/schemas/Error"})
    responses = [(op.operation_id, s, r) for op in CONTRACT_OBJ.operations for s, r in op.responses.items()]
    responses += [("global", s, r) for s, r in CONTRACT_OBJ.global_responses.items()]
    errors = [(where, status, r) for where, status, r in responses if int(status) >= 400]
    assert len(errors) > 30
    for where, status, response in errors:
        schema = response["content"]["application/json"]["schema"]
        assert envelope in schema["allOf"], f"{where} {status} is not the envelope"
        assert _codes(response), f"{where} {status} pins no error code"


def _codes(response: dict[str, Any]) -> list[str]:
    code = response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]["code"]
    return [code["const"]] if "const" in code else code["enum"]


def test_the_documented_error_codes_have_the_documented_statuses():
    codes = CONTRACT_OBJ.error_codes()
    assert codes["invalid_api_key"] == 401
    assert codes["bad_request"] == 400
    assert codes["user_not_found"] == 404
    assert codes["insufficient_balance"] == 402
    assert codes["rate_limit_exceeded"] == 429


def test_every_authenticated_operation_documents_401_invalid_api_key():
    for op in CONTRACT_OBJ.operations:
        if op.public:
            assert "401" not in op.responses
            continue
        assert op.error_codes(401) == ("invalid_api_key",), op.operation_id
        assert op.response_provenance(401) == DOCUMENTED


def test_packages_is_the_only_public_operation_and_bearer_auth_is_global():
    assert DOCUMENT["security"] == [{"bearerAuth": []}]
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert [op.operation_id for op in CONTRACT_OBJ.operations if op.public] == ["listPackages"]


def test_the_contracts_own_choices_are_listed_for_the_grant():
    grant = CONTRACT_OBJ.by_id["grantUserBalance"]
    assert grant.error_codes(409) == ("idempotency_key_in_flight",)
    assert grant.error_codes(422) == ("idempotency_key_reused",)
    assert grant.error_codes(402) == ("insufficient_balance",)
    assert grant.error_codes(413) == ("payload_too_large",)
    for status in (409, 422, 402, 413):
        assert grant.response_provenance(status) == CONTRACT
    assert CONTRACT_OBJ.global_responses["404"]["content"]["application/json"]["schema"]
    assert "405" in CONTRACT_OBJ.global_responses


def _marked_nodes(node: Any, where: str = "#"):
    if isinstance(node, dict):
        if "x-quota-provenance" in node:
            yield where, node["x-quota-provenance"]
        for key, value in node.items():
            yield from _marked_nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _marked_nodes(item, f"{where}/{index}")


def test_provenance_marks_are_machine_readable_and_cover_every_operation_and_response():
    marks = dict(_marked_nodes(DOCUMENT))
    assert set(marks.values()) == {DOCUMENTED, CONTRACT}
    for path, item in DOCUMENT["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                assert item[method]["x-quota-provenance"] in (DOCUMENTED, CONTRACT), (method, path)
    for name, response in DOCUMENT["components"]["responses"].items():
        assert response.get("x-quota-provenance") in (DOCUMENTED, CONTRACT), name
    for name, header in DOCUMENT["components"]["headers"].items():
        assert header.get("x-quota-provenance") in (DOCUMENTED, CONTRACT), name


def test_grant_request_and_response_follow_the_seed_exactly():
    grant = CONTRACT_OBJ.by_id["grantUserBalance"]
    assert grant.body_schema["required"] == ["external_user_id", "amount"]
    amount = grant.body_schema["properties"]["amount"]
    assert (amount["type"], amount["x-quota-provenance"]) == ("number", DOCUMENTED)
    (limits,) = amount["allOf"]  # the limits are the contract's own choice, marked so
    assert limits["x-quota-provenance"] == CONTRACT
    assert limits["exclusiveMinimum"] == 0 and limits["maximum"] == 10000 and limits["multipleOf"] == 0.01
    response = grant.responses["200"]["content"]["application/json"]["schema"]
    assert response["required"] == [
        "external_user_id",
        "amount_granted",
        "balance_before",
        "balance_after",
        "ledger_id",
        "duplicate",
    ]
    assert grant.responses["200"]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    key = next(p for p in grant.parameters if p["name"] == "Idempotency-Key")
    assert (key["in"], key["schema"]["minLength"], key["schema"]["maxLength"]) == ("header", 1, 255)


def test_links_chain_the_grant_to_both_balance_reads():
    links = CONTRACT_OBJ.by_id["grantUserBalance"].responses["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {"getUserBalance", "getBalance"}


def test_money_schema_matches_the_docs_display_form():
    money = jsonschema_rs.Draft202012Validator(CONTRACT_OBJ.resolve({"$ref": "#/components/schemas/Money"}))
    assert all(money.is_valid(v) for v in ["$0.50", "$5.00", "$15.00", "$1234.56"])
    assert not any(money.is_valid(v) for v in ["0.50", "$5", "$5.5", "$05.00", "$5.000", "-$1.00"])


def _seed_statements() -> list[str]:
    """The seed's prose: every line that is not code, JSON, a bare heading or table header."""
    statements = []
    for line in (VENDOR_DOCS / "funding-api-seed.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("curl", "-H", "-d", "{", "}", '"')) or line.endswith(("\\", ",")):
            continue
        if line in {"Request", "Response", "Request Fields", "FieldTypeDescription", "StatusCodeEndpointDescription"}:
            continue
        statements.append(line)
    return statements


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("statement", _seed_statements())
def test_every_sentence_of_the_seed_lives_in_the_contract(statement):
    # Table rows lose their column breaks in the seed ("amountnumberDollar amount to add");
    # whitespace is ignored so that each row is found where the contract quotes it.
    squashed = _squash(CONTRACT_TEXT)
    if _squash(statement) in squashed:
        return
    # A table row's cells may be quoted in separate places: each cell must be there.
    cells = [c for c in re.split(r"(?<=[a-z_])(?=[A-Z])|(?<=\d)(?=[a-z])", statement) if len(c.strip()) > 2]
    missing = [c for c in cells if _squash(c) not in squashed]
    assert not missing, f"seed statement not in openapi.yaml: {statement!r} (missing {missing})"


# docs/vendor/ holds the vendor's pages as they were taken; the contract quotes them. Their
# digests are pinned so that an edit to a source, which would silently move the contract's
# ground, fails here and has to be made on purpose (with the contract checked again).
VENDOR_DIGESTS = {
    "funding-api-seed.txt": "9ae5f3c93fad7dc1c4c1fd5bfdc289f2114fa3d686258f93b0cf69bfb328102e",
    "public-facts.md": "8768edc5faf888153af5f790d4104f8d299b3307669dec3942840c32cbf9eb2c",
}


def test_the_vendored_docs_are_the_pages_the_contract_was_written_from():
    assert sorted(p.name for p in VENDOR_DOCS.iterdir()) == sorted(VENDOR_DIGESTS)
    for name, digest in VENDOR_DIGESTS.items():
        assert hashlib.sha256((VENDOR_DOCS / name).read_bytes()).hexdigest() == digest, name
