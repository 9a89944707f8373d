"""Request bodies, read once at the edge: the size limit holds however a body arrives, and a
body is JSON (or what its route documents) or it is refused.

A body may come with a ``Content-Length`` (which may lie), chunked with none, or compressed
(``Content-Encoding``). Werkzeug caps a stream without a length at the limit but does not
say that it did: a chunked body padded past the limit was cut there, and what was left
could still parse and be applied. Here the body is read to one byte past the limit, decoded
(gzip or deflate) to one byte past it, and refused with 413 when that byte exists; only
then is it handed on, as a plain stream of known length, to the route.

The media type comes from the route's documented request body (openapi.yaml, or the control
API's own document): anything else is 415 ``unsupported_media_type``, so that a ``text/plain``
or form post from another web page (which a browser sends without asking) is never read as
JSON.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from werkzeug.http import parse_options_header

from ..domain.errors import BAD_REQUEST, PAYLOAD_TOO_LARGE, QuotaError
from .escaping import printable
from .state import MockState

UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
# Content codings the mock decodes (RFC 9110 section 8.4.1): "deflate" is the zlib format.
_ZLIB_WINDOWS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_READ_CHUNK = 64 * 1024

# What a route accepts: the media types of its documented body (empty: it takes no body),
# and its size limit in bytes.
BodyRules = Callable[[str], tuple[tuple[str, ...], int]]


def body_rules(state: MockState) -> BodyRules:
    """A route's body rules from its operation (public or control API) in ``state.validators``."""
    default_limit = state.config.max_body_bytes

    def rules_for(endpoint: str) -> tuple[tuple[str, ...], int]:
        validator = state.validators.get(endpoint.rpartition(".")[2])  # "mock_admin.mockSeed" -> mockSeed
        if validator is None:
            return (), default_limit
        # The operation's own limit from openapi.yaml (x-quota-body-limit), else the default.
        operation = validator.operation
        return operation.body_media_types, operation.max_body_bytes or default_limit

    return rules_for


def install_body_reader(app: Flask, rules_for: BodyRules) -> None:
    """Read, bound and type-check the body of every request to a route that takes one."""

    @app.before_request
    def _read_body() -> None:
        if request.routing_exception is not None or request.endpoint is None:
            return  # no route: the 404 or 405 follows, and nothing reads the body
        media_types, limit = rules_for(request.endpoint)
        if not media_types:
            return
        environ = request.environ
        body = b""
        try:
            body = read_body(environ, limit)
            body = decode_content(body, environ.get("HTTP_CONTENT_ENCODING"), limit)
            environ.pop("HTTP_CONTENT_ENCODING", None)
            if body.strip():
                check_media_type(environ.get("CONTENT_TYPE"), media_types)
        finally:
            # From here on the body is plain bytes of a known length, whatever came over the
            # wire; refused, it is what was read (nothing, past the limit), so that whatever
            # reads it next (the response self-check) finds a stream that ends.
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The body as sent, or a 413 when it is longer than ``limit`` bytes (read no further)."""
    declared = _content_length(environ)
    if declared is not None and declared > limit:
        raise too_large(limit)
    if declared is None and not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: nothing safe to read
    wanted = limit + 1 if declared is None else declared
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    received = 0
    while received < wanted:
        chunk = stream.read(min(_READ_CHUNK, wanted - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if received > limit:
        raise too_large(limit)
    return b"".join(chunks)


def decode_content(body: bytes, coding: str | None, limit: int) -> bytes:
    """The body with its ``Content-Encoding`` undone, never decoding past ``limit`` + 1 bytes."""
    name = (coding or "").strip().lower()
    if name in ("", "identity"):
        return body
    window = _ZLIB_WINDOWS.get(name)
    if window is None:
        raise QuotaError(
            UNSUPPORTED_MEDIA_TYPE,
            f"Content-Encoding {_shown(coding or '')} is not supported: send the body as is, gzip or deflate",
        )
    decoder = zlib.decompressobj(window)
    try:
        decoded = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise QuotaError(BAD_REQUEST, f"Request body is not valid {name} data: {exc}") from exc
    if len(decoded) > limit:
        raise too_large(limit, decoded=True)
    if not decoder.eof or decoder.unused_data:
        raise QuotaError(BAD_REQUEST, f"Request body is not valid {name} data: truncated or followed by other data")
    return decoded


def check_media_type(content_type: str | None, accepted: tuple[str, ...]) -> None:
    """415 unless the body's media type is one the route documents (JSON in UTF-8, for JSON)."""
    wanted = " or ".join(accepted)
    if not content_type or not content_type.strip():
        raise QuotaError(UNSUPPORTED_MEDIA_TYPE, f"Send a Content-Type: this body must be {wanted}")
    media_type, options = parse_options_header(content_type)
    if media_type.lower() not in accepted:
        raise QuotaError(
            UNSUPPORTED_MEDIA_TYPE, f"Content-Type {_shown(media_type)} is not accepted here: send the body as {wanted}"
        )
    charset = options.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise QuotaError(
            UNSUPPORTED_MEDIA_TYPE, f"charset {_shown(charset)} is not accepted: send the body as {wanted} in UTF-8"
        )


def too_large(limit: int, *, decoded: bool = False) -> QuotaError:
    return QuotaError(PAYLOAD_TOO_LARGE, f"Request body exceeds {limit} bytes" + (" once decoded" if decoded else ""))


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if raw is None or raw == "":
        return None
    try:
        length = int(raw)
    except ValueError:
        raise QuotaError(BAD_REQUEST, "Content-Length is not a number") from None
    if length < 0:
        raise QuotaError(BAD_REQUEST, "Content-Length is negative")
    return length


def _shown(text: str) -> str:
    return repr(printable(text, 80))
