"""Schemathesis against a live mock over a real socket, on both stores: every built-in check,
the examples, coverage and fuzzing phases, and the stateful phase that follows the contract's
links.

Bounded (a few dozen examples an operation) in the default test run; ``pytest -m slow`` runs
the long fuzz (1,000 positive and negative cases an operation). The mock checks its own
responses with openapi-core at the same time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from mockserver import create_app, mock_state
from mockserver.contract import contract_path
from mockserver.server import MockServer

from ..private_redis import shared_redis

DEMO_KEY = "sk-quota-your-api-key"
# Valid requests may still meet the contract's documented refusals: a broke user (402), an
# unknown user (404), a generated Idempotency-Key that an earlier example used (409, 422).
POSITIVE_OUTCOMES = ["2xx", "401", "402", "404", "409", "422", "429", "5xx"]
# Invalid requests are refused with a 4xx; a huge one with 413 before it is even parsed.
NEGATIVE_OUTCOMES = ["400", "401", "404", "405", "409", "413", "422", "429"]


@pytest.fixture(scope="module", params=["memory", "redis"])
def fuzzed_mock(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    settings = {"validate_responses": True, "pool": "1000000000"}
    if request.param == "redis":
        server = shared_redis()
        server.flush()
        settings.update(store=server.url, store_prefix="fuzz:")
    app = create_app(settings)
    with MockServer(app) as server:
        yield server
    assert app.extensions["quota_mock_response_violations"] == []
    close = getattr(mock_state(app).service.store, "close", None)
    if close:
        close()


def load_schema(base_url: str) -> schemathesis.schemas.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "seed": 20261126,
            # The key goes through the contract's own security scheme, so that Schemathesis knows
            # it is valid and can probe what happens without it (ignored_auth).
            "auth": {"openapi": {"bearerAuth": {"bearer": DEMO_KEY}}},
            "generation": {"max-examples": 30, "database": "none"},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_OUTCOMES},
                "negative_data_rejection": {"expected-statuses": NEGATIVE_OUTCOMES},
            },
            "phases": {"stateful": {"max-steps": 8}},
        }
    )
    return schemathesis.openapi.from_path(str(contract_path()), config=config)


@pytest.fixture(scope="module")
def api_schema(fuzzed_mock: MockServer) -> schemathesis.schemas.BaseSchema:
    return load_schema(fuzzed_mock.base_url)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_passes_every_check(case):
    case.call_and_validate()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
def test_long_fuzz_of_every_operation_passes_every_check(case):
    case.call_and_validate()


def test_stateful_links_pass_every_check(api_schema):
    api_schema.as_state_machine().run(
        settings=settings(
            max_examples=25,
            stateful_step_count=8,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
