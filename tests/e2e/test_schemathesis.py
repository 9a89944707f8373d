"""Schemathesis against a live mock over a real socket: every built-in check, the examples,
coverage and fuzzing phases, and the stateful phase that follows the contract's links.

Bounded (a few dozen examples an operation) so that the default test run stays fast; the
mock checks its own responses with openapi-core at the same time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from mockserver import create_app
from mockserver.contract import contract_path
from mockserver.server import MockServer

DEMO_KEY = "sk-quota-your-api-key"
# Valid requests may still meet the contract's documented refusals: a broke user (402), an
# unknown user (404), a generated Idempotency-Key that an earlier example used (409, 422).
POSITIVE_OUTCOMES = ["2xx", "401", "402", "404", "409", "422", "429", "5xx"]
# Invalid requests are refused with a 4xx; a huge one with 413 before it is even parsed.
NEGATIVE_OUTCOMES = ["400", "401", "404", "405", "409", "413", "422", "429"]


@pytest.fixture(scope="module")
def fuzzed_mock() -> Iterator[MockServer]:
    app = create_app({"validate_responses": True, "pool": "1000000000"})
    with MockServer(app) as server:
        yield server
    assert app.extensions["quota_mock_response_violations"] == []


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
