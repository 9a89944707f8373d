"""The tools every mutant and variant is built with: one mock app instance, changed by WSGI
middleware or by replacing a service or store method. mockserver itself is never edited.

A mutant is a realistic deployment bug; a variant is a correct deployment that differs from
the mock only where the vendor's docs are silent. Both start from :func:`correct_app`.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from flask import Flask
from werkzeug.test import run_wsgi_app

from mockserver import create_app, mock_state
from mockserver.domain.service import FundingService

KEY = "sk-quota-conformance-test-key-000000000"
# The staging job's --second-api-key: every app built here accepts both.
KEY2 = "sk-quota-conformance-second-key-0000000"
GRANT = "/v1/funding/grant"
USERS = "/v1/users/"


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

    @property
    def request_json(self) -> Any:
        try:
            return json.loads(self.body, parse_float=Decimal)
        except ValueError:
            return None

    def set_json(self, value: Any, status: int | None = None) -> None:
        self.response = json.dumps(value, default=str).encode()
        self.response_headers["Content-Type"] = "application/json"
        if status is not None:
            self.status = status

    def set_request_json(self, value: Any) -> None:
        self.body = json.dumps(value, default=_decimal_as_number).encode()

    def error(self, status: int, code: str, message: str) -> bool:
        """Answer with the documented envelope (for a ``before`` hook: returns True)."""
        self.set_json({"error": {"code": code, "message": message}}, status)
        return True

    @property
    def error_code(self) -> str | None:
        body = self.json
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body["error"].get("code")
        return None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def drop_header(self, name: str) -> None:
        """Forget a request header, whatever its case (a handler that never reads it)."""
        for key in [k for k in self.headers if k.lower() == name.lower()]:
            del self.headers[key]

    def user_in_path(self) -> str | None:
        """The decoded ``{external_user_id}`` of a /v1/users/... path, if this is one."""
        if not self.path.startswith(USERS):
            return None
        rest = self.path[len(USERS):]
        for suffix in ("/balance", "/chat/completions"):
            if rest.endswith(suffix):
                return rest[: -len(suffix)]
        return None


def _decimal_as_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(type(value).__name__)


Before = Callable[[Exchange], bool]  # return True to answer without calling the app
After = Callable[[Exchange], None]


def middleware(app: Flask, after: After | None = None, before: Before | None = None) -> Flask:
    """Wrap ``app``: ``before`` may rewrite the request or answer it, ``after`` the answer."""
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        ex = Exchange(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), headers, body)
        if before is None or not before(ex):
            # Headers as the hook left them: one it deleted is gone for the app too.
            environ = {k: v for k, v in environ.items() if not k.startswith("HTTP_")}
            environ["wsgi.input"] = io.BytesIO(ex.body)
            environ["CONTENT_LENGTH"] = str(len(ex.body))
            environ["PATH_INFO"] = ex.path.encode("utf-8").decode("latin-1")
            environ["QUERY_STRING"] = ex.query
            for name, value in ex.headers.items():
                environ["HTTP_" + name.upper().replace("-", "_")] = value
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


def base_app(config: dict[str, Any] | None = None) -> Flask:
    """The mock as it is (with ``config``'s settings: a seed, a rate limit), accepting both
    staging keys."""
    return create_app({"api_keys": [KEY, KEY2], **(config or {})})


def correct_app(config: dict[str, Any] | None = None) -> Flask:
    """The mock (built with ``config``), with the mock's own known bugs corrected in front of
    it, so that every mutant breaks exactly one thing and every variant starts from a correct
    deployment.

    Known bug corrected: an integral float ``max_tokens`` (``3.0``) answered 500 (issue 10
    keeps that as a planted mutant instead). The correction is harmless once the mock is fixed.
    """

    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path.endswith("/chat/completions") else None
        if isinstance(body, dict):
            tokens = body.get("max_tokens")
            if isinstance(tokens, Decimal) and tokens == tokens.to_integral_value():
                body["max_tokens"] = int(tokens)
                ex.set_request_json(body)
        return False

    return middleware(base_app(config), None, before)


def service_of(app: Flask) -> FundingService:
    return mock_state(app).service


def write_balance(service: FundingService, user_id: str | None, micros: int) -> None:
    """A buggy deployment's stray write to a stored balance (``None``: the grant pool), made
    through the store's own adjustment so that it works whatever the store keeps inside."""
    service.store.set_balance(user_id, micros, service.clock.now(), "mutant: a stray write")


def unlocked_grants(service: FundingService) -> None:
    """Grants as a deployment without a transaction makes them: claim the key, then apply,
    each step on its own, so a race mutant's read-modify-write in ``apply_grant`` can interleave
    with another request (the store's own one-step grant holds its lock across all three)."""
    store = service.store

    def grant(request: Any, clock: Any) -> Any:
        key = request.idempotency_key
        if key is not None:
            replayed = store.claim_idempotency_key(request.scope, key, request.fingerprint, clock.now())
            if replayed is not None:
                return dataclasses.replace(replayed, duplicate=True)
        try:
            completes = None if key is None else (request.scope, key)
            return store.apply_grant(request.user_id, request.amount, request.description, clock.now(), completes)
        except BaseException:
            if key is not None:
                store.release_idempotency_key(request.scope, key)
            raise

    store.grant = grant  # type: ignore[method-assign]


def add_to_balance(service: FundingService, user_id: str | None, delta: int) -> None:
    store = service.store
    current = store.pool_balance() if user_id is None else store.user_balance(user_id) or 0
    write_balance(service, user_id, current + delta)


def on_answer(predicate: Callable[[Exchange], bool], change: Callable[[Exchange], None]) -> Flask:
    """A correct app whose answers matching ``predicate`` are rewritten by ``change``."""

    def after(ex: Exchange) -> None:
        if predicate(ex):
            change(ex)

    return middleware(correct_app(), after)


def on_request(handle: Before) -> Flask:
    """A correct app with a ``before`` hook (rewrite the request, or answer it)."""
    return middleware(correct_app(), None, handle)


def grant_ok(ex: Exchange) -> bool:
    return ex.path == GRANT and ex.status == 200 and isinstance(ex.json, dict)


def chat_path(ex: Exchange) -> bool:
    return ex.method == "POST" and ex.path.endswith("/chat/completions")


def billed_user(ex: Exchange) -> str | None:
    """Who a chat request bills: the path's user, else the X-External-User-ID header's."""
    if not chat_path(ex):
        return None
    return ex.user_in_path() or ex.header("X-External-User-ID")


def store_patch(name: str, wrap: Callable[[FundingService, Any], Any]) -> Flask:
    """A correct app whose store method ``name`` is ``wrap(service, original)``: the wrapper
    receives the service (for stray writes) and the original method."""
    app = correct_app()
    service = service_of(app)
    setattr(service.store, name, wrap(service, getattr(service.store, name)))
    return app


def service_patch(name: str, wrap: Callable[[FundingService, Any], Any]) -> Flask:
    """A correct app whose service method ``name`` is ``wrap(service, original)`` (as
    :func:`store_patch`, a level up: a deployment's request logic rather than its storage)."""
    app = correct_app()
    service = service_of(app)
    setattr(service, name, wrap(service, getattr(service, name)))
    return app


def stream_flag() -> tuple[threading.local, Before]:
    """A thread-local ``on`` set by a ``before`` hook while the request is a streamed chat."""
    streaming = threading.local()

    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        streaming.on = isinstance(body, dict) and body.get("stream") is True
        return False

    return streaming, before


def cents_text(micros: int) -> str:
    cents = micros // 10_000
    return f"${cents // 100}.{cents % 100:02d}"


def dollars(text: str) -> Decimal:
    return Decimal(text.removeprefix("$"))


def decoded(text: str) -> str:
    return unquote(text)


class Rendezvous:
    """Makes a read-modify-write race happen every time two requests are in flight at once,
    instead of now and then: the first to reach :meth:`meet` waits (briefly) for the second.
    A request alone in the app waits only a moment (``grace``) for a partner to arrive."""

    def __init__(self, app: Flask, timeout: float = 1.0, grace: float = 0.15) -> None:
        self._timeout, self._grace = timeout, grace
        self._cond = threading.Condition()
        self._in_flight = 0
        self._waiting = False
        self._round = 0
        inner = app.wsgi_app

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            with self._cond:
                self._in_flight += 1
                self._cond.notify_all()  # a waiting request now waits for this one
            try:
                return inner(environ, start_response)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

        app.wsgi_app = counted  # type: ignore[method-assign]

    def release(self) -> None:
        """Let a request waiting in :meth:`meet` go on now; never waits itself."""
        with self._cond:
            if self._waiting:
                self._waiting = False
                self._round += 1
                self._cond.notify_all()

    def meet(self) -> None:
        with self._cond:
            if self._waiting:  # a partner is waiting: release it, and go on together
                self._waiting = False
                self._round += 1
                self._cond.notify_all()
                return
            self._waiting = True
            current, started = self._round, time.monotonic()
            while self._round == current:
                # Alone, wait a moment for a partner to arrive; with one in flight, wait longer.
                limit = self._timeout if self._in_flight >= 2 else self._grace
                left = started + limit - time.monotonic()
                if left <= 0:
                    self._waiting = False
                    self._round += 1
                    break
                self._cond.wait(left)


@dataclass(frozen=True)
class Mutant:
    """One realistic deployment bug, and the conformance rule that must catch it."""

    name: str
    family: str
    rule: str
    description: str
    build: Callable[[], Flask]
    # Caught only when the run waits and replays (--retention-check 65).
    retention: bool = False


REGISTRY: dict[str, Mutant] = {}


Factory = Callable[[], Flask]


def mutant(family: str, rule: str, description: str, *, retention: bool = False) -> Callable[[Factory], Factory]:
    """Register the decorated app factory as a mutant named after the function."""

    def register(build: Factory) -> Factory:
        name = build.__name__
        if name in REGISTRY:
            raise ValueError(f"two mutants named {name}")
        REGISTRY[name] = Mutant(name, family, rule, description, build, retention)
        return build

    return register


def every_nth(n: int, first: int | None = None) -> Callable[[], bool]:
    """A counter for a hook that answers every ``n``-th request it sees (the ``first``-th one
    first; by default the ``n``-th), safe across the server's threads."""
    counter, lock = itertools.count(1), threading.Lock()
    offset = (first if first is not None else n) % n

    def due() -> bool:
        with lock:
            return next(counter) % n == offset

    return due


def shed(ex: Exchange, message: str = "Temporarily overloaded; nothing was applied, retry later") -> bool:
    """Answer 503 service_unavailable with Retry-After: 1, as load shedding does (a ``before`` hook)."""
    ex.error(503, "service_unavailable", message)
    ex.response_headers["Retry-After"] = "1"
    return True


def is_stream(ex: Exchange) -> bool:
    """Whether the answer is a server-sent event stream."""
    return "text/event-stream" in ex.response_headers.get("Content-Type", "")


def rewrite_events(ex: Exchange, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """Replace each JSON ``data:`` event of a stream with ``change(chunk)`` (None drops it)."""
    out: list[bytes] = []
    for line in ex.response.split(b"\n"):
        if line.startswith(b"data: {"):
            new = change(json.loads(line[6:]))
            if new is None:
                continue
            line = b"data: " + json.dumps(new, separators=(",", ":")).encode()
        out.append(line)
    ex.response = b"\n".join(out)


def edit_events(ex: Exchange, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Edit each JSON ``data:`` event of a stream in place (``edit``'s result is ignored)."""
    rewrite_events(ex, lambda chunk: (edit(chunk), chunk)[1])


def rewrite_answer(ex: Exchange, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite a JSON answer's body, or each chunk of a stream, with ``change``."""
    if is_stream(ex):
        rewrite_events(ex, change)
    elif isinstance(ex.json, dict):
        ex.set_json(change(ex.json))


def chat_answers_rewritten(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Flask:
    """The correct app, every chat it answers 200 rewritten with ``change`` (body or chunks)."""

    def after(ex: Exchange) -> None:
        if chat_path(ex) and ex.status == 200:
            rewrite_answer(ex, change)

    return middleware(correct_app(), after)
