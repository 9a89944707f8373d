"""The domain's errors: one base type, and the named failures every state store raises.

A domain error carries the contract's error ``code`` and a human message, never an HTTP
status: the web layer looks the status up in openapi.yaml, in one place.

The store failures below are defined once, as moto's ``core/exceptions.py`` defines its
errors: each type carries its code and message, and both stores raise the same types. A
Redis script names a failure by the type's ``reply`` tag; :func:`store_error` turns that tag
back into the type, so no code or message is written a second time.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

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

# Lua numbers are doubles: in the Redis store every balance and amount must stay an exact
# integer in one. Part of an error's message, so it lives here.
MAX_SAFE_MICRODOLLARS = 2**53 - 1


class QuotaError(Exception):
    """A failure the API reports to its caller in the documented error envelope."""

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # Extra response headers the failure implies (``Allow``, ``Retry-After``).
        self.headers = dict(headers or {})


class StoreError(QuotaError):
    """A failure a state store reports. Each subclass fixes its ``code`` and ``message``
    (class attributes, like moto's exceptions) and the ``reply`` tag a Redis script returns
    to name it."""

    code: str
    message: str
    reply: ClassVar[str]

    def __init__(self, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(type(self).code, type(self).message, headers=headers)

    @classmethod
    def from_reply(cls, values: list[Any]) -> StoreError:
        """The error from a script's reply values after its tag."""
        return cls()


class IdempotencyKeyReused(StoreError):
    code = IDEMPOTENCY_KEY_REUSED
    message = "This Idempotency-Key was already used with a different request body"
    reply = "key_reused"


class IdempotencyKeyInFlight(StoreError):
    code = IDEMPOTENCY_KEY_IN_FLIGHT
    message = "A request with this Idempotency-Key is still being processed"
    reply = "key_in_flight"


class IdempotencyStoreFull(StoreError):
    """Every slot of the idempotency store holds an unexpired key. Forgetting one early would
    let its retry be credited a second time, so a new key waits until the oldest expires."""

    code = SERVICE_UNAVAILABLE
    message = (
        "The idempotency store holds its maximum of unexpired Idempotency-Keys (each is kept 24 hours):"
        " nothing was applied; retry after Retry-After seconds"
    )
    reply = "keys_full"

    def __init__(self, retry_after_seconds: float = 1.0) -> None:
        seconds = math.ceil(retry_after_seconds) if math.isfinite(retry_after_seconds) else 1
        super().__init__(headers={"Retry-After": str(max(1, seconds))})

    @classmethod
    def from_reply(cls, values: list[Any]) -> StoreError:
        return cls(float(values[0]))


class GrantPoolTooLow(StoreError):
    code = INSUFFICIENT_BALANCE
    message = "Grant pool balance too low for this grant"
    reply = "pool_too_low"


class DeveloperBalanceTooLow(StoreError):
    code = INSUFFICIENT_BALANCE
    message = "Developer balance too low"
    reply = "developer_too_low"


class UserBalanceTooLow(StoreError):
    code = INSUFFICIENT_BALANCE
    message = "User balance too low"
    reply = "user_too_low"


class UserNotFound(StoreError):
    code = USER_NOT_FOUND
    message = "User not found"
    reply = "user_not_found"


class AmountOutOfRange(StoreError):
    code = BAD_REQUEST
    message = f"Amount or balance exceeds the exact range of a JSON number ({MAX_SAFE_MICRODOLLARS} micro-dollars)"
    reply = "amount_too_large"


class StoreUnavailable(StoreError):
    code = SERVICE_UNAVAILABLE
    message = "State store (Redis) unavailable: retry later with the same Idempotency-Key"
    reply = "store_unavailable"
    # Redis took the command and then did not answer in time: it may still run it (a stalled
    # Redis runs what it was sent when it resumes), so "nothing was applied" would be false.
    unknown_outcome_message = (
        "State store (Redis) stopped answering after taking the request: it may have been applied. "
        "Retry with the same Idempotency-Key (a grant that was applied is then replayed, not applied twice); "
        "without one, read the balance before retrying"
    )

    def __init__(self, outcome_unknown: bool = False) -> None:
        super().__init__(headers={"Retry-After": "1"})
        self.outcome_unknown = outcome_unknown
        if outcome_unknown:
            self.message = self.unknown_outcome_message
            self.args = (f"{self.code}: {self.message}",)


# The failures a Redis script can name by reply tag.
SCRIPT_ERRORS: tuple[type[StoreError], ...] = (
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
    IdempotencyStoreFull,
    GrantPoolTooLow,
    DeveloperBalanceTooLow,
    UserBalanceTooLow,
    UserNotFound,
    AmountOutOfRange,
)
_BY_REPLY: dict[str, type[StoreError]] = {error.reply: error for error in SCRIPT_ERRORS}


def store_error(reply: list[Any]) -> StoreError:
    """The error a Redis script's reply names: ``{tag, values...}``."""
    return _BY_REPLY[reply[0]].from_reply(reply[1:])


def is_store_error_reply(reply: object) -> bool:
    return isinstance(reply, str) and reply in _BY_REPLY
