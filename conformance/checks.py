"""Custom response checks, in Schemathesis' style: small functions ``(ctx, response, case)``,
registered with :func:`~conformance.registry.response_check` (which also registers them with
``@schemathesis.check``), each named for what broke and raising a :class:`ContractViolation`
(a Schemathesis ``Failure``) with a title and a message.

They run on every response the suite sees, from Schemathesis-generated cases and from the
behavioural probes alike. What they expect (codes per status, which fields are money, and
whether a rule is documented or the contract's choice) is read from the contract of the
operation they judge (:func:`~conformance.facts.facts_of`).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from schemathesis.core.failures import Failure

from mockserver.contract import CONTRACT, DOCUMENTED

from .facts import GRANT, ContractFacts, facts_of, operation_of
from .profiles import MARK
from .registry import response_check


class ContractViolation(Failure):
    """A failure that knows which openapi.yaml element it breaks: documented or contract."""

    code = "QCK001"
    kind_title = "Contract violation"
    __slots__ = ("provenance",)

    def __init__(self, *, operation: str | None, title: str, message: str, provenance: str = DOCUMENTED) -> None:
        super().__init__(operation=operation, title=title, message=message)
        self.provenance = provenance


def parse_money(text: Any, pattern: re.Pattern[str] | None = None) -> int | None:
    """Cents of a well-formed Money string (by the contract's pattern), else None."""
    pattern = pattern or ContractFacts.default().money
    if not isinstance(text, str) or not pattern.fullmatch(text):
        return None
    return int(Decimal(text[1:]) * 100)


def json_integer(value: Any) -> int | None:
    """A JSON integer as JSON Schema counts one: ``12`` or ``12.0`` (a server may write an
    integral float; the schema's ``integer`` accepts it), never a bool; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def json_body(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


@response_check("errors.envelope", sources=("seed: All errors return a JSON body",),
                elements=("#/components/schemas/Error",))
def errors_use_json_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is JSON: ``{"error": {"code": "...", "message": "..."}}`` (seed: "All errors")."""
    if response.status_code < 400:
        return None
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and _text(error.get("code")) and _text(error.get("message"))):
        excerpt = response.content[:200].decode("utf-8", "replace")
        raise ContractViolation(
            operation=case.operation.label,
            title="Error response without the documented envelope",
            message=f"{response.status_code} answered {excerpt!r}; expected "
            '{"error": {"code": "...", "message": "..."}}',
        )
    media = _media_type(response)
    if not (media == "application/json" or media.endswith("+json")):
        raise ContractViolation(
            operation=case.operation.label,
            title="Error response not sent as JSON",
            message=f"{response.status_code} answered the envelope as Content-Type {media or 'none'!r}; "
            "a JSON body is application/json",
        )
    return None


def _media_type(response: Any) -> str:
    headers = response.headers
    for name, value in (headers.items() if hasattr(headers, "items") else []):
        if name.lower() == "content-type":
            text = value[0] if isinstance(value, list) and value else value
            return str(text).split(";")[0].strip().lower()
    return ""


@response_check("errors.code", sources=(
    "seed: 401 invalid_api_key All Missing or invalid API key",
    "seed: 400 bad_request POST /v1/funding/grant Missing required fields",
    "seed: 404 user_not_found GET /v1/users/:id/balance User not found",
    "seed: 402 insufficient_balance POST /v1/users/:id/chat/completions User balance too low",
), elements=("#/components/responses/BadRequest", "#/components/responses/InvalidApiKey",
             "#/components/responses/UserNotFound", "#/components/responses/InsufficientBalance"),
    choices=("#/components/responses/IdempotencyKeyInFlight", "#/components/responses/PayloadTooLarge",
             "#/components/responses/ServiceUnavailable", "#/components/responses/GrantPoolTooLow",
             "#/components/responses/IdempotencyKeyReused", "#/x-quota-global-responses"))
