"""openapi.yaml, loaded once and indexed: the single source of truth for the kit.

The mock derives its routes, request validation, error statuses and the packages it
serves from here; the conformance suite derives its expectations and provenance from here.
Nothing else in the kit restates the contract's rules.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOCUMENTED = "documented"
CONTRACT = "contract"
BODY_LIMIT = "x-quota-body-limit"

try:  # The C loader reads the contract several times faster, which start-up time feels.
    _YamlLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader


def contract_path() -> Path:
    """Where openapi.yaml is: inside the installed package, or at the source tree's root."""
    packaged = resources.files("mockserver").joinpath("openapi.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "openapi.yaml"


@dataclass(frozen=True)
class Operation:
    """One operation of the contract, with every ``$ref`` already resolved."""

    operation_id: str
    method: str
    path: str
    spec: dict[str, Any]
    parameters: tuple[dict[str, Any], ...]
    body_schema: dict[str, Any] | None
    body_required: bool
    public: bool
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The media types the request body may be sent as (its requestBody's content).
    body_media_types: tuple[str, ...] = ()

    @property
    def provenance(self) -> str:
        return self.spec.get("x-quota-provenance", DOCUMENTED)

    @property
    def max_body_bytes(self) -> int | None:
        """The largest request body the operation accepts (``x-quota-body-limit``), if it sets one."""
        limit = self.spec.get(BODY_LIMIT)
        return None if limit is None else int(limit["bytes"])

    def response_provenance(self, status: int | str) -> str:
        response = self.responses.get(str(status))
        if response is None:
            return CONTRACT
        return response.get("x-quota-provenance", self.provenance)

    def error_codes(self, status: int | str) -> tuple[str, ...]:
        """The error codes this operation documents for ``status`` (empty: not an error)."""
        response = self.responses.get(str(status))
        return () if response is None else error_codes_of(response)


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.operations: tuple[Operation, ...] = tuple(self._index_operations())
        self.by_id = {op.operation_id: op for op in self.operations}
        self.global_responses = {
            status: self.resolve(response)
            for status, response in document.get("x-quota-global-responses", {}).items()
            if not status.startswith("x-")
        }
        self._status_by_code = self._index_error_codes()

    @classmethod
    def load(cls, path: str | Path | None = None) -> Contract:
        text = Path(path or contract_path()).read_text(encoding="utf-8")
        return cls(yaml.load(text, Loader=_YamlLoader))  # noqa: S506 - a safe loader

    def resolve(self, node: Any) -> Any:
        """A deep copy of ``node`` with every local ``$ref`` replaced by its target."""
        return _resolve(node, self.document, ())

    def status_for_code(self, code: str) -> int:
        """The HTTP status the contract gives an error code (each code has exactly one)."""
        return self._status_by_code[code]

    def error_codes(self) -> dict[str, int]:
        return dict(self._status_by_code)

    def user_id_problem(self, user_id: object) -> str | None:
        """Why ``user_id`` is not an external user id the contract allows, or None.

        The control API and seeds check ids with this, so that no user holds money that no
        public route can name (a seeded "..", a balance set for a 300-character id).
        """
        if self._user_id_validator.is_valid(user_id):
            return None
        rule = self.document["components"]["schemas"]["ExternalUserId"]["description"]
        shown = repr(user_id)
        if isinstance(user_id, str) and len(user_id) > 40:
            shown = f"{user_id[:32]!r}... ({len(user_id)} characters)"
        return f"{shown} is not an external user id the contract allows ({rule})"

    @functools.cached_property
    def _user_id_validator(self) -> Any:
        schema = self.resolve(self.document["components"]["schemas"]["ExternalUserId"])
        return jsonschema_rs.validator_for(schema)

    def example(self, operation_id: str, status: str = "200") -> Any:
        """The first example of an operation's JSON response."""
        media = self.by_id[operation_id].responses[status]["content"]["application/json"]
        if "example" in media:
            return copy.deepcopy(media["example"])
        return copy.deepcopy(next(iter(media["examples"].values()))["value"])

    def _index_operations(self) -> list[Operation]:
        global_security = self.document.get("security", [])
        operations = []
        for path, path_item in self.document.get("paths", {}).items():
            shared_parameters = path_item.get("parameters", [])
            for method in HTTP_METHODS:
                spec = path_item.get(method)
                if spec is None:
                    continue
                parameters = tuple(self.resolve(p) for p in [*shared_parameters, *spec.get("parameters", [])])
                body = self.resolve(spec.get("requestBody")) if "requestBody" in spec else None
                body_schema = None
                if body is not None:
                    body_schema = body.get("content", {}).get("application/json", {}).get("schema")
                operations.append(
                    Operation(
                        operation_id=spec["operationId"],
                        method=method.upper(),
                        path=path,
                        spec=spec,
                        parameters=parameters,
                        body_schema=body_schema,
                        body_required=bool(body and body.get("required")),
                        public=spec.get("security", global_security) == [],
                        responses={
                            status: self.resolve(response) for status, response in spec.get("responses", {}).items()
                        },
                        body_media_types=tuple(body.get("content", {})) if body is not None else (),
                    )
                )
        return operations

    def _index_error_codes(self) -> dict[str, int]:
        status_by_code: dict[str, int] = {}
        responses = [(s, r) for op in self.operations for s, r in op.responses.items()]
        responses += list(self.global_responses.items())
        for status, response in responses:
            for code in error_codes_of(response):
                known = status_by_code.setdefault(code, int(status))
                if known != int(status):
                    raise ValueError(f"error code {code!r} is given two statuses: {known} and {status}")
        return status_by_code


@functools.cache
def default_contract() -> Contract:
    """The contract shipped with the kit, parsed once per process (it never changes)."""
    return Contract.load()


@functools.cache
def control_contract() -> Contract:
    """``admin-openapi.yaml``, the mock's own control API, parsed once per process.

    A fault rule names an operation of openapi.yaml: that list is filled in from the public
    contract here, so that the control API's validator refuses any other name and the two
    files never have to be kept in step by hand.
    """
    text = resources.files("mockserver").joinpath("admin-openapi.yaml").read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a safe loader
    operation_id = document["components"]["schemas"]["NewFaultRule"]["properties"]["operation_id"]
    operation_id["enum"] = sorted(default_contract().by_id)
    return Contract(document)


def error_codes_of(response: dict[str, Any]) -> tuple[str, ...]:
    """The error codes a resolved response object pins in its schema (empty: not an error)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    codes: list[str] = []
    for part in schema.get("allOf", []):
        code_schema = part.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
        if "const" in code_schema:
            codes.append(code_schema["const"])
        codes.extend(code_schema.get("enum", []))
    return tuple(codes)


def _resolve(node: Any, root: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in seen:
                raise ValueError(f"recursive $ref {ref} cannot be inlined")
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            resolved = _resolve(target, root, (*seen, ref))
            # Sibling keywords of a $ref (allowed in OpenAPI 3.1) override the target's.
            siblings = {k: _resolve(v, root, seen) for k, v in node.items() if k != "$ref"}
            return {**resolved, **siblings} if isinstance(resolved, dict) else resolved
        return {key: _resolve(value, root, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, root, seen) for item in node]
    return node
