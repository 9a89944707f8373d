"""One log line per request: API keys redacted, and every logged value escaped, so that no
request can write a line of its own into the log (a path holding ``%0A``, say)."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from ..redaction import redact_secret
from .escaping import printable
from .state import bearer_token

log = logging.getLogger("quota_mock.requests")


def redact_key(key: str | None) -> str:
    """Enough of a key to tell two apart, never enough to use (``sk-quota-…1234``), escaped
    for printing."""
    return printable(redact_secret(key))


def install_request_log(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.quota_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        elapsed_ms = (time.perf_counter() - g.get("quota_started", time.perf_counter())) * 1000
        log.info(
            '%s "%s %s" %s %.1fms key=%s',
            printable(request.remote_addr or "-"),
            printable(request.method, 20),
            printable(request.path, 500),
            response.status_code,
            elapsed_ms,
            redact_key(bearer_token(request.headers.get("Authorization"))),
        )
        return response
