"""Schemathesis' own checks, registered as rules of the suite, each with how a failure of it is
classified: documented or the contract's own choice, read from the openapi.yaml element the
failure breaks. The engine asks the rule; nothing switches on check names."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import jsonschema_rs
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from mockserver.contract import CONTRACT, DOCUMENTED, Operation

from .facts import operation_of
from .profiles import Provenance
from .registry import builtin
from .sse import is_event_stream, sse_events


def _response_mark(provenance: Provenance, failure: Any, exchange: Any) -> str:
    return provenance.of_response(operation_of(exchange.case), exchange.status)


def _schema_mark(provenance: Provenance, failure: Any, exchange: Any) -> str:
    op = operation_of(exchange.case)
    if is_event_stream(exchange):  # each chunk is judged by the mark of the element it breaks
        marks = [mark for mark, _ in provenance.stream_violations(op, exchange.status, _chunks(exchange))]
    else:
        marks = [mark for mark, _ in provenance.schema_violations(op, exchange.status, exchange.json)]
        if DOCUMENTED in marks and _only_a_contract_code(provenance, op, exchange.status, exchange.json):
            return CONTRACT
    if marks:
        return DOCUMENTED if DOCUMENTED in marks else marks[0]
    return provenance.of_response(op, exchange.status)


def _only_a_contract_code(provenance: Provenance, op: Operation, status: int, body: Any) -> bool:
    """An error answered with a code the contract gives a condition of its own (a reused key's
    idempotency_key_reused under 400, say), and otherwise as the status's documented answer:
    only the contract's choice of status is broken (see errors.code)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    expected = provenance.expected_codes(op, status)
    if not isinstance(code, str) or not expected or not provenance.names_a_contract_condition(op, code):
        return False
    as_documented = {**body, "error": {**error, "code": expected[0]}}  # type: ignore[dict-item]
    return not provenance.schema_violations(op, status, as_documented)


def _chunks(exchange: Any) -> list[Any]:
    """A stream's events that are JSON (``[DONE]`` and broken ones are other checks' to judge)."""
    chunks = []
    for data in sse_events(exchange):
        with contextlib.suppress(ValueError):
            chunks.append(json.loads(data))
    return chunks


def _header_mark(provenance: Provenance, failure: Any, exchange: Any) -> str:
    op = operation_of(exchange.case)
    declared = op.responses.get(str(exchange.status), {}).get("headers", {})
    for name in declared:
        if name.lower() in str(failure).lower():
            return provenance.of_header(op, exchange.status, name)
    # Schemathesis' message does not always name the header: find the ones whose value
    # breaks their schema, and take a documented one's mark before a contract one's.
    marks = [provenance.of_header(op, exchange.status, name) for name, spec in declared.items()
             if exchange.header(name) is not None and not _header_value_fits(exchange.header(name), spec)]
    if marks:
        return DOCUMENTED if DOCUMENTED in marks else marks[0]
    return provenance.of_response(op, exchange.status)


def _header_value_fits(value: str, spec: dict[str, Any]) -> bool:
    """Whether a header's text is a value its schema allows (numbers read as numbers)."""
    schema = spec.get("schema", {})
    candidate: Any = value
    if schema.get("type") in ("integer", "number"):
        try:
            candidate = int(value) if schema.get("type") == "integer" else float(value)
        except ValueError:
            return False
    try:
        return bool(jsonschema_rs.is_valid(schema, candidate))
    except ValueError:  # a schema the validator cannot read: no evidence against the value
        return True


def _server_error_mark(provenance: Provenance, failure: Any, exchange: Any) -> str:
    op = operation_of(exchange.case)
    if exchange.error_code in provenance.expected_codes(op, exchange.status):
        # A 5xx the contract lists, with its code (an upstream outage): reported, but it breaks no promise.
        return CONTRACT
    return DOCUMENTED


