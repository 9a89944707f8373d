"""Lost updates (read-modify-write without a lock) and stale reads (caches, lagging replicas)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import Flask

from .kit import Exchange, Rendezvous, correct_app, middleware, mutant, service_of, unlocked_grants, write_balance

LOST = "lost update"
STALE = "stale read"


@mutant(LOST, "idem.concurrent_distinct",
        "user balance updated by read-modify-write without a lock: two grants with different "
        "keys in flight at once both read the old balance, and one credit is lost")
def concurrent_grants_lose_update() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant
    race = Rendezvous(app)
    unlocked_grants(service)

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        before = store.user_balance(user_id) or 0
        race.meet()
        result = original(user_id, amount, description, now, completes)
        write_balance(service, user_id, before + amount)
        return dataclasses.replace(result, balance_before=before, balance_after=before + amount)

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    return app


@mutant(LOST, "idem.concurrent_distinct",
        "a new user is created by an upsert that writes the amount: concurrent first grants to one "
        "user (different keys) leave only the last one; later grants add correctly")
def concurrent_first_grants_overwrite() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant
    race = Rendezvous(app)
    unlocked_grants(service)

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        if store.user_balance(user_id) is not None:
            return original(user_id, amount, description, now, completes)
        race.meet()
        result = original(user_id, amount, description, now, completes)
        write_balance(service, user_id, amount)
        return dataclasses.replace(result, balance_before=0, balance_after=amount)

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    return app


@mutant(LOST, "grant.pool_debit",
        "the grant pool is debited by read-modify-write: concurrent grants (different keys) "
        "debit it once between them, so users receive more than the pool lost")
def concurrent_pool_debit_lost() -> Flask:
    app = correct_app()
    service = service_of(app)
    store = service.store
    original = store.apply_grant
    race = Rendezvous(app)
    unlocked_grants(service)

    def apply_grant(user_id: str, amount: int, description: Any, now: float, completes: Any) -> Any:
        pool = store.pool_balance()
        race.meet()
        result = original(user_id, amount, description, now, completes)
        write_balance(service, None, pool - amount)
        return result

    store.apply_grant = apply_grant  # type: ignore[method-assign]
    return app


@mutant(STALE, "grant.readback",
        "balance reads lag one write behind (a replica): they miss the user's latest grant")
def stale_balance_reads() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.user_balance

    def user_balance(user_id: str) -> int:
        grants = [e for e in service.store.ledger() if e.user_id == user_id and e.kind == "grant"]
        return original(user_id) - (grants[-1].amount if grants else 0)

    service.user_balance = user_balance  # type: ignore[method-assign]
    return app


def _cached(path_matches: Any, seconds: float = 30.0) -> Flask:
    """Successful GETs matching ``path_matches`` are served from a cache for ``seconds``."""
    cache: dict[tuple[str, str, str], tuple[float, Exchange]] = {}

    def key(ex: Exchange) -> tuple[str, str, str]:
        return (ex.path, ex.query, ex.header("Authorization") or "")

    def before(ex: Exchange) -> bool:
        hit = cache.get(key(ex)) if ex.method == "GET" and path_matches(ex) else None
        if hit is None or time.monotonic() - hit[0] > seconds:
            return False
        ex.status, ex.response_headers, ex.response = hit[1].status, dict(hit[1].response_headers), hit[1].response
        return True

    def after(ex: Exchange) -> None:
        if ex.method == "GET" and ex.status == 200 and path_matches(ex):
            cache[key(ex)] = (time.monotonic(), dataclasses.replace(ex))

    return middleware(correct_app(), after, before)


@mutant(STALE, "grant.pool_debit",
        "GET /v1/balance (the developer balance) is cached for 30 s: read around a grant, the "
        "pool never seems to move")
def developer_balance_cached() -> Flask:
    return _cached(lambda ex: ex.path == "/v1/balance" and "external_user_id" not in ex.query)


@mutant(STALE, "grant.readback",
        "GET /v1/balance?external_user_id= is cached per user for 30 s; the path form is fresh")
def balance_query_cached() -> Flask:
    return _cached(lambda ex: ex.path == "/v1/balance" and "external_user_id" in ex.query)


@mutant(STALE, "grant.readback",
        "GET /v1/users/{id}/balance is cached for 30 s: the first read after a grant is right, "
        "a read after the next grant or chat is not")
def user_balance_cached() -> Flask:
    return _cached(lambda ex: ex.path.startswith("/v1/users/") and ex.path.endswith("/balance"))


@mutant(STALE, "chat.user_debit",
        "the chat's quota block is built from the balance read before the charge: "
        "quota.balance_after equals balance_before")
def chat_quota_balance_stale() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.status == 200 and isinstance(body, dict) and isinstance(body.get("quota"), dict):
            body["quota"]["balance_after"] = body["quota"]["balance_before"]
            ex.set_json(body)

    return middleware(correct_app(), after)
