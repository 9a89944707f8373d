"""The control API's commands: one path for its JSON routes, the dashboard's forms and the
pytest fixture.

Each command takes a document, the body its JSON route receives (the dashboard turns its
form into one, the fixture builds one from its arguments), checks it against that route's
schema in ``admin-openapi.yaml`` with the validator the public API uses, then acts. So the
three callers share one parsing, the same limits and the same error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.clock import ClockError
from ..domain.errors import BAD_REQUEST, MAX_SAFE_MICRODOLLARS, QuotaError
from ..domain.faults import FAIL, FaultError, FaultRule
from ..domain.money import MoneyError, dollars_to_micros, format_money
from ..domain.seed import SeedError, build_seed
from .state import MockState


def reset(state: MockState) -> None:
    """Back to the starting state: balances, ledger, keys, clock, fault rules, rate windows."""
    state.reset()


def load_seed(state: MockState, document: Any) -> None:
    """Reset, with a seed document (the ``--seed`` format) replacing parts of the start."""
    document = state.validators["mockSeed"].check_body(document)
    try:
        seed = build_seed(document, base=state.config.build_seed(), user_id_problem=state.contract.user_id_problem)
    except SeedError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid seed: {exc}") from exc
    state.reset(seed)


def set_balance(state: MockState, user_id: str | None, document: Any) -> int:
    """Set a user's balance (``None``: the grant pool's) to ``{"balance": dollars}``."""
    document = state.validators["mockSetPool" if user_id is None else "mockSetUserBalance"].check_body(document)
    problem = None if user_id is None else state.contract.user_id_problem(user_id)
    if problem is not None:
        raise QuotaError(BAD_REQUEST, f"Invalid user id: {problem}")
    micros = dollars_field(document["balance"], "balance")
    if micros < 0:
        raise QuotaError(BAD_REQUEST, "Invalid field 'balance': must not be negative")
    if micros > MAX_SAFE_MICRODOLLARS:  # the same bound on every store, so none half-applies it
        raise QuotaError(
            BAD_REQUEST, f"Invalid field 'balance': at most {format_money(MAX_SAFE_MICRODOLLARS)}, what a store holds"
        )
    state.service.set_balance(user_id, micros)
    return micros


def move_clock(state: MockState, document: Any) -> None:
    """``{"advance_seconds": N}`` moves the mock clock; ``{"reset": true}`` returns to real time."""
    document = state.validators["mockMoveClock"].check_body(document)
    if document.get("reset") is True:
        state.clock.reset()
    elif document.get("advance_seconds") is not None:
        try:
            state.clock.advance(float(document["advance_seconds"]))
        except ClockError as exc:
            raise QuotaError(BAD_REQUEST, f"Invalid field 'advance_seconds': {exc}") from exc
    else:
        raise QuotaError(BAD_REQUEST, 'send {"advance_seconds": <number>} or {"reset": true}')


def add_fault(state: MockState, document: Any) -> FaultRule:
    """Add a fault rule; its failure status must be one its operation documents."""
    document = state.validators["mockAddFault"].check_body(document)
    # The schema has checked the fields, the operation among them; what needs the contract is here.
    operation = state.contract.by_id[document["operation_id"]]
    status = _whole(document, "status")
    if document["action"] == FAIL and status is not None and not operation.error_codes(status):
        documented = ", ".join(s for s in operation.responses if operation.error_codes(s))
        raise QuotaError(
            BAD_REQUEST,
            f"Invalid field 'status': {operation.operation_id} does not document {status}; it documents {documented}",
        )
    try:
        return state.faults.add(
            operation_id=operation.operation_id,
            action=document["action"],
            now=state.clock.now(),
            status=status,
            latency_ms=_whole(document, "latency_ms") or 0,
            count=_whole(document, "count"),
            ttl_seconds=_whole(document, "ttl_seconds"),
        )
    except FaultError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid rule: {exc}") from exc


def dollars_field(value: Any, name: str) -> int:
    """A field holding dollars (text or an exact number), in micro-dollars, or a 400 naming it."""
    try:
        return dollars_to_micros(value)
    except MoneyError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid field '{name}': {exc}") from exc


def _whole(document: Mapping[str, Any], name: str) -> int | None:
    # The schema let through only whole numbers (2.0 is one, in JSON Schema).
    value = document.get(name)
    return None if value is None else int(value)
