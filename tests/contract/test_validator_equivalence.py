"""The mock's compiled request validator (jsonschema_rs) and openapi-core agree.

Schemathesis generates valid and invalid requests for every operation from openapi.yaml;
each goes through both validators. They must accept and reject the same requests, with one
known exception: openapi-core checks ``multipleOf: 0.01`` in binary floating point, so it
refuses whole-cent amounts such as 0.29 (0.29 / 0.01 is 28.999999999999996). There the
mock's exact decimal check is right, and the test asserts exactly that. The other way round,
the mock refuses what its JSON edge bounds (``json_input``: numbers past 400 digits or 1e400,
nesting past 64 levels, lone surrogates), as openapi.yaml's 400 says, whatever a schema allows.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from schemathesis import GenerationMode
from werkzeug.test import EnvironBuilder

from mockserver.contract import contract_path, default_contract
from mockserver.domain.errors import QuotaError
from mockserver.web.json_input import parse_json
from mockserver.web.validation import RequestValidator

CONTRACT = default_contract()
OPENAPI = OpenAPI.from_dict({**CONTRACT.document, "servers": [{"url": "/"}]})
# Not the project's schemathesis.toml (made for stock `st run`): generation as Schemathesis defaults it.
SCHEMA = schemathesis.openapi.from_path(str(contract_path()), config=schemathesis.Config())
AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}
OPERATIONS = [op for op in CONTRACT.operations if op.parameters or op.body_schema]


def mock_accepts(operation_id: str, path_args: dict, query: dict, headers: dict, body: bytes) -> bool:
    validator = RequestValidator(CONTRACT.by_id[operation_id])
    try:
        validator.validate(path_args, query, {k.lower(): v for k, v in headers.items()}, body)
    except QuotaError:
        return False
    return True


def openapi_core_accepts(method: str, path: str, query: dict, headers: dict, body: bytes) -> bool:
    builder = EnvironBuilder(
        method=method,
        path=path,
        query_string=urlencode(query),
        headers={**AUTH, **headers},
        data=body,
        content_type="application/json" if body else None,
    )
    return not list(OPENAPI.iter_request_errors(WerkzeugOpenAPIRequest(builder.get_request())))


def float_multiple_of_cents_defect(body: Any) -> bool:
    """An amount that is a whole number of cents but not so in binary floating point."""
    if not isinstance(body, dict) or not isinstance(body.get("amount"), float):
        return False
    amount = body["amount"]
    exact_cents = Decimal(repr(amount)) % Decimal("0.01") == 0
    float_cents = int(amount / 0.01) == amount / 0.01
    return exact_cents and not float_cents


def beyond_the_edge_bounds(body: bytes) -> bool:
    """A body the mock's JSON edge refuses whatever the schemas say."""
    try:
        parse_json(body)
    except QuotaError:
        return True
    return False


def rendered(case: Any) -> tuple[str, dict, dict, bytes, dict]:
    # Schemathesis keeps path parameters percent-encoded; the server sees them decoded.
    encoded = {k: str(v) for k, v in (case.path_parameters or {}).items()}
    path_args = {k: unquote(v) for k, v in encoded.items()}
    path = case.operation.path
    for name, value in encoded.items():
        path = path.replace("{" + name + "}", value)
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (case.query or {}).items()}
    headers = {k: str(v) for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if case.body is None or not case.operation.body:
        body = b""
    elif isinstance(case.body, bytes):
        body = case.body  # negative cases may be raw, non-JSON bytes
    else:
        body = json.dumps(case.body).encode()
    return path, query, headers, body, path_args


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.operation_id)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_both_validators_agree_on_generated_requests(operation, mode):
    api_operation = SCHEMA[operation.path][operation.method]
    outcomes = {"both_accept": 0, "both_reject": 0, "float_defect": 0, "edge_bound": 0}

    @given(case=api_operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):
        path, query, headers, body, path_args = rendered(case)
        if any(not v.isprintable() or v != v.strip() for v in headers.values()):
            return  # not sendable as an HTTP header at all
        ours = mock_accepts(operation.operation_id, path_args, query, headers, body)
        theirs = openapi_core_accepts(operation.method, path, query, headers, body)
        if ours and not theirs and float_multiple_of_cents_defect(case.body):
            outcomes["float_defect"] += 1
            return
        if theirs and not ours and body and beyond_the_edge_bounds(body):
            outcomes["edge_bound"] += 1
            return
        assert ours == theirs, (
            f"mock={'accepts' if ours else 'rejects'} openapi-core={'accepts' if theirs else 'rejects'}: {case!r}"
        )
        outcomes["both_accept" if ours else "both_reject"] += 1

    check()
    if mode is GenerationMode.POSITIVE:
        assert outcomes["both_accept"] > 0
    elif operation.body_schema is not None:
        # A bare string parameter has few true negatives; a body always has many.
        assert outcomes["both_reject"] > 0


def test_the_known_defect_is_real_and_the_mock_is_exact():
    body = json.dumps({"external_user_id": "u", "amount": 0.29}).encode()
    assert mock_accepts("grantUserBalance", {}, {}, {}, body)
    assert not openapi_core_accepts("POST", "/v1/funding/grant", {}, {}, body)
    assert float_multiple_of_cents_defect({"amount": 0.29})
    assert not float_multiple_of_cents_defect({"amount": 0.5})


def test_the_edge_bounds_are_refused_by_the_mock_alone():
    body = b'{"external_user_id": "u", "amount": 1, "extra": 1e401}'
    assert beyond_the_edge_bounds(body)
    assert not mock_accepts("grantUserBalance", {}, {}, {}, body)
    assert openapi_core_accepts("POST", "/v1/funding/grant", {}, {}, body)
    assert not beyond_the_edge_bounds(b'{"external_user_id": "u", "amount": 1, "extra": 1e-300}')
