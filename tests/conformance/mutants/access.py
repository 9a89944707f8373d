"""Authentication that lets the wrong callers in, public endpoints that are not, the packages
the docs list, and balance reads that answer for someone else."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask

from .kit import Exchange, correct_app, middleware, mutant, on_answer, on_request, service_of

AUTH = "auth"
FACTS = "documented facts"
ACCOUNT = "wrong account"


def _key_check(accepts: Any) -> Flask:
    """The deployment's key comparison is ``accepts(candidate, configured_key)``."""
    app = correct_app()
    service = service_of(app)

    def is_api_key(candidate: str) -> bool:
        return any(accepts(candidate, key) for key in service.seed.api_keys)

    service.is_api_key = is_api_key  # type: ignore[method-assign]
    return app


@mutant(AUTH, "auth.near_miss_key", "any bearer token is accepted (the key is only checked for presence)")
def any_token_accepted() -> Flask:
    return _key_check(lambda candidate, key: True)


@mutant(AUTH, "auth.near_miss_key",
        "keys compared on their first 20 characters (an indexed prefix lookup never re-checked): "
        "a key with its last character changed is accepted")
def key_compared_on_prefix() -> Flask:
    return _key_check(lambda candidate, key: len(candidate) >= 20 and candidate[:20] == key[:20])


@mutant(AUTH, "auth.near_miss_key",
        "the presented key only has to start with a configured key: extra characters are accepted")
def key_with_extra_characters_accepted() -> Flask:
    return _key_check(lambda candidate, key: candidate.startswith(key))


@mutant(AUTH, "auth.near_miss_key",
        "keys compared case-insensitively (stored lower-cased): SK-QUOTA-... or one letter's case "
        "changed is accepted")
def key_compared_case_insensitively() -> Flask:
    return _key_check(lambda candidate, key: hmac.compare_digest(candidate.lower().encode(), key.lower().encode()))


@mutant(AUTH, "auth.missing_key",
        "the Bearer scheme is optional: Authorization: <key>, or Token <key>, is accepted")
def bearer_scheme_optional() -> Flask:
    def before(ex: Exchange) -> bool:
        value = ex.header("Authorization")
        if value and " " in value.strip():
            scheme, token = value.strip().split(None, 1)
            if scheme.lower() != "bearer":
                ex.headers["Authorization"] = f"Bearer {token}"
        elif value and value.strip():
            ex.headers["Authorization"] = f"Bearer {value.strip()}"
        return False

    return on_request(before)


@mutant(AUTH, "auth.missing_key",
        "a development fallback left on: \"Authorization: Bearer\" with an empty token is served as "
        "the default key")
def empty_bearer_accepted() -> Flask:
    app = correct_app()
    key = service_of(app).seed.api_keys[0]

    def before(ex: Exchange) -> bool:
        value = ex.header("Authorization")
        if value is not None and value.strip().lower() == "bearer":
            ex.headers["Authorization"] = f"Bearer {key}"
        return False

    return middleware(app, None, before)


def _public(path_matches: Any) -> Flask:
    """Requests matching ``path_matches`` skip authentication (served with the first key)."""
    app = correct_app()
    key = service_of(app).seed.api_keys[0]

    def before(ex: Exchange) -> bool:
        if path_matches(ex) and not ex.header("Authorization"):
            ex.headers["Authorization"] = f"Bearer {key}"
        return False

    return middleware(app, None, before)


@mutant(AUTH, "auth.missing_key", "GET /v1/me answers without a key (routed as public by mistake)")
def me_without_key() -> Flask:
    return _public(lambda ex: ex.path == "/v1/me")


@mutant(AUTH, "auth.missing_key",
        "GET /v1/balance?external_user_id= skips authentication (only the developer branch checks "
        "the key)")
def balance_query_without_key() -> Flask:
    return _public(lambda ex: ex.path == "/v1/balance" and "external_user_id=" in ex.query)


@mutant(FACTS, "packages.listed", "GET /v1/packages demands an API key (the docs say it is public)")
def packages_demand_a_key() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.path == "/v1/packages" and not ex.header("Authorization"):
            return ex.error(401, "invalid_api_key", "Missing API key")
        return False

    return on_request(before)


def _packages(change: Any) -> Flask:
    def rewrite(ex: Exchange) -> None:
        body = ex.json
        change(body["packages"])
        ex.set_json(body)

    return on_answer(lambda ex: ex.path == "/v1/packages" and ex.status == 200, rewrite)


@mutant(FACTS, "packages.listed", "the Pro package is missing from GET /v1/packages (a stale product table)")
def packages_missing_a_tier() -> Flask:
    return _packages(lambda packages: packages.pop())


@mutant(FACTS, "packages.listed", "price_cents holds dollars: Starter costs 5 \"cents\"")
def package_prices_in_dollars() -> Flask:
    def change(packages: list[dict[str, Any]]) -> None:
        for package in packages:
            package["price_cents"] //= 100

    return _packages(change)


@mutant(FACTS, "packages.better_rate",
        "the Pro package gives $44.50 for $50, a worse rate than Plus ($22.50 for $25)")
def larger_package_worse_rate() -> Flask:
    def change(packages: list[dict[str, Any]]) -> None:
        pro = packages[-1]
        pro["balance_display"] = "$44.50"
        if "balance_microdollars" in pro:
            pro["balance_microdollars"] = 44_500_000

    return _packages(change)


@mutant(ACCOUNT, "grant.readback",
        "GET /v1/balance ignores external_user_id and always answers the developer balance")
def balance_query_ignores_user() -> Flask:
    def before(ex: Exchange) -> bool:
        if ex.path == "/v1/balance":
            ex.query = ""
        return False

    return on_request(before)


@mutant(AUTH, "auth.near_miss_key",
        "keys compared on their first 20 characters on every route but GET /v1/balance (the one route whose "
        "check was fixed): a key with its last character changed reads user balances and /v1/me, and grants")
def key_prefix_off_the_balance_route() -> Flask:
    app = correct_app()
    keys = service_of(app).seed.api_keys

    def before(ex: Exchange) -> bool:
        candidate = (ex.header("Authorization") or "").removeprefix("Bearer ")
        if ex.path != "/v1/balance":
            for key in keys:
                if candidate != key and len(candidate) >= 20 and candidate[:20] == key[:20]:
                    ex.drop_header("Authorization")
                    ex.headers["Authorization"] = f"Bearer {key}"
        return False

    return middleware(app, None, before)
