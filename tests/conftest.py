"""Shared fixtures: a mock app that checks its own responses against openapi.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

from mockserver import create_app, mock_state
from mockserver.web.state import MockState

# Hypothesis' default 200 ms deadline per example is a timing gate: on a shared, loaded CI
# machine a correct example can take longer and fail the test. Tests that bound time say so
# themselves, with room for such a machine (tests/unit/test_completions.py).
settings.register_profile("quota", deadline=None)
settings.load_profile("quota")

DEMO_KEY = "sk-quota-your-api-key"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app({"validate_responses": True})
    yield app
    # Every response the mock sent in the test must have matched the contract.
    assert app.extensions["quota_mock_response_violations"] == []


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def state(app: Flask) -> MockState:
    return mock_state(app)


def grant(client: FlaskClient, user: str = "user_123", amount: object = 0.5, key: str | None = None, **extra: object):
    headers = dict(AUTH)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/v1/funding/grant", json={"external_user_id": user, "amount": amount, **extra}, headers=headers)


# -- the mutant sweep beside the rest of the session (tests/conformance/background_sweep.py) --

_SWEEP_FIXTURE = "fast_sweep"


def _uses_sweep(item: pytest.Item) -> bool:
    return _SWEEP_FIXTURE in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The sweep's tests last: by then its verdicts, computed meanwhile, are ready.
    items[:] = [i for i in items if not _uses_sweep(i)] + [i for i in items if _uses_sweep(i)]


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(_uses_sweep(item) for item in session.items):
        from tests.conformance import background_sweep

        background_sweep.start(session.config)
