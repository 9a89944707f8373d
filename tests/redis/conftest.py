"""Fixtures for the Redis backend: private redis-servers, mock apps and ``quota-mock`` processes
on them. Each test gets a fresh namespace (key prefix) on the session's shared server; fault
tests get a server of their own that they may stop and restart."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from mockserver import create_app, mock_state

from ..e2e.conftest import LiveMock, start_quota_mock
from ..private_redis import PrivateRedis, shared_redis

AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}


@pytest.fixture
def redis_server() -> PrivateRedis:
    server = shared_redis()  # skips (fails in CI) when redis-server is not installed
    server.flush()
    return server


@pytest.fixture
def fault_redis() -> Iterator[PrivateRedis]:
    """A persistent Redis of this test's own: stopping it disturbs no other test."""
    server = PrivateRedis(persistent=True).start()
    yield server
    server.close()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def redis_app(redis_server: PrivateRedis, prefix: str) -> Iterator[Callable[..., Flask]]:
    """Builds mock apps on the shared Redis and this test's namespace; closes them afterwards."""
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        config = {"store": redis_server.url, "store_prefix": prefix, "validate_responses": True, **settings}
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        mock_state(app).close()
        assert app.extensions["quota_mock_response_violations"] == []


@pytest.fixture
def quota_mock_on() -> Iterator[Callable[..., LiveMock]]:
    """Starts ``quota-mock`` processes (``--quiet``) and stops each at the end of the test."""
    started: list[LiveMock] = []

    def start(*args: str) -> LiveMock:
        live = start_quota_mock("--quiet", *args)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