def _request_mark(provenance: Provenance, failure: Any, exchange: Any) -> str:
    """The mark of what a negative case broke (a parameter or a body field)."""
    op: Operation = operation_of(exchange.case)
    meta = exchange.case.meta
    mutations = getattr(getattr(meta, "phase", None), "data", None)
    marks = []
    for mutation in getattr(mutations, "mutations", ()) or ():
        name = mutation.parameter
        location = getattr(mutation.parameter_location, "value", "")
        if location == "body":
            marks.append(provenance.of_body_field(op, [p for p in mutation.path if isinstance(p, str)]))
        else:
            for parameter in op.parameters:
                if parameter.get("name", "").lower() == (name or "").lower():
                    schema_mark = parameter.get("schema", {}).get("x-quota-provenance")
                    marks.append(schema_mark or parameter.get("x-quota-provenance", op.provenance))
    if not marks or DOCUMENTED in marks:
        return DOCUMENTED
    return marks[0]


ROOT = ("#/paths",)
# Generated data meets every schema; a finding takes the mark of the element it breaks.
SCHEMAS = ("#/components/schemas",)
builtin("errors.no_server_error", not_a_server_error, description="No answer is a server error (5xx), "
        "unless it is one the contract lists, with its code (an upstream outage).", classify=_server_error_mark,
        elements=ROOT)
builtin("schema.status_code", status_code_conformance,
        description="Every status is one openapi.yaml lists for the operation.", classify=_response_mark,
        elements=ROOT)
def _content_type_mark(provenance: Provenance, failure: Any, exchange: Any) -> str:
    """An error envelope sent as another JSON media type (application/problem+json) keeps the
    seed's "All errors return a JSON body": only the contract's choice of application/json breaks."""
    media = (exchange.header("Content-Type") or "").split(";")[0].strip().lower()
    if exchange.status >= 400 and media.endswith("+json"):
        return CONTRACT
    return _response_mark(provenance, failure, exchange)


builtin("schema.content_type", content_type_conformance,
        description="Every Content-Type is one openapi.yaml lists.", classify=_content_type_mark, elements=ROOT)
builtin("schema.headers", response_headers_conformance,
        description="Response headers are as openapi.yaml defines them.", classify=_header_mark, elements=ROOT,
        choices=("#/components/headers/RetryAfter", "#/components/headers/RateLimitLimit",
                 "#/components/headers/RateLimitRemaining", "#/components/headers/RateLimitReset",
                 "#/components/headers/IdempotentReplayed"))
builtin("schema.response", response_schema_conformance,
        description="Response bodies match openapi.yaml's schemas.", classify=_schema_mark, elements=ROOT,
        choices=SCHEMAS)
builtin("schema.negative_data", negative_data_rejection,
        description="Generated invalid requests are rejected with a 4xx.", classify=_request_mark, elements=ROOT,
        choices=(*SCHEMAS, "#/components/parameters/IdempotencyKey/schema"))
builtin("schema.positive_data", positive_data_acceptance,
        description="Generated valid requests are not rejected as invalid.", elements=ROOT, choices=SCHEMAS)
builtin("schema.missing_header", missing_required_header,
        description="A generated request missing a required header is rejected.", elements=ROOT)
builtin("schema.ignored_auth", ignored_auth,
        description="Generated GET requests without a valid key are refused.",
        elements=("#/components/securitySchemes/bearerAuth",))
# A method a path does not define answers the global 405 (x-quota-global-responses, the
# contract's choice) with an Allow header (RFC 9110). By default only a GET on a POST-only route
# is sent; other methods only with --unusual-methods.
builtin("schema.unsupported_method", unsupported_method, provenance=CONTRACT,
        description="A generated request with a method the path does not define answers 405 with an Allow header.",
        elements=("#/x-quota-global-responses",))

# Run on every response the suite receives.
RESPONSE_CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance)
# Need a generated case: they read its generation metadata.
GENERATED_CASE_CHECKS = (negative_data_rejection, positive_data_acceptance, missing_required_header,
                         unsupported_method)
