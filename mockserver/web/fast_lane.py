"""The fast lane: plain public API requests answered below Flask, by the same code.

A grant through Flask spends more of its time in Flask's and Werkzeug's layers (request
and application contexts, URL adapter, hooks, response finalisation) than in the mock's own
work. For the common request none of those layers adds anything, so this WSGI middleware
answers it directly: it routes by the contract's paths, then runs exactly what the Flask view
runs (``public_api.answer``: authentication, validation against openapi.yaml, the operation's
handler) and records the journal entry the journal's Flask hook would.

Everything else goes to Flask untouched, so that every feature keeps its one implementation:

- requests the lane does not handle: the control API, chat (streaming), unknown routes,
  other methods, bodies without a Content-Length or over the operation's limit, anything
  with a ``Prefer`` or ``Origin`` header;
- requests for an operation whose Flask view was replaced (a test's sabotage, a plugin);
- every request while a feature that hooks into Flask is on: fault rules, a rate limit,
  restricted CORS origins, the response self-check, the request log;
- every refusal: a request the lane refuses (any QuotaError, any error at all) is handed to
  Flask with the refusal attached, and the Flask view raises it, so the answer goes through
  the one error path (envelope, journal, CORS) without running the operation again.

The lane checks, once, that the Flask app has no request hook it does not know: a hook added
later (say, a new header check) switches the lane off rather than being bypassed, and a test
says so (tests/http/test_fast_lane.py), next to the test that both paths answer alike.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from .public_api import FAST_LANE_OPERATIONS, FAST_LANE_REFUSAL, FAST_LANE_VIEW, answer, raw_target
from .request_body import check_media_type, read_body
from .state import AnyTextConverter, MockState

# Request hooks whose effect the lane reproduces (or that do nothing on the requests it takes).
_KNOWN_HOOKS = frozenset(
    {
        "mockserver.web.cors.install_cors.<locals>._preflight",  # OPTIONS only: the lane takes none
        "mockserver.web.cors.install_cors.<locals>._cors_headers",  # nothing without Origin (any-origin CORS)
        "mockserver.web.simulation.install_extra_headers.<locals>._extra",  # Prefer's and faults': none here
        "mockserver.web.journal_recorder._Recorder.record",  # the lane records the same entry
        "mockserver.web.cors.install_control_guard.<locals>._refuse_cross_site",  # the control API only
        "mockserver.web.request_body.install_body_reader.<locals>._read_body",  # the lane reads bodies alike
    }
)
_STATUS_LINES = {200: "200 OK"}
_RAW_BODY_HEADERS = frozenset({"HTTP_TRANSFER_ENCODING", "HTTP_CONTENT_ENCODING"})
FAST_LANE_KEY = "quota_mock_fast_lane"  # the app's extension holding its lane
_TEMPLATE = re.compile(r"\{([^}]+)\}")


class FastLane:
    """WSGI middleware in front of the Flask app's own ``wsgi_app`` (see the module's docstring)."""

    def __init__(self, app: Flask, flask_wsgi: Callable[..., Iterable[bytes]], state: MockState) -> None:
        self.app = app
        self.flask_wsgi = flask_wsgi
        self.state = state
        self.recorder: Any = None  # the journal's, once installed
        self.enabled = True  # False sends everything through Flask (tests compare the two)
        self._open: bool | None = None  # decided on the first request, when every hook is in
        config = state.config
        self._static: dict[tuple[str, str], Any] = {}
        self._templated: list[tuple[str, re.Pattern[str], Any]] = []
        for operation in state.contract.operations:
            if operation.operation_id not in FAST_LANE_OPERATIONS:
                continue
            route = (operation, state.validators[operation.operation_id],
                     operation.max_body_bytes or config.max_body_bytes)  # fmt: skip
            if "{" in operation.path:
                self._templated.append((operation.method, _path_pattern(operation.path), route))
            else:
                self._static[(operation.method, operation.path)] = route

    @property
    def open(self) -> bool:
        """Whether the lane takes requests at all (settings and hooks allow it)."""
        if self._open is None:
            self._open = self._allowed()
        return self.enabled and self._open and not self.state.faults.active

    def _allowed(self) -> bool:
        config = self.state.config
        if config.validate_responses or config.log_requests or self.state.rate_limiter is not None:
            return False
        if config.cors_origins and "*" not in config.cors_origins:
            return False  # restricted CORS varies every answer on Origin
        hooks = [*self.app.before_request_funcs.get(None, ()), *self.app.after_request_funcs.get(None, ())]
        return all(f"{hook.__module__}.{hook.__qualname__}" in _KNOWN_HOOKS for hook in hooks)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route, path_args = self._route(environ)
        if route is None:
            return self.flask_wsgi(environ, start_response)
        operation, validator, body_limit = route
        if not getattr(self.app.view_functions.get(operation.operation_id), FAST_LANE_VIEW, False):
            return self.flask_wsgi(environ, start_response)  # its view was replaced: Flask runs that one
        body = b""
        media_types = operation.body_media_types
        if media_types:
            # Only a body of declared length within the limit, as sent: a chunked, compressed
            # or oversized one is Flask's (request_body.py) to read or refuse.
            length = environ.get("CONTENT_LENGTH", "")
            if not length.isdigit() or int(length) > body_limit or _RAW_BODY_HEADERS & environ.keys():
                return self.flask_wsgi(environ, start_response)
            body = read_body(environ, body_limit)
            # As request_body.py leaves it, so that Flask reads the same bytes if handed over.
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        try:
            if body.strip():
                check_media_type(environ.get("CONTENT_TYPE"), media_types)
            response = answer(self.state, operation, validator, path_args, _Query(environ), _Headers(environ), body,
                              raw_target(environ))  # fmt: skip
        except Exception as refusal:
            environ[FAST_LANE_REFUSAL] = refusal
            return self.flask_wsgi(environ, start_response)
        payload = response.get_data()
        status = response.status_code
        start_response(_STATUS_LINES.get(status) or response.status, response.headers.to_wsgi_list())
        if self.recorder is not None:
            self.recorder.record_answer(environ, operation.operation_id, status, payload, body)
        return [payload]

    def _route(self, environ: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        if "HTTP_PREFER" in environ or "HTTP_ORIGIN" in environ or not self.open:
            return None, {}
        method = environ.get("REQUEST_METHOD", "")
        # PATH_INFO is WSGI's latin-1 text of the raw bytes; the routes read it as UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        route = self._static.get((method, path))
        if route is not None:
            return route, {}
        if "//" in path:
            return None, {}  # an unknown route's 404 or an id that starts with "/": Flask's
        for route_method, pattern, templated in self._templated:
            if method == route_method:
                match = pattern.match(path)
                if match is not None:
                    return templated, match.groupdict()
        return None, {}


class _Headers:
    """Request headers by lower-case name, straight from the environ (as Werkzeug reads them)."""

    __slots__ = ("_environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str, default: Any = None) -> Any:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        return self._environ.get(key, default)


class _Query:
    """The query string's first value of each name, parsed as Werkzeug parses ``args``."""

    __slots__ = ("_text", "_values")

    def __init__(self, environ: dict[str, Any]) -> None:
        self._text: str = environ.get("QUERY_STRING", "")
        self._values: dict[str, str] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        if not self._text:
            return default
        if self._values is None:
            self._values = {}
            pairs = parse_qsl(
                self._text.encode("latin-1").decode(), keep_blank_values=True, errors="werkzeug.url_quote"
            )
            for key, value in pairs:
                self._values.setdefault(key, value)
        return self._values.get(name, default)


def _path_pattern(path: str) -> re.Pattern[str]:
    """A templated path as Werkzeug matches it with the any-text converter (state.py)."""
    parts = _TEMPLATE.split(path)  # literal, name, literal, ...
    pattern = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>{AnyTextConverter.regex})"
        for index, part in enumerate(parts)
    )
    return re.compile(pattern + r"\Z")
