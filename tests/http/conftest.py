"""Fixtures of the HTTP tests: mock apps on either state store, and a snapshot of all a
request could change (to prove that a refused one changed nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from mockserver import create_app, mock_state

from ..private_redis import shared_redis


@pytest.fixture(params=["memory", "redis"])
def any_store(request: pytest.FixtureRequest) -> Iterator[Callable[..., Flask]]:
    """Builds mock apps (checking their own responses) on this test's store: memory, or the
    session's Redis under a namespace of this test's own."""
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        config: dict[str, Any] = {"validate_responses": True, **settings}
        if request.param == "redis":
            config.update(store=shared_redis().url, store_prefix=f"http-{uuid.uuid4().hex[:8]}:")
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        close = getattr(mock_state(app).service.store, "close", None)
        if close is not None:
            close()
        assert app.extensions["quota_mock_response_violations"] == []


def snapshot(app: Flask) -> tuple[Any, ...]:
    """Everything a request could change: money, ledger, idempotency keys, clock, fault rules,
    and the seed (API keys, prices)."""
    state = mock_state(app)
    service = state.service
    store = service.store
    ledger = tuple((e.id, e.kind, e.amount, e.user_id, e.balance_after, e.description) for e in store.ledger())
    keys = tuple((k.scope, k.key, k.state, k.ledger_id) for k in store.idempotency_keys(state.clock.now()))
    faults = tuple((r.id, r.operation_id, r.action, r.remaining) for r in state.faults.rules(state.clock.now()))
    return (
        service.developer_balance(),
        tuple(sorted(store.users().items())),
        ledger,
        keys,
        round(state.clock.offset),
        faults,
        service.seed,
    )
