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
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth, missing_required_header, negative_data_rejection, positive_data_acceptance
from schemathesis.generation.case import Case

from .engine import ALL_RESPONSE_CHECKS, Exchange, Target
from .safety import LimitReached, RequestRefused, potential_credit

# Schemathesis' checks that need a generated case (they read its generation metadata).
GENERATED_CASE_CHECKS = (negative_data_rejection, positive_data_acceptance, missing_required_header)
CATALOGUE = {
    "not_a_server_error": "Schemathesis: no 5xx answers.",
    "status_code_conformance": "Schemathesis: every status is one openapi.yaml lists for the operation.",
    "content_type_conformance": "Schemathesis: every Content-Type is one openapi.yaml lists.",
    "response_headers_conformance": "Schemathesis: response headers as openapi.yaml defines them.",
    "response_schema_conformance": "Schemathesis: response bodies match openapi.yaml's schemas.",
    "negative_data_rejection": "Schemathesis: invalid requests are rejected with 4xx.",
    "positive_data_acceptance": "Schemathesis: valid requests are not rejected as invalid.",
    "missing_required_header": "Schemathesis: a request missing a required header is rejected.",
    "ignored_auth": "Schemathesis: operations needing a key refuse requests without a valid one (GET).",
}
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
            t.results.note("negative_data_rejection", "GET operations only (read-only)")

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
        if operation_id == "createChatCompletion":
            headers["X-External-User-ID"] = t.guard.new_user()
        if headers != (case.headers or {}):
            case.headers = headers
        if operation_id == "createUserChatCompletion":
            case.path_parameters = {**(case.path_parameters or {}), "external_user_id": t.guard.new_user()}
        if operation_id == "grantUserBalance" and isinstance(case.body, dict):
            return self._safe_grant(case)
        return None

    def _safe_grant(self, case: Case) -> str | None:
        body = dict(case.body)
        user = body.get("external_user_id")
        if isinstance(user, str | int | float | bool):
            body["external_user_id"] = self.t.guard.new_user()
        amount = body.get("amount")
        if _valid_amount(amount):
            body["amount"] = ONE_CENT
        credit = potential_credit(body.get("amount"))
        if credit and not self.t.guard.affordable(credit):
            return "budget"
        case.body = body
        return None


def _valid_amount(amount: Any) -> bool:
    """A whole-cent amount within the contract's limits (checked before any arithmetic, so
    huge or infinite generated values cannot overflow)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 < amount <= 10_000:
        return False
    return abs(amount * 100 - round(amount * 100)) < 1e-6
