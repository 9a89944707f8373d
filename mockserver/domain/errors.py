"""The one error type of the domain.

A domain error carries the contract's error ``code`` and a human message, never an HTTP
status: the web layer looks the status up in openapi.yaml, in one place.
"""

from __future__ import annotations

# The codes the domain raises. Their HTTP statuses live in openapi.yaml, not here.
BAD_REQUEST = "bad_request"
INVALID_API_KEY = "invalid_api_key"
USER_NOT_FOUND = "user_not_found"
INSUFFICIENT_BALANCE = "insufficient_balance"
IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"
IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
PAYLOAD_TOO_LARGE = "payload_too_large"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
SERVICE_UNAVAILABLE = "service_unavailable"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"


class QuotaError(Exception):
    """A failure the API reports to its caller in the documented error envelope."""

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # Extra response headers the failure implies (``Allow``, ``Retry-After``).
        self.headers = dict(headers or {})
