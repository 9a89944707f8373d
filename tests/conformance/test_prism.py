"""Against Stoplight Prism (a stateless mock of openapi.yaml) the schema checks pass and the
stateful ones fail. Slow and needs Node: ``npm install --prefix .ci/node --no-save
@stoplight/prism-cli@5``; skipped when Prism is not installed."""

from __future__ import annotations

import pytest

from conformance.prism_demo import prism_command, run_against_prism
from conformance.results import Status

pytestmark = pytest.mark.slow

SCHEMA_CHECKS = ("errors.no_server_error", "schema.status_code", "schema.content_type", "schema.headers",
                 "errors.envelope", "money.format")
STATEFUL_CHECKS = ("idem.replay", "idem.new_key_new_grant", "grant.readback")


@pytest.mark.skipif(prism_command() is None, reason="Prism not installed in .ci/node (see the module docstring)")
def test_prism_passes_schema_checks_and_fails_stateful_ones():
    report = run_against_prism()
    statuses = report.results.statuses()
    assert report.exit_code == 1
    for check in SCHEMA_CHECKS:
        assert statuses[check] is Status.PASSED, check
    for check in STATEFUL_CHECKS:
        assert statuses[check] is Status.FAILED, check
