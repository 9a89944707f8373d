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


@dataclass
class ObservedExchange:
    """A relayed request and the upstream's answer (``status`` None: no answer came)."""

    method: str
    target: str  # path and query, as the client sent them
    request_headers: list[tuple[str, str]]  # credentials replaced
    request_body: bytes
    scope: str  # a digest of the caller's Authorization header: whose idempotency keys these are
    started: int  # order of arrival among all exchanges
    status: int | None = None
    reason: str = ""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""  # as the upstream sent it (maybe compressed)
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

    @property
    def content(self) -> bytes:
        """The response body decoded from its Content-Encoding (gzip, deflate), for judging."""
        encoding = (self.response_header("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "deflate"):
            try:
                return zlib.decompress(self.response_body, 47 if encoding == "gzip" else 15)
            except zlib.error:
                return self.response_body
        return self.response_body


def scrub_request_headers(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str]:
    """The headers with credentials replaced, and the caller's scope (a digest of its key)."""
    scrubbed, scope = [], ""
    for name, value in headers:
        lowered = name.lower()
        if lowered == "authorization":
            scope = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:24]
            scheme, _, credential = value.strip().partition(" ")
            value = f"{scheme} {KEY_VARIABLE}" if credential else KEY_VARIABLE
        elif lowered in SECRET_HEADERS:
            value = redact_header(name, value)
        elif lowered == "cookie":  # an app's session cookies are none of the judge's business
            value = "(redacted)"
        scrubbed.append((name, value))
    return scrubbed, scope


def _find(headers: list[tuple[str, str]], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers if key.lower() == lowered), None)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return None
