"""Deliberately broken variants of the mock, each breaking one behaviour, built on one app
instance (WSGI middleware or a replaced service method): mockserver itself is untouched.

``MUTANTS`` maps a name to (the breakage, the check that must catch it).
``silent_variant`` differs from the contract only where the vendor's docs are silent.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.test import run_wsgi_app

from mockserver import create_app, mock_state

from ..raw_balances import write_raw_balance

KEY = "sk-quota-conformance-test-key-000000000"
GRANT = "/v1/funding/grant"


@dataclass
class Exchange:
    """A request as a middleware sees it, and the answer it may rewrite."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response: bytes = b""

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.response)
        except ValueError:
            return None

    def set_json(self, value: Any) -> None:
        self.response = json.dumps(value).encode()
        self.response_headers["Content-Type"] = "application/json"


Before = Callable[[Exchange], bool]  # return True to answer without calling the app
After = Callable[[Exchange], None]


def middleware(app: Flask, after: After | None = None, before: Before | None = None) -> Flask:
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        ex = Exchange(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""),
                      headers, body)
        if before is None or not before(ex):
            app_iter, status, response_headers = run_wsgi_app(inner, environ, buffered=True)
            ex.status = int(status.split(" ")[0])
            ex.response_headers = dict(response_headers.items())
            ex.response = b"".join(app_iter)
            if after is not None:
                after(ex)
        ex.response_headers["Content-Length"] = str(len(ex.response))
        start_response(f"{ex.status} X", list(ex.response_headers.items()))
        return [ex.response]

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


def base_app() -> Flask:
    return create_app({"api_keys": [KEY]})


# -- the mutants ------------------------------------------------------------------------


def replay_credits_again() -> Flask:
    app = base_app()
    service = mock_state(app).service
    original = service.grant

    def grant(**kw: Any) -> Any:
        result = original(**kw)
        if result.duplicate:
            service.store.apply_grant(kw["user_id"], kw["amount"], kw["description"], service.clock.now(), None)
        return result

    service.grant = grant  # type: ignore[method-assign]
    return app


def _on_grant_replay(change: Callable[[dict[str, Any]], None]) -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.path == GRANT and ex.status == 200 and body.get("duplicate") is True:
            change(body)
            ex.set_json(body)

    return middleware(base_app(), after)


def replay_lacks_duplicate_flag() -> Flask:
    return _on_grant_replay(lambda body: body.update(duplicate=False))


def replay_gets_new_ledger_id() -> Flask:
    return _on_grant_replay(lambda body: body.update(ledger_id=f"ledg_{uuid.uuid4().hex[:20]}"))


def concurrent_same_key_both_credit() -> Flask:
    """Check-then-act without a lock: sequential replays work, concurrent ones race."""
    app = base_app()
    service = mock_state(app).service
    original = service.grant
    seen: dict[tuple[str, str], Any] = {}

    def grant(**kw: Any) -> Any:
        key = (kw["scope"], kw["idempotency_key"])
        if kw["idempotency_key"] and key in seen:
            return dataclasses.replace(seen[key], duplicate=True)
        time.sleep(0.05)
        result = original(**{**kw, "idempotency_key": None})
        if kw["idempotency_key"]:
            seen[key] = result
        return result

    service.grant = grant  # type: ignore[method-assign]
    return app


def errors_without_envelope() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status >= 400:
            ex.response = f"Error: {ex.json['error']['code']}".encode()
            ex.response_headers["Content-Type"] = "text/plain"

    return middleware(base_app(), after)


def forbidden_instead_of_401() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 401:
            ex.status = 403

    return middleware(base_app(), after)


def any_token_accepted() -> Flask:
    app = base_app()
    mock_state(app).service.is_api_key = lambda candidate: True  # type: ignore[method-assign]
    return app


def wrong_404_code() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 404 and ex.json["error"]["code"] == "user_not_found":
            ex.set_json({"error": {"code": "not_found", "message": "User not found"}})

    return middleware(base_app(), after)


def cent_lost_in_arithmetic() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.path == GRANT and ex.status == 200 and body["balance_after"] != "$0.00":
            cents = int(body["balance_after"][1:].replace(".", "")) - 1
            body["balance_after"] = f"${cents // 100}.{cents % 100:02d}"
            ex.set_json(body)

    return middleware(base_app(), after)


def external_user_id_ignored() -> Flask:
    app = base_app()
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/v1/balance":
            environ["QUERY_STRING"] = ""
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


def public_endpoint_demands_key() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.path == "/v1/packages" and "Authorization" not in ex.headers:
            ex.status = 401
            ex.set_json({"error": {"code": "invalid_api_key", "message": "Missing API key"}})
            return True
        return False

    return middleware(base_app(), None, before)


def server_error_on_non_json_body() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and ex.body:
            try:
                json.loads(ex.body)
            except ValueError:
                ex.status = 500
                ex.set_json({"error": {"code": "internal_error", "message": "JSONDecodeError"}})
                return True
        return False

    return middleware(base_app(), None, before)


