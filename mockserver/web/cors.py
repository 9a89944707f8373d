"""CORS, so that a browser app on another origin can call the mock directly, with no proxy.

On by default (any origin) because the mock's first users are frontend developers running
their app on ``localhost:3000`` and the mock on ``:8080``; ``--cors-origin`` narrows it and
``--no-cors`` turns it off. Only what the Fetch standard needs, written out here rather than
pulled in from flask-cors: the allowed request headers, the exposed response headers, and
preflight answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask, Response, request

# What the API's callers send beyond the CORS-safelisted headers.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-External-User-ID",
    "Prefer",
    "X-Mock-Admin-Token",
)
# Response headers a page's script may read (others are hidden from it by the browser).
EXPOSED_HEADERS = (
    "Idempotent-Replayed",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Preference-Applied",
    "Quota-Mock-Prefer-Ignored",
)
ALLOWED_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS")
PREFLIGHT_MAX_AGE_SECONDS = 600


def install_cors(app: Flask, origins: Sequence[str]) -> None:
    any_origin = "*" in origins
    allowed = frozenset(origins)

    def allow_origin(origin: str | None) -> str | None:
        if origin is None:
            return None  # not a cross-origin browser request
        if any_origin:
            return "*"
        return origin if origin in allowed else None

    @app.before_request
    def _preflight() -> Response | None:
        # Answered before routing, authentication and the admin token: a browser sends no
        # credentials on a preflight, and an unknown route still deserves a CORS answer
        # so that the page sees the real 404 that follows.
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=204)
        del response.headers["Content-Type"]  # an empty answer has no type
        origin = allow_origin(request.headers.get("Origin"))
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
            response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        return response

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        origin = allow_origin(request.headers.get("Origin"))
        if not any_origin:
            # The answer depends on the Origin header: caches must keep them apart.
            response.vary.add("Origin")
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return response
