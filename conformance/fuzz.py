"""The schema-driven part: Schemathesis generates positive and negative cases for every
operation and its built-in checks judge the answers, with the suite's own response checks.

Generated cases are made safe before they are sent (the guard then checks again):
- the real key replaces a generated ``Authorization`` value (a missing one stays missing);
- grants name a user of this run; a valid amount becomes one cent, an invalid one that
  could still credit something is sent only if the budget covers it, read generously;
- generated Idempotency-Keys are replaced (an example key could be a real one);
- chats bill a never-funded user of this run, never the developer;
- in read-only mode only GET operations are generated.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth
from schemathesis.generation.case import Case

from mockserver.domain.money import MICROS_PER_DOLLAR

from .builtin_checks import GENERATED_CASE_CHECKS
from .engine import ALL_RESPONSE_CHECKS, Exchange, Target
from .facts import CHAT, GRANT, USER_CHAT, AmountLimits
from .safety import LimitReached, RequestRefused, potential_credit

ONE_CENT = 0.01


class Fuzzer:
    def __init__(self, target: Target) -> None:
        self.t = target
        self.not_sent: Counter[str] = Counter()
        self.sent = 0
        self.stopped: str | None = None
        config = target.schema.config.checks
        # A grant may meet an empty pool (402) and a chat a user unknown or broke (404/402).
        config.positive_data_acceptance.expected_statuses = ["2xx", "401", "402", "403", "404", "409", "429", "5xx"]
        # Invalid input may also be refused with any 4xx the contract defines (413 for an oversized body).
        listed = {str(status) for status in target.contract.error_codes().values() if 400 <= status < 500}
        defaults = config.negative_data_rejection.expected_statuses or []
        config.negative_data_rejection.expected_statuses = sorted({*defaults, *listed})

    def run(self) -> None:
        t = self.t
        operations = [op for op in t.contract.operations if op.method == "GET" or not t.options.read_only]
        for op in operations:
            api_operation = t.schema[op.path][op.method]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if self.stopped:
                    return
                self._examples(api_operation.as_strategy(generation_mode=mode), op.method == "GET")
        if t.options.read_only:
            t.results.note("schema.negative_data", "GET operations only (read-only)")

    def _examples(self, strategy: Any, is_get: bool) -> None:
        options = self.t.options

        @seed(options.seed)
        @settings(max_examples=options.max_examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def test(case: Case) -> None:
            if not self.stopped:
                self._one(case, is_get)

        with contextlib.suppress(Unsatisfiable):  # nothing to generate in this mode (nothing to break, say)
            test()

    def _one(self, case: Case, is_get: bool) -> None:
        reason = self.make_safe(case)
        if reason:
            self.not_sent[reason] += 1
            return
        try:
            response = self.t.call(case)
        except LimitReached as limit:
            self.stopped = str(limit)
            return
        except RequestRefused as refused:
            self.not_sent[str(refused).split(":")[0]] += 1
            return
        self.sent += 1
        checks = [*ALL_RESPONSE_CHECKS, *GENERATED_CASE_CHECKS]
        if is_get:
            checks.append(ignored_auth)  # it re-sends the request without a key: only for GETs
        self.t.check_response(Exchange(case, response), checks)

    def make_safe(self, case: Case) -> str | None:
        """Rewrite ``case`` so that sending it is safe; or say why it must not be sent."""
        t = self.t
        headers = dict(case.headers or {})
        for name in list(headers):
            if name.lower() == "authorization":
                headers[name] = t.auth_header["Authorization"]
            elif name.lower() == "idempotency-key":
                headers[name] = t.guard.new_idempotency_key()
        operation_id = case.operation.definition.raw.get("operationId")
        if operation_id == CHAT:
            headers[t.facts.user_header] = t.guard.new_user()
        if headers != (case.headers or {}):
            case.headers = headers
        if operation_id == USER_CHAT:
            path = {p["name"]: t.guard.new_user() for p in t.facts.operation(USER_CHAT).parameters
                    if p.get("in") == "path"}
            case.path_parameters = {**(case.path_parameters or {}), **path}
        if operation_id == GRANT and isinstance(case.body, dict):
            return self._safe_grant(case)
        return None

    def _safe_grant(self, case: Case) -> str | None:
        body = dict(case.body)
        user = body.get("external_user_id")
        if isinstance(user, str | int | float | bool):
            body["external_user_id"] = self.t.guard.new_user()
        amount = body.get("amount")
        if _valid_amount(amount, self.t.facts.amount_limits):
            body["amount"] = ONE_CENT
        credit = potential_credit(body.get("amount"))
        if credit and not self.t.guard.affordable(credit):
            return "budget"
        case.body = body
        return None


def _valid_amount(amount: Any, limits: AmountLimits) -> bool:
    """An amount within the contract's limits (GrantRequest.amount), read exactly: the decimal
    the JSON number spells, never a binary float's arithmetic (which cannot overflow either)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return False
    try:
        value = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)
    except InvalidOperation:
        return False
    if not value.is_finite() or not 0 < value <= Decimal(limits.maximum) / MICROS_PER_DOLLAR:
        return False
    micros = value * MICROS_PER_DOLLAR
    return micros == micros.to_integral_value() and limits.allows(int(micros))
