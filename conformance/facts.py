"""What the suite needs to know about the contract, read from openapi.yaml and never restated:
the error each documented refusal answers, the money pattern, the operations that can move
money (and where their user is named), and the grant amount's limits.

One :class:`ContractFacts` belongs to each contract. The checks find it on the operation they
judge (:func:`facts_of`), so a run against another contract judges by that contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from mockserver.contract import Contract, Operation, default_contract, error_codes_of

from .profiles import Provenance

# The operations whose meaning the suite's probes rely on, by operationId (the contract's own names).
GRANT = "grantUserBalance"
USER_BALANCE = "getUserBalance"
BALANCE = "getBalance"
USER_CHAT = "createUserChatCompletion"
CHAT = "createChatCompletion"
ME = "getMe"
PACKAGES = "listPackages"
_FACTS_ATTRIBUTE = "_quota_contract_facts"


@dataclass(frozen=True)
class ErrorFact:
    """A refusal as openapi.yaml defines it: its status, its code and its mark."""

    status: int
    code: str
    provenance: str

    def answered(self, exchange: Any) -> bool:
        """Whether ``exchange`` is this refusal: its status and its error code."""
        return bool(exchange.status == self.status and exchange.error_code == self.code)


@dataclass(frozen=True)
class AmountLimits:
    """The grant amount's limits (GrantRequest.amount), in micro-dollars."""

    exclusive_minimum: int
    maximum: int
    step: int

    def allows(self, micros: int) -> bool:
        return self.exclusive_minimum < micros <= self.maximum and micros % self.step == 0


class ContractFacts:
    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.provenance = Provenance(contract)
        self.by_route = {(op.method, op.path): op for op in contract.operations}
        self.money = re.compile(contract.document["components"]["schemas"]["Money"]["pattern"])

    @classmethod
    def default(cls) -> ContractFacts:
        return _default_facts()

    def operation(self, operation_id: str) -> Operation:
        return self.contract.by_id[operation_id]

    def error(self, response_name: str) -> ErrorFact:
        """The refusal ``#/components/responses/<response_name>``: its status, code and mark."""
        response = self.contract.resolve(self.contract.document["components"]["responses"][response_name])
        code = error_codes_of(response)[0]
        mark = response.get("x-quota-provenance", self.contract.document.get("x-quota-provenance"))
        return ErrorFact(self.contract.status_for_code(code), code, mark)

    @cached_property
    def amount_limits(self) -> AmountLimits:
        from mockserver.domain.money import dollars_to_micros

        schema = self.operation(GRANT).body_schema or {}
        found: dict[str, Any] = {}
        for node in _walk_all_of(schema.get("properties", {}).get("amount", {})):
            for keyword in ("exclusiveMinimum", "minimum", "maximum", "multipleOf"):
                if keyword in node:
                    found.setdefault(keyword, node[keyword])
        low = found.get("exclusiveMinimum", found.get("minimum", 0))
        return AmountLimits(
            exclusive_minimum=dollars_to_micros(Decimal(str(low))),
            maximum=dollars_to_micros(Decimal(str(found.get("maximum", 10**12)))),
            step=dollars_to_micros(Decimal(str(found.get("multipleOf", "0.000001")))),
        )

    @cached_property
    def plain_user_id(self) -> re.Pattern[str] | None:
        """The shape of user id the docs show (ExternalUserId's ``x-quota-plain-pattern``):
        a server may refuse other ids the contract allows, in its error envelope."""
        pattern = self.contract.document["components"]["schemas"]["ExternalUserId"].get("x-quota-plain-pattern")
        return re.compile(pattern) if isinstance(pattern, str) else None

    def user_id_is_plain(self, user_id: str) -> bool:
        return self.plain_user_id is None or self.plain_user_id.search(user_id) is not None

    @cached_property
    def retention_seconds(self) -> float:
        """How long the contract keeps an Idempotency-Key (its ``x-quota-retention-seconds``)."""
        parameter = self.contract.document["components"]["parameters"]["IdempotencyKey"]
        return float(parameter["x-quota-retention-seconds"])

    @cached_property
    def longest_idempotency_key(self) -> int:
        """The contract's longest Idempotency-Key (its schema's ``maxLength``)."""
        parameter = self.contract.document["components"]["parameters"]["IdempotencyKey"]
        return int(parameter["schema"]["maxLength"])

    @cached_property
    def documented_packages(self) -> list[dict[str, Any]]:
        """The packages the vendor's docs list (the contract's example, verbatim from them)."""
        return list(self.contract.example(PACKAGES)["packages"])

    @cached_property
    def user_header(self) -> str:
        """The header that names the user a chat on the plain chat path bills."""
        for parameter in self.operation(CHAT).parameters:
            if parameter.get("in") == "header":
                return str(parameter["name"])
        raise LookupError(f"{CHAT} names no user header")

    @cached_property
    def post_routes(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        """Each POST operation's id and a pattern of its path (path parameters captured by name)."""
        routes = []
        for op in self.contract.operations:
            if op.method == "POST":
                pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+)", re.escape(op.path))
                routes.append((op.operation_id, re.compile(pattern)))
        return tuple(routes)

    def post_operation(self, path: str) -> tuple[str, dict[str, str]] | None:
        """Which POST operation ``path`` (already unquoted) is, with its path parameters."""
        for operation_id, pattern in self.post_routes:
            match = pattern.fullmatch(path)
            if match:
                return operation_id, match.groupdict()
        return None


def facts_of(case: Any) -> ContractFacts:
    """The facts of the contract the judged operation comes from (built once per schema)."""
    schema = case.operation.schema
    facts = getattr(schema, _FACTS_ATTRIBUTE, None)
    if facts is None:
        facts = ContractFacts(Contract(schema.raw_schema))
        setattr(schema, _FACTS_ATTRIBUTE, facts)
    return facts


def attach(schema: Any, facts: ContractFacts) -> None:
    """Make ``facts`` the ones :func:`facts_of` finds for ``schema``'s operations."""
    setattr(schema, _FACTS_ATTRIBUTE, facts)


def operation_of(case: Any) -> Operation:
    return facts_of(case).by_route[(case.operation.method.upper(), case.operation.path)]


def _walk_all_of(schema: Any) -> list[dict[str, Any]]:
    if not isinstance(schema, dict):
        return []
    nodes = [schema]
    for branch in schema.get("allOf", []):
        nodes.extend(_walk_all_of(branch))
    return nodes


def _default_facts() -> ContractFacts:
    # default_contract() is cached per process; so are its facts, built on first use.
    contract = default_contract()
    facts = getattr(contract, _FACTS_ATTRIBUTE, None)
    if facts is None:
        facts = ContractFacts(contract)
        setattr(contract, _FACTS_ATTRIBUTE, facts)
    return facts
