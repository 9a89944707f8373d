"""Profiles and provenance: whether a violation fails the run or only warns.

openapi.yaml marks every element ``x-quota-provenance: documented | contract`` (unmarked
elements inherit their container's mark). A violation of a documented element is a failure
under every profile; a violation of one of the contract's own choices is a warning under
``documented`` and a failure under ``strict``. No list of rules is restated here: every
decision walks openapi.yaml through :mod:`mockserver.contract`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import jsonschema_rs

from mockserver.contract import CONTRACT, DOCUMENTED, Contract, Operation, error_codes_of

from .options import Profile

MARK = "x-quota-provenance"


class Severity(StrEnum):
    FAILURE = "failure"
    WARNING = "warning"


def severity(provenance: str, profile: Profile) -> Severity:
    if provenance == DOCUMENTED or profile is Profile.STRICT:
        return Severity.FAILURE
    return Severity.WARNING


class Provenance:
    """Answers "is this element documented by the vendor or the contract's own choice?"."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self._validators: dict[tuple[str, str], Any] = {}

    def at(self, pointer: str) -> str:
        """The mark of the element at a JSON pointer such as ``#/components/headers/X``."""
        node: Any = self.contract.document
        mark = node.get(MARK, DOCUMENTED)
        for raw in pointer.removeprefix("#").strip("/").split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
            if isinstance(node, dict) and "$ref" in node:
                node = self.contract.resolve(node)
            if isinstance(node, dict):
                mark = node.get(MARK, mark)
        return mark

    def of_operation(self, operation_id: str) -> str:
        return self.contract.by_id[operation_id].provenance

    def of_response(self, operation: Operation, status: int) -> str:
        if str(status) in operation.responses:
            return operation.response_provenance(status)
        glob = self.contract.global_responses.get(str(status))
        if glob is not None:
            return glob.get(MARK, self.contract.document.get("x-quota-global-responses", {}).get(MARK, CONTRACT))
        # The vendor never promised a closed list of statuses: an unlisted one is the contract's call.
        return CONTRACT

    def expected_codes(self, operation: Operation, status: int) -> tuple[str, ...]:
        codes = operation.error_codes(status)
        if not codes and str(status) not in operation.responses:
            glob = self.contract.global_responses.get(str(status))
            if glob is not None:
                codes = error_codes_of(glob)
        return codes

    def names_a_contract_condition(self, operation: Operation, code: str) -> bool:
        """Whether ``code`` is one openapi.yaml gives, on this operation or on every route, to a
        condition of the contract's own (a reused Idempotency-Key, an unknown route): a server
        that answers such a condition with another status has only the contract's choice
        against it, as the docs say nothing of the condition."""
        if any(code in operation.error_codes(status) and operation.response_provenance(status) == CONTRACT
               for status in operation.responses):
            return True
        default = self.contract.document.get("x-quota-global-responses", {}).get(MARK, CONTRACT)
        return any(code in error_codes_of(glob) and glob.get(MARK, default) == CONTRACT
                   for glob in self.contract.global_responses.values())

    def schema_violations(self, operation: Operation, status: int, body: Any) -> list[tuple[str, str]]:
        """Each way ``body`` breaks the documented response schema, with the mark that governs it.

        The body is validated against openapi.yaml's own (resolved) schema, and every error's
        schema path is walked to the deepest marked element on the way: an ``allOf`` branch
        pinning a contract-chosen code is told apart from the documented envelope around it.
        """
        response = operation.responses.get(str(status))
        if response is None:
            return []
        media = response.get("content", {}).get("application/json")
        if media is None or "schema" not in media:
            return []
        schema = media["schema"]
        key = (operation.operation_id, str(status))
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = jsonschema_rs.validator_for(schema)
        mark = response.get(MARK, operation.provenance)
        found = []
        for error in validator.iter_errors(body):
            found.append((error_mark(schema, error, mark), error.message))
        return found

    def stream_violations(self, operation: Operation, status: int, chunks: list[Any]) -> list[tuple[str, str]]:
        """As :meth:`schema_violations`, for a stream's JSON chunks: each is validated against
        the chunk schema its event's ``data`` names (``contentSchema``), with the mark that
        governs each error (a contract-marked field of a chunk is the contract's)."""
        response = operation.responses.get(str(status))
        media = (response or {}).get("content", {}).get("text/event-stream")
        data = media.get("schema", {}).get("properties", {}).get("data", {}) if isinstance(media, dict) else {}
        branches = data.get("anyOf", []) if isinstance(data, dict) else []
        schema = next((b["contentSchema"] for b in branches if isinstance(b, dict) and "contentSchema" in b), None)
        if response is None or schema is None:
            return []
        key = (operation.operation_id, f"{status} stream")
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = jsonschema_rs.validator_for(schema)
        mark = response.get(MARK, operation.provenance)
        return [(error_mark(schema, error, mark), error.message)
                for chunk in chunks for error in validator.iter_errors(chunk)]

    def of_body_field(self, operation: Operation, path: list[str]) -> str:
        """The mark of a request body field (``["amount"]``), inherited down the way."""
        node: Any = operation.body_schema or {}
        mark = node.get(MARK, operation.provenance) if isinstance(node, dict) else operation.provenance
        for name in path:
            node = node.get("properties", {}).get(name) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
            mark = node.get(MARK, mark)
        return mark

    def of_header(self, operation: Operation, status: int, name: str) -> str:
        response = operation.responses.get(str(status), {})
        for header, spec in response.get("headers", {}).items():
            if header.lower() == name.lower():
                return spec.get(MARK, response.get(MARK, operation.provenance))
        return self.of_response(operation, status)


_ALTERNATIVES = (jsonschema_rs.ValidationErrorKind.AnyOf, jsonschema_rs.ValidationErrorKind.OneOfNotValid)


def error_mark(schema: Any, error: Any, mark: str) -> str:
    """The mark that governs one validation error. A value that fits none of anyOf's or oneOf's
    branches breaks only the contract when one branch fails on contract-marked elements alone:
    without the contract's choices the value would fit that branch (the user shape of a balance
    read through the query, less the id echo the contract adds)."""
    if isinstance(error.kind, _ALTERNATIVES) and error.kind.context:
        branches = [{error_mark(schema, sub, mark) for sub in branch} for branch in error.kind.context]
        if any(marks == {CONTRACT} for marks in branches):
            return CONTRACT
    return mark_on_schema_path(schema, list(error.schema_path), mark)


def mark_on_schema_path(schema: Any, path: list[str | int], mark: str) -> str:
    """The mark of the deepest marked element on a schema path (an allOf branch pinning a
    contract-chosen limit is told apart from the documented field around it)."""
    node = schema
    for part in path:
        if isinstance(node, dict):
            mark = node.get(MARK, mark)
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    if isinstance(node, dict):
        mark = node.get(MARK, mark)
    return mark
