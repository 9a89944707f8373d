"""The chat endpoint an account's billing mode may refuse.

The docs list 400 ``bad_request`` for a chat on the "wrong billing endpoint" (public-facts:
"POST /v1/chat/completions bills the developer; for user billing,
POST /v1/users/:external_user_id/chat/completions (or the X-External-User-ID header on the
plain path)"; "400 bad_request (invalid body or wrong billing endpoint)"), and GET /v1/balance
says which mode the account is in (``billing_mode``: ``developer`` or ``user``). So a correct
deployment may refuse, with 400 bad_request, a developer-billed chat on an account that bills
users, and a user-billed chat on one that bills the developer. The kit reads the account's mode
once and never holds that refusal against it; on an account whose mode it cannot read, or that
names neither mode (the newest generation's ``test``), it holds every refusal as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .facts import CHAT, USER_CHAT

DEVELOPER, USER = "developer", "user"
WRONG_ENDPOINT_STATUS, WRONG_ENDPOINT_CODE = 400, "bad_request"


def bills_user(operation_id: str, headers: dict[str, Any] | None, user_header: str) -> bool | None:
    """Whether a chat request bills a user (True), the developer (False); None: no chat."""
    if operation_id == USER_CHAT:
        return True
    if operation_id != CHAT:
        return None
    return any(name.lower() == user_header.lower() for name in headers or {})


def refused_as_wrong_endpoint(
    billing_mode: Callable[[], str | None], user_billed: bool | None, status: int, code: Any
) -> bool:
    """Whether an answer is the docs' refusal of a chat on the endpoint the account's mode does
    not use; ``billing_mode`` reads the mode (a request), only for a 400 bad_request to a chat."""
    if user_billed is None or status != WRONG_ENDPOINT_STATUS or code != WRONG_ENDPOINT_CODE:
        return False
    return billing_mode() == (DEVELOPER if user_billed else USER)


def wrong_endpoint_reason(billing_mode: str) -> str:
    """Why such a refusal is no failure, for a skipped rule or a report."""
    other = "user-billed" if billing_mode == DEVELOPER else "developer-billed"
    return (f"the account bills the {billing_mode} (GET /v1/balance: billing_mode {billing_mode!r}) and refused a "
            f"{other} chat with 400 bad_request, the docs' answer to a chat on the wrong billing endpoint")
