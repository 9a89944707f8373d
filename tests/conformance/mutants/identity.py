"""User ids that do not survive the trip: case folding, trimming, encodings, '/', length."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from flask import Flask

from .kit import USERS, Exchange, correct_app, middleware, mutant, service_of

ENCODING = "identity encoding"


def _normalised_ids(normalise: Callable[[str], str], *, reads: bool = True) -> Flask:
    """Granted user ids go through ``normalise``; with ``reads``, so do balance reads and charges."""
    app = correct_app()
    service = service_of(app)
    store = service.store
    grant, user_balance, apply_charge = service.grant, store.user_balance, store.apply_charge

    def on_grant(**kw: Any) -> Any:
        return grant(**{**kw, "user_id": normalise(kw["user_id"])})

    service.grant = on_grant  # type: ignore[method-assign]
    if not reads:
        return app

    def read(user_id: str) -> Any:
        return user_balance(normalise(user_id))

    def charges(user_id: Any, *args: Any) -> Any:
        return apply_charge(None if user_id is None else normalise(user_id), *args)

    store.user_balance = read  # type: ignore[method-assign]
    store.apply_charge = charges  # type: ignore[method-assign]
    return app


@mutant(ENCODING, "identity.case_sensitive",
        "external_user_id lower-cased everywhere (a case-insensitive collation): \"Alice\" and "
        "\"alice\" are one account")
def user_ids_lowercased() -> Flask:
    return _normalised_ids(str.lower)


@mutant(ENCODING, "identity.roundtrip",
        "grants store external_user_id as sent, but the balance path lower-cases it: a user with "
        "a capital letter is 404 on /v1/users/{id}/balance")
def path_ids_lowercased() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()
        if user is not None and ex.path.endswith("/balance"):
            ex.path = f"{USERS}{user.lower()}/balance"
        return False

    return middleware(correct_app(), None, before)


@mutant(ENCODING, "identity.roundtrip",
        "external_user_id trimmed of surrounding spaces on grants only (form clean-up): \" bob \" "
        "is granted as \"bob\" and the balance of \" bob \" is 404")
def grant_ids_trimmed() -> Flask:
    return _normalised_ids(str.strip, reads=False)


@mutant(ENCODING, "identity.roundtrip",
        "spaces in external_user_id replaced by '_' when a user is granted (a slug): "
        "\"ann lee\" answers as \"ann_lee\" and cannot be read back")
def grant_ids_slugified() -> Flask:
    return _normalised_ids(lambda user: user.replace(" ", "_"), reads=False)


@mutant(ENCODING, "identity.roundtrip",
        "the path parameter is URL-decoded a second time: an id containing \"%41\" or \"%2F\" "
        "reads another user's balance (or 404)")
def path_ids_decoded_twice() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()
        if user is not None and "%" in user:
            ex.path = ex.path.replace(user, unquote(user), 1)
        return False

    return middleware(correct_app(), None, before)


@mutant(ENCODING, "identity.roundtrip",
        "a router that splits on decoded '/': a user id containing '/' (sent as %2F) answers "
        "404 not_found on every /v1/users/{id}/... path")
def slash_in_id_unroutable() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()
        if user is not None and "/" in user:
            return ex.error(404, "not_found", f"No route for {ex.method} {ex.path}")
        return False

    return middleware(correct_app(), None, before)


@mutant(ENCODING, "identity.roundtrip",
        "path parameters decoded as Latin-1 instead of UTF-8 (the WSGI default left as is): "
        "\"zoë\" in the path becomes \"zoÃ«\", 404 for non-ASCII users")
def path_ids_latin1_mojibake() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()
        if user is not None and not user.isascii():
            ex.path = ex.path.replace(user, user.encode("utf-8").decode("latin-1"), 1)
        return False

    return middleware(correct_app(), None, before)


@mutant(ENCODING, "identity.roundtrip",
        "grant bodies' external_user_id folded to ASCII (NFKD, accents dropped): \"zoë\" is "
        "granted as \"zoe\"; the answer echoes \"zoe\"")
def grant_ids_ascii_folded() -> Flask:
    def fold(user: str) -> str:
        return unicodedata.normalize("NFKD", user).encode("ascii", "ignore").decode("ascii") or user

    return _normalised_ids(fold, reads=False)


@mutant(ENCODING, "identity.roundtrip",
        "external_user_id stored in a VARCHAR(64): longer ids (the contract allows 255) are "
        "truncated, so two long ids sharing 64 characters are one user and read-back answers "
        "another id")
def long_ids_truncated() -> Flask:
    def change(ex: Exchange) -> None:
        body = ex.json
        if isinstance(body, dict) and isinstance(body.get("external_user_id"), str):
            body["external_user_id"] = body["external_user_id"][:64]
            ex.set_json(body)

    app = middleware(_normalised_ids(lambda user: user[:64]), change)
    return app


@mutant(ENCODING, "chat.header_form",
        "the X-External-User-ID header value is lower-cased by a header-normalising proxy: a "
        "user with a capital letter is billed as another (unknown) user")
def header_user_id_lowercased() -> Flask:
    def before(ex: Exchange) -> bool:
        for name in list(ex.headers):
            if name.lower() == "x-external-user-id":
                ex.headers[name] = ex.headers[name].lower()
        return False

    return middleware(correct_app(), None, before)


@mutant(ENCODING, "identity.roundtrip",
        "the path is decoded as a form (unquote_plus): '+' becomes a space, so \"ann+tag@x.io\" "
        "is granted but its balance path reads \"ann tag@x.io\", 404")
def path_plus_decoded_as_space() -> Flask:
    def before(ex: Exchange) -> bool:
        user = ex.user_in_path()
        if user is not None and "+" in user:
            ex.path = ex.path.replace(user, user.replace("+", " "), 1)
        return False

    return middleware(correct_app(), None, before)


@mutant(ENCODING, "identity.roundtrip",
        "external_user_id kept in a numeric column when it looks like a number: \"007\" is stored "
        "and answered as \"7\"")
def numeric_ids_coerced() -> Flask:
    def coerce(user: str) -> str:
        return str(int(user)) if user.isascii() and user.isdigit() else user

    return _normalised_ids(coerce)
