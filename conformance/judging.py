"""How a failure on a *generated* request is judged: documented, or the contract's call.

Schemathesis judges generated requests by JSON Schema, which is more generous than the
vendor's docs. Its failures are re-read here with :mod:`conformance.plain`:

- a refusal of valid data (``positive_data_acceptance``), an unlisted status
  (``status_code_conformance``), a header or method probe answered otherwise
  (``missing_required_header``, ``unsupported_method``) is documented only when the request
  is plainly documented; otherwise it is the contract's call, reported with the true reasons
  (Schemathesis' hint, which guesses "additional properties", is dropped);
- an accepted invalid request (``negative_data_rejection``) is documented only when it breaks
  a documented element (a type, a required field), not only the contract's own limits;
- a valid body larger than the server takes, refused with the 413 openapi.yaml lists, is no
  failure at all: every server has a size limit, and the docs name none.

Every other check (a 5xx, a malformed error envelope, a response schema) judges the answer,
not the request: its failure stands as Schemathesis and the rule classify it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from schemathesis.core.failures import Failure

from mockserver.contract import CONTRACT, DOCUMENTED

from .billing_mode import bills_user, refused_as_wrong_endpoint
from .checks import ContractViolation, json_body
from .engine import PASSED
from .facts import facts_of, operation_of
from .plain import LARGE_BODY_BYTES, broken, unplain

# Judged by whether the request was plainly documented.
BY_REQUEST = frozenset({"positive_data_acceptance", "status_code_conformance", "missing_required_header",
                        "unsupported_method"})
PAYLOAD_TOO_LARGE = 413


def judge(
    check: str, failure: Failure, exchange: Any, billing_mode: Callable[[], str | None] | None = None
) -> Failure | object | None:
    """A re-judged failure, :data:`PASSED` to drop it, or None to leave it as it is.
    ``billing_mode`` reads the account's billing mode (see :mod:`conformance.billing_mode`)."""
    case, response = exchange.case, exchange.response
    operation = operation_of(case)
    if check == "negative_data_rejection":
        return _accepted_invalid(failure, operation, case)
    if check not in BY_REQUEST:
        return None
    if _refused_for_now(response):
        # A rate limiter's 429 (or a 503 with Retry-After) the session's retries did not get
        # past: the request was not judged by the operation (public-facts: 429
        # rate_limit_exceeded; a limiter commonly counts, and refuses, before the key check).
        return PASSED
    if check == "positive_data_acceptance" and (
        _large_body_refused(operation, case, response)
        or _wrong_billing_endpoint(operation, case, response, billing_mode)
    ):
        return PASSED
    reasons = unplain(operation, case)
    answer = _answer(response)
    if not reasons:
        if check != "positive_data_acceptance":
            return None
        expected = [line for line in failure.message.splitlines() if line.startswith("Expected")]
        return ContractViolation(
            operation=failure.operation, title=failure.title, provenance=DOCUMENTED,
            message="\n".join([answer, *expected,
                               "The request is plainly documented: the fields the docs list, in their JSON types."]))
    return ContractViolation(
        operation=failure.operation,
        title=f"{failure.title} (a request the docs do not plainly cover)",
        message="\n".join([answer if check == "positive_data_acceptance" else _first_line(failure.message),
                           "This is the contract's call, not the docs': the request is not plainly documented.",
                           *(f"- {reason}" for reason in reasons)]),
        provenance=CONTRACT,
    )


def _accepted_invalid(failure: Failure, operation: Any, case: Any) -> Failure | None:
    errors = broken(operation, case)
    if not errors:
        return None  # nothing this module can read (a body that is not JSON): the rule classifies it
    documented = [error for error in errors if error.mark == DOCUMENTED]
    shown = documented or errors
    lines = [f"- {error.where}: {error.message} ({error.mark})" for error in shown[:5]]
    if documented:
        return ContractViolation(operation=failure.operation, title=failure.title, provenance=DOCUMENTED,
                                 message="\n".join([_first_line(failure.message),
                                                    "It breaks what the docs document:", *lines]))
    return ContractViolation(
        operation=failure.operation, title=f"{failure.title} (only the contract's own limits)", provenance=CONTRACT,
        message="\n".join([_first_line(failure.message),
                           "The request breaks only limits the contract chose where the docs are silent:", *lines]))


def _refused_for_now(response: Any) -> bool:
    """Schemathesis' Response: headers with lower-case keys and list values."""
    return response.status_code == 429 or (response.status_code == 503 and bool(response.headers.get("retry-after")))


def _large_body_refused(operation: Any, case: Any, response: Any) -> bool:
    if response.status_code != PAYLOAD_TOO_LARGE or str(PAYLOAD_TOO_LARGE) not in operation.responses:
        return False
    body = case.body
    if isinstance(body, bytes | str):
        return len(body) > LARGE_BODY_BYTES
    try:
        return len(json.dumps(body).encode()) > LARGE_BODY_BYTES
    except (TypeError, ValueError):
        return False


def _wrong_billing_endpoint(
    operation: Any, case: Any, response: Any, billing_mode: Callable[[], str | None] | None
) -> bool:
    """A valid chat refused as the docs allow on the endpoint the account's mode does not use."""
    if billing_mode is None:
        return False
    user_billed = bills_user(operation.operation_id, case.headers, facts_of(case).user_header)
    return refused_as_wrong_endpoint(billing_mode, user_billed, response.status_code, _error_code(response))


def _error_code(response: Any) -> Any:
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _answer(response: Any) -> str:
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"The server refused it: {response.status_code} {error.get('code')!s}: {error.get('message')!s}"
    return f"The server refused it: {response.status_code}"


def _first_line(text: str) -> str:
    return (text or "").strip().split("\n", 1)[0]
