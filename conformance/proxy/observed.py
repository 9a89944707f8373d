"""One exchange as the proxy saw it pass, with its credentials already out of it.

The forwarding side builds an :class:`ObservedExchange` for every request it relayed and
hands it to the judge. Nothing in it can leak a key: the Authorization header is replaced by
``Bearer $QUOTA_API_KEY`` (what a reproduction reads from the shell) and every other
credential header is redacted; what the judge needs of the key, the idempotency scope, is a
digest.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from mockserver.redaction import SECRET_HEADERS, redact_header

KEY_VARIABLE = "$QUOTA_API_KEY"
# The body kept for judging; a longer one is relayed whole but not judged.
MAX_JUDGED_BODY = 4 * 1024 * 1024
# Shorter "credentials" (a bare "Bearer", a typo) are not searched for in bodies.
MIN_SECRET = 8


@dataclass
class ObservedExchange:
    """A relayed request and the upstream's answer (``status`` None: no answer came)."""

    method: str
    target: str  # path and query, as the client sent them
    request_headers: list[tuple[str, str]]  # credentials replaced
    request_body: bytes  # the caller's credentials replaced
    scope: str  # a digest of the caller's Authorization header: whose idempotency keys these are
    started: int  # order of arrival among all exchanges
    status: int | None = None
    reason: str = ""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    # As the judge reads it: decoded from its Content-Encoding, the caller's credentials replaced.
    response_body: bytes = b""
    ended: int = 0  # order of completion
    elapsed: float = 0.0
    complete: bool = True  # False: cut short, or too long to judge
    upstream_url: str = ""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.target.split("?", 1)[1], keep_blank_values=True)) if "?" in self.target else {}

    def request_header(self, name: str) -> str | None:
        return _find(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _find(self.response_headers, name)

    @property
    def request_json(self) -> Any:
        return _json(self.request_body)


def scrub_request_headers(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str, list[str]]:
    """The headers with credentials replaced; the caller's scope (a digest of its key); and the
    credentials themselves, for :func:`scrub` to take out of the bodies (never to be kept)."""
    scrubbed, scope, secrets = [], "", []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "authorization":
            scope = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:24]
            scheme, _, credential = value.strip().partition(" ")
            secrets.append(credential.strip() or value.strip())
            value = f"{scheme} {KEY_VARIABLE}" if credential else KEY_VARIABLE
        elif lowered in SECRET_HEADERS:
            secrets.append(value.strip())
            value = redact_header(name, value)
        elif lowered == "cookie":  # an app's session cookies are none of the judge's business
            value = "(redacted)"
        scrubbed.append((name, value))
    return scrubbed, scope, [secret for secret in secrets if len(secret) >= MIN_SECRET]


def scrub(body: bytes, secrets: list[str]) -> bytes:
    """``body`` without the caller's credentials (an upstream may echo a key in an error)."""
    for secret in secrets:
        body = body.replace(secret.encode("utf-8", "surrogateescape"), KEY_VARIABLE.encode())
    return body


def decoded(body: bytes, content_encoding: str | None) -> bytes:
    """A body decoded from its Content-Encoding (gzip, deflate), as the judge reads it."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "deflate"):
        try:
            return zlib.decompress(body, 47 if encoding == "gzip" else 15)
        except zlib.error:
            return body
    return body


def _find(headers: list[tuple[str, str]], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers if key.lower() == lowered), None)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return None
