"""Idempotency gone wrong: replays, reused keys, key scope and retention."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import OrderedDict
from typing import Any

from flask import Flask

from mockserver.domain.errors import IDEMPOTENCY_KEY_REUSED, QuotaError

from .kit import GRANT, Exchange, Rendezvous, add_to_balance, correct_app, middleware, mutant, service_of

REPLAY = "replay"
SCOPE = "ttl and scoping"


def _wrapped_grant(wrap: Any) -> Flask:
    app = correct_app()
    service = service_of(app)
    service.grant = wrap(service, service.grant)  # type: ignore[method-assign]
    return app


@mutant(REPLAY, "idem.replay",
        "a replay answers duplicate: true but credits the user again (the key is checked after "
        "the credit)")
def replay_credits_again() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def grant(**kw: Any) -> Any:
            result = original(**kw)
            if result.duplicate:
                service.store.apply_grant(kw["user_id"], kw["amount"], kw["description"], service.clock.now(), None)
            return result
        return grant

    return _wrapped_grant(wrap)


def _on_replay(change: Any) -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.path == GRANT and ex.status == 200 and body.get("duplicate") is True:
            change(body)
            ex.set_json(body)

    return middleware(correct_app(), after)


@mutant(REPLAY, "idem.replay", "a replay answers duplicate: false (the stored response is sent as it was)")
def replay_lacks_duplicate_flag() -> Flask:
    return _on_replay(lambda body: body.update(duplicate=False))


@mutant(REPLAY, "idem.replay", "a replay answers a fresh ledger_id instead of the original grant's")
def replay_gets_new_ledger_id() -> Flask:
    return _on_replay(lambda body: body.update(ledger_id=f"ledg_{uuid.uuid4().hex[:20]}"))


@mutant(REPLAY, "idem.concurrent_same",
        "check-then-act without a lock: sequential replays work, but concurrent requests with one "
        "key all credit")
def concurrent_same_key_both_credit() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.grant
    race = Rendezvous(app)
    seen: dict[tuple[str, str], Any] = {}

    def grant(**kw: Any) -> Any:
        key = (kw["scope"], kw["idempotency_key"])
        if not kw["idempotency_key"]:
            return original(**kw)
        if key in seen:
            return dataclasses.replace(seen[key], duplicate=True)
        race.meet()  # the window between the lookup and the insert
        result = original(**{**kw, "idempotency_key": None})
        seen[key] = result
        return result

    service.grant = grant  # type: ignore[method-assign]
    return app


@mutant(REPLAY, "idem.new_key_new_grant",
        "deduplicates on the body, not the key: the same body under a new Idempotency-Key is "
        "answered as a replay and credits nothing")
def new_key_same_body_replayed() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def grant(**kw: Any) -> Any:
            if kw["idempotency_key"]:
                kw["idempotency_key"] = kw["fingerprint"].hex()
            return original(**kw)
        return grant

    return _wrapped_grant(wrap)


@mutant(REPLAY, "idem.new_key_new_grant",
        "grants without an Idempotency-Key are deduplicated by body for 60 s (\"accidental double "
        "click\" protection): a second identical keyless grant credits nothing")
def keyless_grants_deduplicated() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def grant(**kw: Any) -> Any:
            if kw["idempotency_key"] is None:
                kw["idempotency_key"] = "body:" + kw["fingerprint"].hex()
            return original(**kw)
        return grant

    return _wrapped_grant(wrap)


@mutant(REPLAY, "idem.reuse_changed",
        "the same key with a changed amount credits the new amount, then answers the stored "
        "response (duplicate: true): money moved under a replay")
def reused_key_credits_new_amount() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        first: dict[tuple[str, str], tuple[bytes, Any]] = {}

        def grant(**kw: Any) -> Any:
            key = (kw["scope"], kw["idempotency_key"])
            if kw["idempotency_key"] and key in first and first[key][0] != kw["fingerprint"]:
                service.store.apply_grant(kw["user_id"], kw["amount"], kw["description"], service.clock.now(), None)
                return dataclasses.replace(first[key][1], duplicate=True)
            result = original(**kw)
            if kw["idempotency_key"] and key not in first:
                first[key] = (kw["fingerprint"], result)
            return result
        return grant

    return _wrapped_grant(wrap)


@mutant(REPLAY, "idem.reuse_changed",
        "the pool is debited before the key is checked: a reused key with another body is refused "
        "(422) but the developer balance drops anyway")
def reused_key_debits_pool() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        def grant(**kw: Any) -> Any:
            try:
                return original(**kw)
            except QuotaError as error:
                if error.code == IDEMPOTENCY_KEY_REUSED:
                    add_to_balance(service, None, -kw["amount"])
                raise
        return grant

    return _wrapped_grant(wrap)


@mutant(SCOPE, "idem.reuse_changed",
        "idempotency keys scoped per user (the key table's primary key is (user, key)): a retry "
        "whose body names another user is credited as a new grant under the same key")
def keys_scoped_per_user() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        return lambda **kw: original(**{**kw, "scope": f"{kw['scope']}/{kw['user_id']}"})

    return _wrapped_grant(wrap)


@mutant(REPLAY, "idem.replay",
        "a replay (same key, same body) is refused with 409 \"duplicate request\" instead of "
        "answering the original with duplicate: true")
def replay_answers_409() -> Flask:
    def after(ex: Exchange) -> None:
        body = ex.json
        if ex.path == GRANT and ex.status == 200 and body.get("duplicate") is True:
            ex.set_json({"error": {"code": "duplicate_request", "message": "Duplicate request"}}, 409)
            ex.response_headers.pop("Idempotent-Replayed", None)

    return middleware(correct_app(), after)


@mutant(SCOPE, "idem.scope_per_key",
        "idempotency keys are global, not per API key: another API key's grant with a used key "
        "is answered with the first key's replay")
def keys_global_across_api_keys() -> Flask:
    def wrap(service: Any, original: Any) -> Any:
        return lambda **kw: original(**{**kw, "scope": "global"})

    return _wrapped_grant(wrap)


@mutant(SCOPE, "idem.scope_per_key",
        "keys scoped by the API key's first 16 characters (its display prefix): two keys of one "
        "developer, sk-quota-xxxxxxx..., share one scope")
def keys_scoped_by_key_prefix() -> Flask:
    app = correct_app()
    service = service_of(app)
    original = service.grant
    authorization: dict[str, str] = {}

    def before(ex: Exchange) -> bool:
        authorization["current"] = ex.header("Authorization") or ""
        return False

    def grant(**kw: Any) -> Any:
        token = authorization.get("current", "").removeprefix("Bearer ").strip()
        scope = hashlib.sha256(token[:16].encode()).hexdigest()[:24]
        return original(**{**kw, "scope": scope})

    service.grant = grant  # type: ignore[method-assign]
    return middleware(app, None, before)


def _forgetting(forget: Any) -> Flask:
    """Keys pass through ``forget(scope, key, now)`` first: True makes the deployment treat the
    key as never seen (the grant goes through as new)."""
    app = correct_app()
    service = service_of(app)
    original = service.grant
    generation: dict[tuple[str, str], int] = {}

    def grant(**kw: Any) -> Any:
        key = kw["idempotency_key"]
        if key is None:
            return original(**kw)
        pair = (kw["scope"], key)
        if forget(kw["scope"], key, service.clock.now()):
            generation[pair] = generation.get(pair, 0) + 1
        if generation.get(pair):
            kw["idempotency_key"] = f"{key}#forgotten-{generation[pair]}"
        return original(**kw)

    service.grant = grant  # type: ignore[method-assign]
    return app


@mutant(SCOPE, "idem.retention",
        "idempotency keys kept for 60 s (a cache's default TTL) instead of 24 hours: a retry a "
        "minute later credits again", retention=True)
def keys_expire_after_a_minute() -> Flask:
    first_use: dict[tuple[str, str], float] = {}

    def forget(scope: str, key: str, now: float) -> bool:
        started = first_use.setdefault((scope, key), now)
        if now - started > 60:
            first_use[(scope, key)] = now
            return True
        return False

    return _forgetting(forget)


@mutant(SCOPE, "idem.retention",
        "idempotency keys kept in an LRU of 16 entries: a key is forgotten once 16 newer keys "
        "were used, whatever its age", retention=True)
def keys_evicted_after_16() -> Flask:
    recent: OrderedDict[tuple[str, str], None] = OrderedDict()
    evicted: set[tuple[str, str]] = set()

    def forget(scope: str, key: str, now: float) -> bool:
        pair = (scope, key)
        dropped = pair in evicted
        evicted.discard(pair)
        recent[pair] = None
        recent.move_to_end(pair)
        while len(recent) > 16:
            evicted.add(recent.popitem(last=False)[0])
        return dropped

    return _forgetting(forget)
