"""Deployments that answer 500 on one edge input, as real servers do, and correct deployments
that are merely strict: the yardstick of the schema-driven phase (issue 10, sections 2 and 3).

Each is the mock behind a small WSGI wrapper that reads the request's JSON body (numbers as
Python reads them: ``1.0`` stays a float) and either answers for the app or lets it through.
``fixed_app`` is the mock with its own known 500 (an integral float ``max_tokens``, issue 10)
corrected in front of it, so that each planted 500 is the only one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from flask import Flask

from mockserver import create_app
from mockserver.contract import default_contract

KEY = "sk-quota-conformance-test-key-000000000"
CHAT_SUFFIX = "/chat/completions"
GRANT = "/v1/funding/grant"


@dataclass
class Request:
    method: str
    path: str
    body: Any  # the parsed JSON body, None when there is none or it is not JSON
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def chat(self) -> bool:
        return self.method == "POST" and self.path.endswith(CHAT_SUFFIX)

    @property
    def grant(self) -> bool:
        return self.method == "POST" and self.path == GRANT

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


# Return (status, JSON body) to answer instead of the app, a new body to pass on, or None.
Hook = Callable[[Request], Any]


def wrap(app: Flask, hook: Hook) -> Flask:
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = unquote(environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"))
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        outcome = hook(Request(environ["REQUEST_METHOD"], path, body, query, headers))
        if isinstance(outcome, tuple):
            status, payload = outcome
            data = json.dumps(payload).encode()
            start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        if outcome is not None:
            raw = json.dumps(outcome).encode()
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


def base_app() -> Flask:
    return create_app({"api_keys": [KEY]})


def fixed_app() -> Flask:
    """The mock with its known 500 corrected: an integral float max_tokens becomes an integer."""

    def fix(request: Request) -> Any:
        tokens = request.field("max_tokens")
        if request.chat and isinstance(tokens, float) and tokens.is_integer():
            return {**request.body, "max_tokens": int(tokens)}
        return None

    return wrap(base_app(), fix)


def crash(message: str) -> tuple[int, dict[str, Any]]:
    return 500, {"error": {"code": "internal_error", "message": message}}


# -- 500 on an edge input ------------------------------------------------------------------

EDGE_MUTANTS: dict[str, tuple[str, Hook]] = {}


def edge_mutant(description: str) -> Callable[[Hook], Hook]:
    def register(hook: Hook) -> Hook:
        EDGE_MUTANTS[hook.__name__] = (description, hook)
        return hook

    return register


def build(name: str) -> Flask:
    return wrap(fixed_app(), EDGE_MUTANTS[name][1])


@edge_mutant("the mock's own regression (issue 10): an integral float max_tokens smaller than the reply "
             "reaches a slice: 500")
def integral_float_max_tokens(request: Request) -> Any:
    tokens = request.field("max_tokens")
    if request.chat and isinstance(tokens, float) and tokens.is_integer() and tokens < 16:
        return crash("slice indices must be integers or None or have an __index__ method")
    return None


@edge_mutant("a description longer than the ledger's VARCHAR(255) column (the contract allows 500): 500")
def long_description(request: Request) -> Any:
    description = request.field("description")
    if request.grant and isinstance(description, str) and len(description) > 255:
        return crash("value too long for type character varying(255)")
    return None


@edge_mutant("a non-ASCII user id meets an ASCII-only column: 500")
def non_ascii_user_id(request: Request) -> Any:
    user = request.field("external_user_id") if request.grant else None
    if isinstance(user, str) and not user.isascii():
        return crash("'ascii' codec can't encode character")
    return None


@edge_mutant("chat content outside the Basic Multilingual Plane (an emoji) meets a utf8mb3 column: 500")
def astral_chat_content(request: Request) -> Any:
    messages = request.field("messages") if request.chat else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and any(ord(ch) > 0xFFFF for ch in content):
            return crash("Incorrect string value: '\\xF0\\x9F...' for column 'content'")
    return None


@edge_mutant("an empty object among the chat messages is read as a message: KeyError 'role', 500")
def empty_message_object(request: Request) -> Any:
    messages = request.field("messages") if request.chat else None
    if isinstance(messages, list) and any(message == {} for message in messages):
        return crash("KeyError: 'role'")
    return None


@edge_mutant("an empty description is capitalised by its first character: IndexError, 500")
def empty_description(request: Request) -> Any:
    if request.grant and request.field("description") == "":
        return crash("IndexError: string index out of range")
    return None


@edge_mutant("an amount of zero reaches a rate computed before the amount is checked: ZeroDivisionError, 500")
def zero_amount(request: Request) -> Any:
    amount = request.field("amount") if request.grant else None
    if isinstance(amount, int | float) and not isinstance(amount, bool) and amount == 0:
        return crash("ZeroDivisionError: division by zero")
    return None


@edge_mutant("an amount with more than two decimals fails a strict quantize before validation: 500")
def sub_cent_amount(request: Request) -> Any:
    amount = request.field("amount") if request.grant else None
    if isinstance(amount, float) and 0 < abs(amount) < 10_000 and round(amount, 2) != amount:
        return crash("decimal.InvalidOperation: quantize result has too many digits")
    return None


@edge_mutant("max_tokens beyond 64 bits overflows a C long: OverflowError, 500")
def huge_max_tokens(request: Request) -> Any:
    tokens = request.field("max_tokens")
    if request.chat and isinstance(tokens, int) and not isinstance(tokens, bool) and abs(tokens) >= 2**63:
        return crash("OverflowError: Python int too large to convert to C long")
    return None


# -- correct but strict --------------------------------------------------------------------

def _fields(schema: Any) -> set[str]:
    """Every property name a schema defines, its allOf/oneOf/anyOf and if-then branches included."""
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    for branch in (*schema.get("allOf", []), *schema.get("oneOf", []), *schema.get("anyOf", [])):
        names |= _fields(branch) | _fields(branch.get("then") if isinstance(branch, dict) else None)
    return names


def _contract_fields() -> tuple[set[str], set[str], set[str]]:
    """The grant's, the chat's and a chat message's fields, as openapi.yaml defines them."""
    contract = default_contract()
    grant = contract.by_id["grantUserBalance"].body_schema or {}
    chat = contract.by_id["createChatCompletion"].body_schema or {}
    return _fields(grant), _fields(chat), _fields(chat["properties"]["messages"].get("items"))


