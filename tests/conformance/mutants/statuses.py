"""Wrong answers to documented states: other statuses, other codes, bodies that are not the
JSON envelope, and server errors on inputs a deployment should refuse cleanly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask

from mockserver.domain.errors import USER_NOT_FOUND, QuotaError
from mockserver.web.presenters import developer_balance_body

from .kit import (
    GRANT,
    Exchange,
    chat_path,
    correct_app,
    every_nth,
    middleware,
    mutant,
    on_answer,
    on_request,
    service_of,
)

STATUS = "wrong status"
NON_JSON = "non-JSON error"
CRASH = "server error"


def _is(status: int, code: str | None = None) -> Any:
    return lambda ex: ex.status == status and (code is None or ex.error_code == code)


@mutant(STATUS, "chat.insufficient",
        "a chat the balance cannot cover answers 400 bad_request \"insufficient balance\"")
def chat_insufficient_answers_400() -> Flask:
    return on_answer(lambda ex: chat_path(ex) and ex.status == 402,
                     lambda ex: ex.set_json({"error": {"code": "bad_request", "message": "Insufficient balance"}}, 400))


@mutant(STATUS, "chat.insufficient",
        "402 with the code another vendor page uses, insufficient_credits (the seed says "
        "insufficient_balance)")
def chat_402_with_another_code() -> Flask:
    return on_answer(lambda ex: chat_path(ex) and ex.status == 402,
                     lambda ex: ex.set_json({"error": {"code": "insufficient_credits",
                                                       "message": "Not enough credits"}}))


@mutant(STATUS, "chat.insufficient",
        "an account whose balance drops under one cent is purged as empty: its next chat (and balance "
        "read) answers 404 user_not_found instead of 402")
def drained_user_purged() -> Flask:
    app = correct_app()
    store = service_of(app).store
    user_balance, apply_charge = store.user_balance, store.apply_charge

    def purged(user_id: str) -> bool:
        return 0 < (user_balance(user_id) or 0) < 10_000

    def read(user_id: str) -> int | None:
        return None if purged(user_id) else user_balance(user_id)

    def charge(user_id: Any, amount: int, *args: Any) -> Any:
        if user_id is not None and purged(user_id):
            raise QuotaError(USER_NOT_FOUND, "User not found")
        return apply_charge(user_id, amount, *args)

    store.user_balance = read  # type: ignore[method-assign]
    store.apply_charge = charge  # type: ignore[method-assign]
    return app


@mutant(STATUS, "grant.missing_fields",
        "missing fields answer 422 validation_error (a framework default) instead of 400 bad_request")
def missing_fields_answer_422() -> Flask:
    return on_answer(lambda ex: ex.path == GRANT and ex.status == 400,
                     lambda ex: ex.set_json({"error": {"code": "validation_error",
                                                       "message": "Missing required fields"}}, 422))


@mutant(STATUS, "grant.missing_fields",
        "validation errors in the framework's own shape, {\"detail\": [...]}, with status 400")
def validation_errors_framework_shape() -> Flask:
    return on_answer(lambda ex: ex.path == GRANT and ex.status == 400,
                     lambda ex: ex.set_json({"detail": [{"loc": ["body"], "msg": ex.json["error"]["message"],
                                                         "type": "value_error"}]}))


@mutant(CRASH, "grant.missing_fields",
        "a grant without \"amount\" raises KeyError: 500 internal_error")
def missing_amount_crashes() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and "external_user_id" in body and "amount" not in body:
            return ex.error(500, "internal_error", "KeyError: 'amount'")
        return False

    return on_request(before)


@mutant(CRASH, "grant.optional_fields",
        "description treated as required in the ledger insert: a grant without one answers 500")
def grant_without_description_crashes() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and "description" not in body and "amount" in body and "external_user_id" in body:
            return ex.error(500, "internal_error", "NOT NULL constraint failed: ledger.description")
        return False

    return on_request(before)


@mutant(CRASH, "errors.no_server_error",
        "the planted regression of issue 10: an integral float max_tokens (3.0) reaches a slice "
        "and answers 500")
def integral_float_max_tokens_crashes() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if chat_path(ex) else None
        if isinstance(body, dict) and isinstance(body.get("max_tokens"), Decimal):
            return ex.error(500, "internal_error", "slice indices must be integers")
        return False

    return on_request(before)


@mutant(CRASH, "errors.no_server_error",
        "\"description\": null reaches len(None): 500 instead of 400")
def null_description_crashes() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and "description" in body and body["description"] is None:
            return ex.error(500, "internal_error", "TypeError: object of type 'NoneType' has no len()")
        return False

    return on_request(before)


@mutant(CRASH, "errors.no_server_error",
        "a description that is not Latin-1 (\"Café ☕\", \"奖励\") fails the ledger writer's encoding: "
        "a text/html 500 page, not even the envelope")
def non_latin1_description_crashes() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        description = body.get("description") if isinstance(body, dict) else None
        if isinstance(description, str) and not _latin1(description):
            ex.status = 500
            ex.response = b"<html><title>500 Internal Server Error</title><h1>Internal Server Error</h1></html>"
            ex.response_headers["Content-Type"] = "text/html; charset=utf-8"
            return True
        return False

    return on_request(before)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@mutant(CRASH, "errors.no_server_error",
        "a request body that is not JSON raises JSONDecodeError: 500 instead of 400")
def non_json_body_crashes() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.method == "POST" and ex.body and ex.request_json is None:
            return ex.error(500, "internal_error", "JSONDecodeError")
        return False

    return on_request(before)


@mutant(STATUS, "user.not_found",
        "an unknown user's balance answers 500 (None + 0) instead of 404 user_not_found")
def unknown_user_crashes() -> Flask:
    return on_answer(_is(404, "user_not_found"),
                     lambda ex: ex.set_json({"error": {"code": "internal_error",
                                                       "message": "unsupported operand type(s)"}}, 500))


@mutant(STATUS, "user.not_found", "an unknown user answers 404 with the code not_found, not user_not_found")
def user_not_found_wrong_code() -> Flask:
    return on_answer(_is(404, "user_not_found"),
                     lambda ex: ex.set_json({"error": {"code": "not_found", "message": "User not found"}}))


@mutant(STATUS, "user.not_found",
        "/v1/balance?external_user_id= of an unknown user falls back to the developer balance")
def unknown_user_query_returns_developer() -> Flask:
    def after(ex: Exchange) -> None:
        if ex.path == "/v1/balance" and ex.status == 404:
            service = service_of(app)
            ex.set_json(developer_balance_body(service.seed.developer, service.developer_balance()), 200)

    app = correct_app()
    return middleware(app, after)


@mutant(STATUS, "auth.missing_key",
        "a missing Authorization header fails the framework's required-header validation first: "
        "422 validation_error")
def missing_key_answers_422() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.header("Authorization") is None and ex.path != "/v1/packages":
            return ex.error(422, "validation_error", "header 'authorization' is required")
        return False

    return on_request(before)


@mutant(STATUS, "auth.missing_key", "an invalid or missing key answers 403, not 401")
def forbidden_instead_of_401() -> Flask:
    def change(ex: Exchange) -> None:
        ex.status = 403

    return on_answer(_is(401), change)


@mutant(NON_JSON, "errors.envelope", "every error is plain text (\"Error: bad_request\"), not the JSON envelope")
def errors_as_plain_text() -> Flask:
    def change(ex: Exchange) -> None:
        ex.response = f"Error: {ex.error_code}".encode()
        ex.response_headers["Content-Type"] = "text/plain"

    return on_answer(lambda ex: ex.status >= 400 and ex.error_code is not None, change)


@mutant(NON_JSON, "errors.envelope",
        "error bodies are the JSON envelope but sent as text/html (res.send of a string)")
def error_json_sent_as_html() -> Flask:
    def change(ex: Exchange) -> None:
        ex.response_headers["Content-Type"] = "text/html; charset=utf-8"

    return on_answer(lambda ex: ex.status >= 400, change)


@mutant(NON_JSON, "auth.missing_key",
        "401 with an empty body and only a WWW-Authenticate header (the auth middleware's default)")
def unauthorized_empty_body() -> Flask:
    def change(ex: Exchange) -> None:
        ex.response = b""
        ex.response_headers.pop("Content-Type", None)
        ex.response_headers["WWW-Authenticate"] = "Bearer"

    return on_answer(_is(401), change)


@mutant(NON_JSON, "user.not_found",
        "an unknown user answers a flat {\"error\": \"user_not_found\"} instead of the envelope")
def user_not_found_flat_error() -> Flask:
    return on_answer(_is(404, "user_not_found"),
                     lambda ex: ex.set_json({"error": "user_not_found", "message": "User not found"}))


_HTML_404 = (b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
             b"<p>The requested URL was not found on the server.</p>\n")
_HTML_405 = (b"<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n"
             b"<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n")


def _html(ex: Exchange, page: bytes) -> None:
    ex.response = page
    ex.response_headers["Content-Type"] = "text/html; charset=utf-8"


@mutant(NON_JSON, "edges.unknown_route", "an unknown route answers the framework's HTML 404 page")
def unknown_route_html_404() -> Flask:
    return on_answer(_is(404, "not_found"), lambda ex: _html(ex, _HTML_404))


@mutant(NON_JSON, "edges.wrong_method", "a wrong method answers the framework's HTML 405 page")
def wrong_method_html_405() -> Flask:
    return on_answer(_is(405), lambda ex: _html(ex, _HTML_405))


@mutant(NON_JSON, "edges.wrong_method",
        "PUT, PATCH and DELETE are answered by the load balancer's HTML 405 page (GET on a POST "
        "route is still the JSON envelope)")
def unusual_methods_html_405() -> Flask:
    return on_answer(lambda ex: ex.status == 405 and ex.method in {"PUT", "PATCH", "DELETE"},
                     lambda ex: _html(ex, _HTML_405))


_HTML_415 = (b"<!doctype html>\n<html lang=en>\n<title>415 Unsupported Media Type</title>\n"
             b"<h1>Unsupported Media Type</h1>\n<p>The server does not support the media type transmitted in "
             b"the request.</p>\n")


@mutant(NON_JSON, "edges.non_json_body",
        "a body that is not application/json answers the framework's HTML 415 page")
def unsupported_media_type_html_415() -> Flask:
    return on_answer(_is(415), lambda ex: _html(ex, _HTML_415))


_HTML_413 = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
             b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


@mutant(NON_JSON, "edges.body_too_large",
        "the reverse proxy in front refuses large bodies with its own HTML 413 page "
        "(client_max_body_size), not the JSON envelope")
def proxy_html_413() -> Flask:
    return on_answer(_is(413), lambda ex: _html(ex, _HTML_413))


# A front proxy's rate limiter: every RATE_LIMIT_EVERY-th request is refused before the app.
RATE_LIMIT_EVERY = 10


def _front_rate_limit(body: bytes, content_type: str, retry_after: str) -> Flask:
    due = every_nth(RATE_LIMIT_EVERY)

    def before(ex: Exchange) -> bool:
        if not due():
            return False
        ex.status, ex.response = 429, body
        ex.response_headers["Content-Type"] = content_type
        ex.response_headers["Retry-After"] = retry_after
        return True

    return on_request(before)


@mutant(NON_JSON, "errors.envelope",
        "a front proxy's rate limiter answers every 10th request 429 with its own HTML page (nginx's), not "
        "the JSON envelope (the client retries after Retry-After, and then succeeds)")
def rate_limit_html_page() -> Flask:
    page = b"<html><head><title>429 Too Many Requests</title></head><body><h1>429 Too Many Requests</h1></body></html>"
    return _front_rate_limit(page, "text/html", "0")


@mutant(NON_JSON, "errors.envelope",
        "a rate limiter answers every 10th request 429 in text/plain (\"Too Many Requests\"), not the JSON envelope")
def rate_limit_plain_text() -> Flask:
    return _front_rate_limit(b"Too Many Requests", "text/plain", "0")

