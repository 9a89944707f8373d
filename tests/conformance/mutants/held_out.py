"""Bugs an adversary wrote against the suite after the rest of the corpus, kept out of sight
of the rules while it did: each was missed then, and is here now that a rule catches it
(look-alike user ids, chats for users never granted, reads and grants after a chat, a chat
whose path and header name different users, replays that claim money, keys compared loosely).
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from flask import Flask

from .kit import (
    GRANT,
    KEY,
    KEY2,
    USERS,
    Exchange,
    add_to_balance,
    cents_text,
    chat_path,
    correct_app,
    grant_ok,
    middleware,
    mutant,
    service_of,
    store_patch,
    write_balance,
)

IDENTITY = "identity encoding"
ACCOUNT = "wrong account"
STALE = "stale read"
FLOAT = "float money"
AUTH = "auth"
REPLAY = "replay"
USER_HEADER = "X-External-User-ID"


def _collated_ids(canon: Callable[[str], str]) -> Flask:
    """User ids stored under ``canon(id)`` (a database collation): the first spelling seen owns
    the account, and every id with the same canonical form is that account."""
    owners: dict[str, str] = {}
    lock = threading.Lock()

    def owner(user: str) -> str:
        with lock:
            return owners.setdefault(canon(user), user)

    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and isinstance(body.get("external_user_id"), str):
            body["external_user_id"] = owner(body["external_user_id"])
            ex.set_request_json(body)
        in_path = ex.user_in_path()
        if in_path is not None:
            ex.path = USERS + owner(in_path) + ex.path[len(USERS) + len(in_path):]
        if ex.path == "/v1/balance" and ex.query:
            pairs = [(k, owner(v) if k == "external_user_id" else v) for k, v in parse_qsl(ex.query, True)]
            ex.query = urlencode(pairs, quote_via=quote)
        header = ex.header(USER_HEADER)
        if header is not None:
            ex.drop_header(USER_HEADER)
            ex.headers[USER_HEADER] = owner(header)
        return False

    return middleware(correct_app(), None, before)


@mutant(IDENTITY, "identity.case_sensitive",
        "user ids in a PAD SPACE collation (MySQL VARCHAR): \"bob\" and \"bob \" are one account")
def user_ids_pad_space() -> Flask:
    return _collated_ids(lambda user: user.rstrip(" "))


@mutant(IDENTITY, "identity.case_sensitive",
        "user ids in an accent-insensitive (case-sensitive) collation: \"zoë\" and \"zoe\" are one account")
def user_ids_accent_insensitive() -> Flask:
    return _collated_ids(lambda user: "".join(
        c for c in unicodedata.normalize("NFKD", user) if not unicodedata.combining(c)))


@mutant(IDENTITY, "identity.case_sensitive",
        "case folded for non-ASCII letters only (ASCII compared as bytes): \"Ölaf\" and \"ölaf\" are one "
        "account, \"Alice\" and \"alice\" are not")
def user_ids_casefold_non_ascii() -> Flask:
    return _collated_ids(lambda user: "".join(c.lower() if ord(c) > 127 else c for c in user))


@mutant(IDENTITY, "identity.roundtrip",
        "an input sanitiser NFC-normalises the grant body's user id, not the path's or the query's: "
        "an id with a decomposed letter is granted under another spelling and cannot be read back")
def grant_ids_nfc_normalised() -> Flask:
    def before(ex: Exchange) -> bool:
        body = ex.request_json if ex.method == "POST" and ex.path == GRANT else None
        if isinstance(body, dict) and isinstance(body.get("external_user_id"), str):
            body["external_user_id"] = unicodedata.normalize("NFC", body["external_user_id"])
            ex.set_request_json(body)
        return False

    return middleware(correct_app(), None, before)


@mutant(STALE, "chat.user_debit",
        "GET /v1/balance?external_user_id= is served from a sum-of-grants table: it never shows "
        "what chats spent (the path form is right)")
def query_balance_ignores_chats() -> Flask:
    granted: dict[str, int] = {}

    def after(ex: Exchange) -> None:
        if grant_ok(ex) and ex.json.get("duplicate") is False:
            user = ex.json["external_user_id"]
            granted[user] = granted.get(user, 0) + int(Decimal(str(ex.request_json["amount"])) * 1_000_000)
        elif ex.path == "/v1/balance" and "external_user_id=" in ex.query and ex.status == 200:
            body = ex.json
            if body.get("external_user_id") in granted:
                micros = granted[body["external_user_id"]]
                body["balance"] = cents_text(micros)
                if "balance_microdollars" in body:
                    body["balance_microdollars"] = micros
                ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(ACCOUNT, "chat.insufficient",
        "a user chat refused with 402 still costs the developer its price (the upstream call is "
        "made before the balance check and booked to the developer's wallet)")
def refused_chat_bills_developer() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_charge(user_id: Any, amount: int, *args: Any) -> Any:
            try:
                return original(user_id, amount, *args)
            except Exception as refused:
                if user_id is not None and type(refused).__name__ == "UserBalanceTooLow":
                    add_to_balance(service, None, -amount)
                raise

        return apply_charge

    return store_patch("apply_charge", wrap)


@mutant(ACCOUNT, "chat.user_debit",
        "on POST /v1/users/{A}/chat/completions an X-External-User-ID: B header wins (the handler "
        "shared with the plain path reads the header first): B is billed")
def header_overrides_path_user() -> Flask:
    def before(ex: Exchange) -> bool:
        if chat_path(ex) and ex.user_in_path() is not None and ex.header(USER_HEADER):
            ex.path = "/v1/chat/completions"
        return False

    return middleware(correct_app(), None, before)


@mutant(ACCOUNT, "chat.unfunded_user",
        "X-External-User-ID naming a user never granted falls back to developer billing (the "
        "lookup returns None, and None means the developer) instead of 404")
def unknown_header_user_bills_developer() -> Flask:
    app = correct_app()
    store = service_of(app).store

    def before(ex: Exchange) -> bool:
        user = ex.header(USER_HEADER) if ex.method == "POST" and ex.path == "/v1/chat/completions" else None
        if user is not None and store.user_balance(user) is None:
            ex.drop_header(USER_HEADER)
        return False

    return middleware(app, None, before)


@mutant(ACCOUNT, "chat.unfunded_user",
        "POST /v1/users/{never granted}/chat/completions is served and billed to the developer (a "
        "create-on-first-chat path that falls back to the developer's wallet)")
def unknown_path_user_bills_developer() -> Flask:
    app = correct_app()
    store = service_of(app).store

    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()
        if chat_path(ex) and user is not None and store.user_balance(user) is None:
            ex.path = "/v1/chat/completions"
            ex.drop_header(USER_HEADER)
        return False

    return middleware(app, None, before)


@mutant(FLOAT, "chat.user_debit",
        "a grant rewrites the user's balance from a cents column: the part under a cent that chats "
        "left is lost on every grant (the answers still add up)")
def grant_drops_sub_cent_remainder() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def apply_grant(user_id: str, amount: int, *args: Any) -> Any:
            current = service.store.user_balance(user_id)
            if current is not None and current % 10_000:
                write_balance(service, user_id, current - current % 10_000)
            return original(user_id, amount, *args)

        return apply_grant

    return store_patch("apply_grant", wrap)


@mutant(AUTH, "auth.near_miss_key",
        "keys compared after removing dashes and whitespace (a \"normalise pasted keys\" helper): the "
        "key without its dashes is accepted")
def api_key_dashes_ignored() -> Flask:
    def before(ex: Exchange) -> bool:
        value = ex.header("Authorization") or ""
        token = value.removeprefix("Bearer ")
        for real in (KEY, KEY2):
            if token != real and "".join(c for c in token if c not in " \t-") == real.replace("-", ""):
                ex.drop_header("Authorization")
                ex.headers["Authorization"] = f"Bearer {real}"
        return False

    return middleware(correct_app(), None, before)


@mutant(REPLAY, "idem.replay",
        "a replay's balance fields are computed again from the user's current balance plus the "
        "amount, while nothing is credited: the answer claims money the user never held")
def replay_claims_current_plus_amount() -> Flask:
    app = correct_app()
    store = service_of(app).store

    def after(ex: Exchange) -> None:
        if grant_ok(ex) and ex.json.get("duplicate") is True:
            body = ex.json
            now = store.user_balance(body["external_user_id"]) or 0
            amount = int(Decimal(str(ex.request_json["amount"])) * 1_000_000)
            body["balance_before"], body["balance_after"] = cents_text(now), cents_text(now + amount)
            ex.set_json(body)

    return middleware(app, after)
