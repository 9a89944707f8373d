"""One log line per request, with API keys redacted."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from ..redaction import redact_secret

log = logging.getLogger("quota_mock.requests")


def redact_key(key: str | None) -> str:
    """Enough of a key to tell two apart, never enough to use: ``sk-quota-…1234``."""
    return redact_secret(key)


def install_request_log(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.quota_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        elapsed_ms = (time.perf_counter() - g.get("quota_started", time.perf_counter())) * 1000
        authorization = request.headers.get("Authorization", "")
        key = authorization.split(None, 1)[1] if " " in authorization.strip() else None
        log.info(
            '%s "%s %s" %s %.1fms key=%s',
            request.remote_addr,
            request.method,
            request.path,
            response.status_code,
            elapsed_ms,
            redact_key(key),
        )
        return response
