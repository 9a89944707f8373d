"""Records each request the mock answers in its request journal (``domain/journal.py``).

Every request outside the control API (``/_mock/``) is recorded: operations, unknown routes,
preflights. The control API is left out on purpose: the dashboard polls it every second and
would push an app's own requests out of the ring.

This runs on every request, so it only gathers raw values (the body bytes the validator
already read, the response bytes Flask already built, the environ's header entries); the
journal's readers turn them into JSON. A streamed answer (server-sent events) is recorded
when its stream ends, with the first bytes that went out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..domain.errors import IDEMPOTENCY_KEY_IN_FLIGHT, IDEMPOTENCY_KEY_REUSED, QuotaError
from ..domain.journal import CONFLICT, IN_FLIGHT, NEW, NO_KEY, REPLAYED, RequestJournal
from ..redaction import SECRET_HEADERS, redact_header
from .admin import ADMIN_TOKEN_COOKIE
from .drop import DROP_ENVIRON_KEY
from .errors import REFUSAL_ENVIRON_KEY
from .simulation import SIMULATED_ENVIRON_KEY
from .state import MockState

CONTROL_PREFIX = "/_mock"
_STARTED = "quota_mock.journal.started"
_REDACTION_CACHE = 256
_MAX_NOT_HEADERS = 1000
_REPLAY_MARK = b'"duplicate":true'
_SECRET_COOKIES = frozenset({ADMIN_TOKEN_COOKIE})
# The environ entries of headers that may carry a credential.
_SECRET_ENVIRON = frozenset("HTTP_" + name.upper().replace("-", "_") for name in (*SECRET_HEADERS, "cookie"))


def install_journal_recorder(app: Flask, state: MockState, journal: RequestJournal) -> _Recorder:
    """Record every answered request in ``journal``; call first, so it sees the final answer."""
    recorder = _Recorder(state, journal)
    # The clock starts below Flask, where a request arrives: cheaper than a before_request hook.
    app.wsgi_app = _ArrivalStamp(app.wsgi_app, journal)  # type: ignore[method-assign]
    app.after_request(recorder.record)
    return recorder


class _Recorder:
    def __init__(self, state: MockState, journal: RequestJournal) -> None:
        self.journal = journal
        self.limit = state.config.journal_body_limit
        self.operations = state.contract.by_id
        self.keyed = frozenset(
            op.operation_id
            for op in state.contract.operations
            if any(p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key" for p in op.parameters)
        )
        # Environ keys seen that are no header (the server's, WSGI's, Flask's): one set
        # difference skips them all at C speed, and only the rest is looked at one by one.
        self._not_headers: set[str] = set()
        # Redacted credential headers by raw value: a client sends the same Authorization
        # header with every request, and redacting it each time would cost.
        self._redacted: dict[tuple[str, str], str] = {}

    def record(self, response: Response) -> Response:
        current = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not ten
        environ = current.environ
        path = current.path
        if _is_control(path):
            return response
        now = time.perf_counter()
        started = environ.get(_STARTED, now)
        rule = current.url_rule
        operation_id = rule.endpoint if rule is not None and rule.endpoint in self.operations else None
        status = response.status_code
        dropped = DROP_ENVIRON_KEY in environ
        problem = None
        if status >= 400 or dropped:
            problem = _problem(environ.get(REFUSAL_ENVIRON_KEY), environ.get(SIMULATED_ENVIRON_KEY))
        body = None if response.is_streamed else b"".join(response.response)  # type: ignore[arg-type]
        request_body = _request_body(current)
        head = self._head(environ, now, started, current.method, path, operation_id, status)
        middle = self._middle(environ, operation_id, status, body, request_body)
        if body is None:
            response.response = _RecordedStream(
                response.response, self.journal, head, middle, (problem, dropped), started, self.limit
            )
            return response
        self._append(head, middle, body, started, problem, dropped)
        return response

    def record_answer(
        self, environ: dict[str, Any], operation_id: str, status: int, body: bytes, request_body: bytes
    ) -> None:
        """The entry :meth:`record` makes, for a success the fast lane answered below Flask."""
        now = time.perf_counter()
        started = environ.get(_STARTED, now)
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        head = self._head(environ, now, started, environ.get("REQUEST_METHOD", ""), path, operation_id, status)
        self._append(head, self._middle(environ, operation_id, status, body, request_body), body, started, None, False)

    def _head(
        self, environ: dict[str, Any], now: float, started: float, method: str, path: str, operation_id: str | None,
        status: int,
    ) -> tuple[Any, ...]:  # fmt: skip
        arrived = time.time() - (now - started)
        return (arrived, method, path, environ.get("QUERY_STRING", ""), operation_id, status)

    def _middle(
        self, environ: dict[str, Any], operation_id: str | None, status: int, body: bytes | None, request_body: bytes
    ) -> tuple[Any, ...]:
        idempotency = NO_KEY
        if operation_id in self.keyed and "HTTP_IDEMPOTENCY_KEY" in environ:
            idempotency = _idempotency(status, body, environ.get(REFUSAL_ENVIRON_KEY))
        return (idempotency, self._headers(environ), request_body[: self.limit], len(request_body))

    def _append(
        self, head: tuple[Any, ...], middle: tuple[Any, ...], body: bytes, started: float, problem: str | None,
        dropped: bool,
    ) -> None:  # fmt: skip
        duration_ms = (time.perf_counter() - started) * 1000
        # A plain tuple in JournalEntry's field order: the journal makes it one when read.
        self.journal.append((*head, duration_ms, *middle, body[: self.limit], len(body), problem, dropped))

    def _headers(self, environ: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        headers = []
        for name in environ.keys() - self._not_headers:
            if name[:5] != "HTTP_":
                if len(self._not_headers) < _MAX_NOT_HEADERS:
                    self._not_headers.add(name)
                continue
            value = environ[name]
            if name in _SECRET_ENVIRON:
                value = self._redact(name, value)
            headers.append((name, value))
        content_type = environ.get("CONTENT_TYPE")
        if content_type:
            headers.append(("CONTENT_TYPE", content_type))
        return tuple(headers)

    def _redact(self, name: str, value: str) -> str:
        redacted = self._redacted.get((name, value))
        if redacted is None:
            if len(self._redacted) >= _REDACTION_CACHE:
                self._redacted.clear()
            redacted = self._redacted[(name, value)] = redact_header(name[5:].replace("_", "-"), value, _SECRET_COOKIES)
        return redacted


def _idempotency(status: int, body: bytes | None, refusal: QuotaError | None) -> str:
    """What the idempotency layer decided, read from the answer (see ``domain/journal.py``)."""
    if status < 300:
        # The replay flag of the grant's body: one byte search, where the header's lookup
        # would scan every response header case-insensitively.
        return REPLAYED if body is not None and _REPLAY_MARK in body else NEW
    if refusal is not None and refusal.code == IDEMPOTENCY_KEY_REUSED:
        return CONFLICT
    if refusal is not None and refusal.code == IDEMPOTENCY_KEY_IN_FLIGHT:
        return IN_FLIGHT
    return NO_KEY  # any other failure stores nothing: the key is free for a retry


def _problem(refusal: QuotaError | None, simulated: str | None) -> str | None:
    if refusal is None:
        return simulated
    problem = f"{refusal.code}: {refusal.message}"
    return f"{problem} ({simulated})" if simulated else problem


def _is_control(path: str) -> bool:
    """A control API path (``/_mock`` or below): never recorded."""
    return path.startswith(CONTROL_PREFIX) and path[len(CONTROL_PREFIX) : len(CONTROL_PREFIX) + 1] in ("", "/")


class _ArrivalStamp:
    """Notes when each request arrived, in its environ, for the journal's durations, and tells
    the journal that a request it will record has begun."""

    def __init__(self, app: Callable[..., Iterable[bytes]], journal: RequestJournal) -> None:
        self.app = app
        self.begin = journal.begin

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[_STARTED] = time.perf_counter()
        # As Werkzeug makes request.path of it, leading slashes merged ("//_mock" is "/_mock");
        # latin-1 or UTF-8, "/_mock" reads the same.
        if not _is_control("/" + environ.get("PATH_INFO", "").lstrip("/")):
            self.begin()
        return self.app(environ, start_response)


class _RecordedStream:
    """A streamed body passed through unchanged, recorded once: when it has all gone out, or
    when the server closes it, whichever comes first."""

    def __init__(
        self,
        body: Iterable[bytes],
        journal: RequestJournal,
        head: tuple[Any, ...],
        middle: tuple[Any, ...],
        tail: tuple[str | None, bool],
        started: float,
        limit: int,
    ) -> None:
        self._body = body
        self._journal = journal
        self._head, self._middle, self._tail = head, middle, tail
        self._started = started
        self._limit = limit
        self._kept: list[bytes] = []
        self._kept_size = 0
        self._size = 0
        self._recorded = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            self._size += len(data)
            if self._kept_size < self._limit:
                self._kept.append(data[: self._limit - self._kept_size])
                self._kept_size += len(self._kept[-1])
            yield chunk
        self._record()  # the whole stream went out

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
        self._record()  # the stream ended early (the client went away) or was never read

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            duration_ms = (time.perf_counter() - self._started) * 1000
            body = b"".join(self._kept)
            self._journal.append((*self._head, duration_ms, *self._middle, body, self._size, *self._tail))


def _request_body(current: Any) -> bytes:
    """The request's body as the app read it; empty when it was never to be read (past the
    body limit, whatever the answer: a 413, or a 404/405 that came first). Recording an
    answer must never change it."""
    try:
        return current.get_data(cache=True)
    except HTTPException:
        return b""