def chat_lets_balance_go_negative() -> Flask:
    app = base_app()
    store = mock_state(app).service.store
    original = store.apply_charge
    lock = threading.Lock()

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        with lock:
            balance = None if user_id is None else store.user_balance(user_id)
            if balance is not None and amount > balance:
                write_raw_balance(store, user_id, amount)  # lend it, so the charge goes through...
                result = original(user_id, amount, *args)
                write_raw_balance(store, user_id, balance - amount)  # ...and below zero
                return dataclasses.replace(result, balance_before=balance, balance_after=balance - amount)
            return original(user_id, amount, *args)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


def chat_served_at_zero_balance() -> Flask:
    """Charges at most what is left, never answering 402."""
    app = base_app()
    store = mock_state(app).service.store
    original = store.apply_charge

    def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
        balance = store.user_balance(user_id) if user_id is not None else None
        if balance is not None:
            amount = min(amount, balance)
        return original(user_id, amount, *args)

    store.apply_charge = apply_charge  # type: ignore[method-assign]
    return app


def chat_402_with_another_code() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.status == 402 and "chat" in ex.path:
            ex.set_json({"error": {"code": "insufficient_credits", "message": "Not enough credits"}})

    return middleware(base_app(), after)


def missing_fields_answer_422() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path == GRANT and ex.status == 400:
            ex.status = 422
            ex.set_json({"error": {"code": "validation_error", "message": "Missing required fields"}})

    return middleware(base_app(), after)


def stale_balance_reads() -> Flask:
    """Balance reads lag one write behind: they miss the user's latest grant."""
    app = base_app()
    service = mock_state(app).service
    original = service.user_balance

    def user_balance(user_id: str) -> int:
        grants = [e for e in service.store.ledger() if e.user_id == user_id and e.kind == "grant"]
        return original(user_id) - (grants[-1].amount if grants else 0)

    service.user_balance = user_balance  # type: ignore[method-assign]
    return app


def keys_ignored_body_deduplicated() -> Flask:
    """Deduplicates on the body alone: the same body under a new key is wrongly a replay."""
    app = base_app()
    service = mock_state(app).service
    original = service.grant

    def grant(**kw: Any) -> Any:
        if kw["idempotency_key"]:
            kw["idempotency_key"] = kw["fingerprint"].hex()
        return original(**kw)

    service.grant = grant  # type: ignore[method-assign]
    return app


MUTANTS: dict[str, tuple[Callable[[], Flask], str]] = {
    "replay credits again": (replay_credits_again, "idem.replay"),
    "replay lacks duplicate: true": (replay_lacks_duplicate_flag, "idem.replay"),
    "replay gets a new ledger_id": (replay_gets_new_ledger_id, "idem.replay"),
    "concurrent same-key grants both credit": (concurrent_same_key_both_credit, "idem.concurrent_same"),
    "errors without the envelope": (errors_without_envelope, "errors.envelope"),
    "403 instead of 401": (forbidden_instead_of_401, "auth.missing_key"),
    "any token accepted": (any_token_accepted, "auth.missing_key"),
    "wrong 404 code": (wrong_404_code, "user.not_found"),
    "a cent lost in the arithmetic": (cent_lost_in_arithmetic, "grant.arithmetic"),
    "external_user_id ignored by /v1/balance": (external_user_id_ignored, "grant.readback"),
    "public endpoint demands a key": (public_endpoint_demands_key, "packages.listed"),
    "500 on a body that is not JSON": (server_error_on_non_json_body, "errors.no_server_error"),
    "chat lets a balance go negative": (chat_lets_balance_go_negative, "chat.never_negative"),
    "chat served at zero balance": (chat_served_at_zero_balance, "chat.insufficient"),
    "402 with another code": (chat_402_with_another_code, "chat.insufficient"),
    "missing fields answer 422": (missing_fields_answer_422, "grant.missing_fields"),
    "balance reads are stale": (stale_balance_reads, "grant.readback"),
    "a new key replays the same body": (keys_ignored_body_deduplicated, "idem.new_key_new_grant"),
}


# -- differs only where the docs are silent ----------------------------------------------


def silent_variant() -> Flask:
    """Other ledger ids (UUIDs), extra fields, 409 for a reused key, another /v1/me shape,
    no Idempotent-Replayed header: all choices the vendor's docs leave open."""

    def add_extra(value: Any) -> None:
        if isinstance(value, dict):
            value["request_id"] = "req_0001"

    def after(ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict):
            return
        if "ledger_id" in body:
            body["ledger_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, body["ledger_id"]))
        ex.response_headers.pop("Idempotent-Replayed", None)
        if ex.status == 422 and body.get("error", {}).get("code") == "idempotency_key_reused":
            ex.status = 409
        if ex.path == "/v1/me" and ex.status == 200:
            body = {"user": {"id": body["id"], "email": body["email"]}, "usage_30d": {"requests": 0}}
        add_extra(body)
        ex.set_json(body)

    return middleware(base_app(), after)

