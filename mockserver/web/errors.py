"""The one place where failures become HTTP responses in the documented envelope.

Domain errors carry a code; the status comes from openapi.yaml. Werkzeug's own errors
(unknown route, wrong method, body too large) are mapped to the contract's codes, and
anything unexpected still answers in the envelope instead of a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..contract import Contract, control_contract
from ..domain.errors import (
    BAD_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    QuotaError,
)
from .escaping import printable
from .presenters import json_response

log = logging.getLogger("quota_mock")
# The error that answered a request, kept for the request journal's "problem".
REFUSAL_ENVIRON_KEY = "quota_mock.refusal"


def envelope(contract: Contract, error: QuotaError) -> Response:
    body = {"error": {"code": error.code, "message": error.message}}
    response = json_response(body, _status_for(contract, error.code))
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _status_for(contract: Contract, code: str) -> int:
    """The status of an error code: the public contract's, or the control API's own codes'."""
    try:
        return contract.status_for_code(code)
    except KeyError:
        return control_contract().status_for_code(code)


def register_error_handlers(app: Flask, contract: Contract, max_body_bytes: int) -> None:
    from flask import request

    @app.errorhandler(QuotaError)
    def _quota_error(error: QuotaError) -> Response:
        request.environ[REFUSAL_ENVIRON_KEY] = error
        return envelope(contract, error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        # An operation sets its own limit (openapi.yaml's x-quota-body-limit) on the request.
        limit = request.max_content_length or max_body_bytes
        refusal = request.environ[REFUSAL_ENVIRON_KEY] = _translate(error, request.method, request.path, limit)
        return envelope(contract, refusal)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # A bug in the mock: still an enveloped answer, and the traceback goes to the log.
        log.exception("unexpected error on %s %s", printable(request.method, 20), printable(request.path, 500))
        # The journal names the exception; the client gets no internals.
        request.environ[REFUSAL_ENVIRON_KEY] = QuotaError(
            "internal_error", f"The mock hit an unexpected error ({type(error).__name__}; see its log)"
        )
        return json_response({"error": {"code": "internal_error", "message": "The mock hit an unexpected error"}}, 500)


def _translate(error: HTTPException, method: str, path: str, max_body_bytes: int) -> QuotaError:
    if isinstance(error, NotFound):
        return QuotaError(NOT_FOUND, f"No route for {method} {path}")
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or ()))
        return QuotaError(METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}", headers={"Allow": allowed})
    if isinstance(error, RequestEntityTooLarge):
        return QuotaError(PAYLOAD_TOO_LARGE, f"Request body exceeds {max_body_bytes} bytes")
    return QuotaError(BAD_REQUEST, error.description or error.name)