def error_code_matches_status(ctx: Any, response: Any, case: Any) -> bool | None:
    """The envelope's ``code`` is the one openapi.yaml gives that status on that operation."""
    if response.status_code < 400:
        return None
    if str(case.method).upper() != str(case.operation.method).upper():
        # A method the route does not define (Schemathesis' wrong-method case): no operation's
        # codes apply, and the contract's own 405 is edges.wrong_method's to judge.
        return True
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return True  # errors_use_json_envelope reports it
    operation, provenance = operation_of(case), facts_of(case).provenance
    expected = provenance.expected_codes(operation, response.status_code)
    if not expected:
        return True  # an unlisted status: status_code_conformance's business
    if "code" not in error:
        return True  # errors_use_json_envelope reports it
    if error.get("code") not in expected:
        raise ContractViolation(
            operation=case.operation.label,
            title=f"Wrong error code for {response.status_code}",
            message=f"code {json.dumps(error['code'])}; openapi.yaml gives {response.status_code} "
            f"on {case.operation.label} the code {' or '.join(map(repr, expected))}",
            provenance=CONTRACT if provenance.names_a_contract_condition(operation, error["code"])
            else provenance.of_response(operation, response.status_code),
        )
    return None


@response_check("money.format", sources=('seed: "balance": "$15.00"',), elements=("#/components/schemas/Money",))
def money_strings_well_formed(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every Money field is ``$`` + whole dollars + a dot + exactly two decimals, never negative."""
    operation, money = operation_of(case), facts_of(case).money
    spec = operation.responses.get(str(response.status_code), {})
    schema = spec.get("content", {}).get("application/json", {}).get("schema")
    body = json_body(response)
    if schema is None or body is None:
        return True
    bad = _bad_money(schema, body, "", spec.get(MARK, operation.provenance), money)
    if bad:
        path, value, mark = bad[0]
        documented = [b for b in bad if b[2] == DOCUMENTED]
        if documented:
            path, value, mark = documented[0]
        raise ContractViolation(
            operation=case.operation.label,
            title="Malformed money string",
            message=f"{path or '/'} is {value!r}; money is '$' + whole dollars + '.' + two decimals "
            f"(pattern {money.pattern})",
            provenance=mark,
        )
    return None


@response_check("grant.arithmetic", elements=("#/components/schemas/GrantResponse",))
def grant_arithmetic_is_exact(ctx: Any, response: Any, case: Any) -> bool | None:
    """On a grant, ``balance_after`` = ``balance_before`` + ``amount_granted``, to the cent."""
    if operation_of(case).operation_id != GRANT or not 200 <= response.status_code < 300:
        return True
    body = json_body(response)
    if not isinstance(body, dict):
        return True
    money = facts_of(case).money
    before, amount, after = (parse_money(body.get(k), money) for k in ("balance_before", "amount_granted",
                                                                         "balance_after"))
    if None in (before, amount, after):
        return True  # money_strings_well_formed reports it
    assert before is not None and amount is not None and after is not None
    if before + amount != after:
        raise ContractViolation(
            operation=case.operation.label,
            title="Grant arithmetic is off",
            message=f"balance_before {body['balance_before']} + amount_granted {body['amount_granted']} "
            f"should be {_dollars(before + amount)}, but balance_after is {body['balance_after']}",
        )
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100}.{abs(cents) % 100:02d}"


def _bad_money(schema: Any, value: Any, path: str, mark: str, money: re.Pattern[str]) -> list[tuple[str, Any, str]]:
    if not isinstance(schema, dict):
        return []
    mark = schema.get(MARK, mark)
    found: list[tuple[str, Any, str]] = []
    if schema.get("pattern") == money.pattern and isinstance(value, str | int | float):
        if parse_money(value, money) is None:
            found.append((path, value, mark))
        return found
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key, []):
            found.extend(b for b in _bad_money(branch, value, path, mark, money) if b not in found)
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                found.extend(_bad_money(child, value[name], f"{path}/{name}", mark, money))
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found.extend(_bad_money(schema["items"], item, f"{path}/{i}", mark, money))
    return found