def strict_app() -> Flask:
    """A correct deployment that parses strictly, where the docs are silent: an integral float
    where an integer goes, and any field the docs do not list, answer 400 bad_request (as Go
    servers and OpenAI do)."""

    def refuse(message: str) -> tuple[int, dict[str, Any]]:
        return 400, {"error": {"code": "bad_request", "message": message}}

    grant_fields, chat_fields, message_fields = _contract_fields()

    def strict(request: Request) -> Any:
        # Like most servers, it reads the body only once the key is known good.
        if not isinstance(request.body, dict) or request.headers.get("authorization") != f"Bearer {KEY}":
            return None
        if request.chat:
            tokens = request.field("max_tokens")
            if isinstance(tokens, float):
                return refuse("max_tokens must be an integer")
            allowed = chat_fields
            messages = request.field("messages")
            for message in messages if isinstance(messages, list) else []:
                extra = sorted(set(message) - message_fields) if isinstance(message, dict) else []
                if extra:
                    return refuse(f"Unrecognized request argument supplied: {extra[0]}")
        elif request.grant:
            allowed = grant_fields
        else:
            return None
        extra = sorted(set(request.body) - allowed)
        return refuse(f"Unrecognized request argument supplied: {extra[0]}") if extra else None

    return wrap(fixed_app(), strict)
