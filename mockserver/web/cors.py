"""Cross-origin policy: the public API is open to browser apps, the control API is not.

CORS is on by default (any origin) for the public API, because the mock's first users are
frontend developers running their app on ``localhost:3000`` and the mock on ``:8080``;
``--cors-origin`` narrows it and ``--no-cors`` turns it off. Only what the Fetch standard
needs, written out here rather than pulled in from flask-cors: the allowed request headers,
the exposed response headers, and preflight answers.

The control API (``/_mock/``) belongs to its user, not to whatever page the user's browser
has open, even on loopback with no admin token: it sends no CORS grant to any origin (so no
page can read the ledger or send it JSON), and it refuses a state-changing request that a
browser marks as coming from another site (``Origin``, ``Sec-Fetch-Site``, or the opaque
``Origin: null`` of sandboxed frames and ``data:`` pages). Curl and the pytest fixture send
neither header; the dashboard's own forms are same-origin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from flask import Flask, Response, request

from ..domain.errors import QuotaError
from .escaping import printable

# What the API's callers send beyond the CORS-safelisted headers.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-External-User-ID",
    "Prefer",
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
# A header name as RFC 9110 spells it (a token): anything else a preflight asks for is not echoed.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_MOST_REQUESTED = 64  # header names echoed from one preflight at most
PREFLIGHT_MAX_AGE_SECONDS = 600
CONTROL_PREFIX = "/_mock"
CROSS_SITE_REFUSED = "cross_site_refused"
# Methods that change nothing; everything else on the control API changes state.
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
# Sec-Fetch-Site values of requests the user made themselves: the page's own, or typed/bookmarked.
_OWN_FETCH_SITES = frozenset(("same-origin", "none"))


def is_control_path(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def install_control_guard(app: Flask) -> None:
    """Refuse state-changing control API requests made by a page of another origin (403)."""

    @app.before_request
    def _refuse_cross_site() -> None:
        if request.method in _SAFE_METHODS or not is_control_path(request.path):
            return
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site")
        own_origin = request.host_url.rstrip("/")
        if origin is not None and origin.rstrip("/").lower() != own_origin.lower():
            raise _cross_site(f"Origin {printable(origin, 100)}")
        if fetch_site is not None and fetch_site.lower() not in _OWN_FETCH_SITES:
            raise _cross_site(f"Sec-Fetch-Site {printable(fetch_site, 40)}")


def _cross_site(evidence: str) -> QuotaError:
    return QuotaError(
        CROSS_SITE_REFUSED,
        f"The control API refuses state-changing requests from other web pages ({evidence}): "
        "call it with curl or the pytest fixture, or use the dashboard itself",
    )




def _allowed_headers() -> list[str]:
    """The API's own headers, and whatever else the preflight asks for: a client library adds
    headers of its own (OpenAI's SDK sends x-stainless-os, x-stainless-retry-count and more on
    every request, tracing adds traceparent), and a browser refuses the whole request when one
    of them is not allowed. The mock is a local fake: any header name is harmless to it."""
    names = list(ALLOWED_HEADERS)
    known = {name.lower() for name in names}
    requested = request.headers.get("Access-Control-Request-Headers", "")
    for name in [part.strip() for part in requested.split(",")][:_MOST_REQUESTED]:
        if _HEADER_NAME.fullmatch(name) and name.lower() not in known:
            names.append(name)
            known.add(name.lower())
    return names


def install_cors(app: Flask, origins: Sequence[str]) -> None:
    any_origin = "*" in origins
    allowed = frozenset(origins)

    def allow_origin(origin: str | None) -> str | None:
        if origin is None or is_control_path(request.path):
            return None  # not a cross-origin browser request, or the control API: no grant
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
            response.headers["Access-Control-Allow-Headers"] = ", ".join(_allowed_headers())
            response.vary.add("Access-Control-Request-Headers")
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        return response

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        origin = allow_origin(request.headers.get("Origin"))
        if not any_origin and not is_control_path(request.path):
            # The answer depends on the Origin header: caches must keep them apart.
            response.vary.add("Origin")
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return response
