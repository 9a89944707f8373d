"""Behavioural probes of access and lookups: the auth matrix, the public endpoint, unknown
users, malformed grants. Every expected status and code is read from openapi.yaml."""

from __future__ import annotations

import secrets
from typing import Any

from mockserver.contract import Operation

from .engine import Exchange, Target
from .facts import BALANCE, CHAT, GRANT, USER_BALANCE, ErrorFact
from .registry import probe
from .safety import RequestRefused

SMALL_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 1}


def expect_error(t: Target, check: str, exchange: Exchange, error: ErrorFact, op: Operation, what: str) -> bool:
    """Record whether ``exchange`` is ``error`` (its code, at the status openapi.yaml gives it)."""
    status, code = error.status, error.code
    if exchange.status == status and exchange.error_code == code:
        t.results.ran(check)
        return True
    t.violation(
        check, [exchange], f"{what}: expected {status} {code}",
        f"{what} answered {exchange.status} with code {exchange.error_code!r}; openapi.yaml gives "
        f"{status} {code!r}",
        provenance=t.provenance.of_response(op, status),
    )
    return False


@probe()
def public_endpoint_answers_without_key(t: Target) -> None:
    """Operations with `security: []` (GET /v1/packages) answer without a key."""
    check = "public_endpoint_answers_without_key"
    for op in t.contract.operations:
        if not op.public:
            continue
        exchange = t.send(op.operation_id, auth=False)
        if 200 <= exchange.status < 300:
            t.results.ran(check)
        else:
            t.violation(check, [exchange], "Public endpoint refused a request without a key",
                        f"{op.method} {op.path} is public (security: []) but answered {exchange.status} "
                        f"{exchange.error_code or ''}".strip(), provenance=op.provenance)


def request_for(t: Target, op: Operation) -> dict[str, Any] | None:
    """Arguments for a request to ``op`` that is harmless, and would succeed with the key."""
    if op.operation_id == GRANT:
        return {"headers": {"Idempotency-Key": t.guard.new_idempotency_key()},
                "body": {"external_user_id": t.guard.new_user(), "amount": 0.01,
                         "description": "quota-conformance auth probe"}}
    path = {p["name"]: t.guard.new_user() for p in op.parameters if p.get("in") == "path"}
    if op.operation_id == CHAT:
        return {"headers": {t.facts.user_header: t.guard.new_user()}, "body": dict(SMALL_CHAT)}
    if op.method == "POST":
        return {"path": path, "body": dict(SMALL_CHAT)}
    return {"path": path}


# After the other probes: its grant probes reserve budget that a lax server could credit.
@probe(stage=1)
def auth_rejected_with_401_invalid_api_key(t: Target) -> None:
    """Missing header, wrong scheme or unknown key: 401 invalid_api_key, on every authenticated operation."""
    check = "auth_rejected_with_401_invalid_api_key"
    invalid_key = t.facts.error("InvalidApiKey")
    key = t.options.api_key
    variants = {
        "no Authorization header": None,
        "the key with another scheme": f"Token {key}",
        "an unknown key": "Bearer sk-quota-" + secrets.token_hex(16),
    }
    skipped: list[str] = []
    for op in t.contract.operations:
        if op.public:
            continue
        if op.method != "GET" and t.options.read_only:
            skipped.append(f"{op.method} {op.path}")
            continue
        for label, value in variants.items():
            if op.operation_id == GRANT and label == "the key with another scheme":
                continue  # each grant probe costs a cent of the budget: the two plainest cases suffice
            kwargs = request_for(t, op) or {}
            headers = {**kwargs.pop("headers", {}), **({"Authorization": value} if value else {})}
            try:
                exchange = t.send(op.operation_id, auth=False, headers=headers, **kwargs)
            except RequestRefused as refused:
                skipped.append(f"{op.method} {op.path} with {label} ({refused})")
                continue
            refused_ok = expect_error(t, check, exchange, invalid_key, op, f"{op.method} {op.path} with {label}")
            if not refused_ok and op.method != "GET":
                break  # it was accepted: do not send more requests that could credit or charge
    if skipped:
        reason = "read-only mode" if t.options.read_only else "refused by the safety guard"
        operations = ", ".join(dict.fromkeys(s.split(" with ")[0] for s in skipped))
        t.results.note(check, f"not probed ({reason}): {operations}")


@probe()
def unknown_user_is_404_user_not_found(t: Target) -> None:
    """A user never seen answers 404 user_not_found."""
    check = "unknown_user_is_404_user_not_found"
    not_found = t.facts.error("UserNotFound")
    nobody = t.guard.new_user()
    op = t.operation(USER_BALANCE)
    expect_error(t, check, t.send(op.operation_id, path={"external_user_id": nobody}), not_found, op,
                 "GET /v1/users/{never granted}/balance")
    op = t.operation(BALANCE)
    expect_error(t, check, t.send(op.operation_id, query={"external_user_id": nobody}), not_found, op,
                 "GET /v1/balance?external_user_id={never granted}")


def skipped_in_read_only(t: Target, check: str) -> bool:
    """Malformed grants are still grants: read-only mode sends none, and says so."""
    if t.options.read_only:
        t.results.skip(check, "read-only mode sends no grants, malformed ones included; run without --read-only")
    return t.options.read_only


@probe(sources=("seed: 400 bad_request POST /v1/funding/grant Missing required fields",))
def missing_grant_fields_rejected_with_400(t: Target) -> None:
    """A grant missing required fields answers 400 bad_request."""
    check = "missing_grant_fields_rejected_with_400"
    if skipped_in_read_only(t, check):
        return
    op = t.operation(GRANT)
    # None of these names an amount, so none can credit anyone, whatever the server does.
    for body in ({}, {"external_user_id": t.guard.new_user()}, {"description": "quota-conformance probe"}):
        exchange = t.send(op.operation_id, body=body, headers={"Idempotency-Key": t.guard.new_idempotency_key()})
        expect_error(t, check, exchange, t.facts.error("BadRequest"), op, f"a grant of {body}")


@probe()
def non_json_body_rejected_with_400(t: Target) -> None:
    """A grant whose body is not JSON answers 400 bad_request."""
    check = "non_json_body_rejected_with_400"
    if skipped_in_read_only(t, check):
        return
    op = t.operation(GRANT)
    exchange = t.send(op.operation_id, raw_body=b"this is not JSON")
    expect_error(t, check, exchange, t.facts.error("BadRequest"), op, "a grant whose body is not JSON")
