"""A client generated from openapi.yaml by openapi-python-client runs the seed flow.

This is what an SDK author does with the contract: generate, then call. The generator must
take the whole contract without a warning (a piece it cannot model is silently left out of
the client), and the client must grant, replay, read the balance and meet the 402.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from mockserver.contract import contract_path

PACKAGE = "quota_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    where = tmp_path_factory.mktemp("generated")
    config = where / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n", encoding="utf-8")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(contract_path()),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "Unable to process" not in output, output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_the_generated_client_runs_the_seed_flow(generated, quota_mock):
    assert generated.__name__ == PACKAGE
    client_module = importlib.import_module(f"{PACKAGE}.client")
    grant_api = importlib.import_module(f"{PACKAGE}.api.funding.grant_user_balance")
    balance_api = importlib.import_module(f"{PACKAGE}.api.balances.get_user_balance")
    models = importlib.import_module(f"{PACKAGE}.models")
    client = client_module.AuthenticatedClient(base_url=quota_mock.base_url, token=quota_mock.api_key)
    request = models.GrantRequest(external_user_id="user_123", amount=0.5, description="Welcome bonus")

    # The seed's grant, then the same request again: a replay, credited once.
    first = grant_api.sync_detailed(client=client, body=request, idempotency_key="funding-user123-jan2026")
    assert first.status_code == 200
    assert isinstance(first.parsed, models.GrantResponse)
    assert (first.parsed.amount_granted, first.parsed.balance_before, first.parsed.balance_after) == (
        "$0.50",
        "$5.00",
        "$5.50",
    )
    assert first.parsed.duplicate is False
    again = grant_api.sync_detailed(client=client, body=request, idempotency_key="funding-user123-jan2026")
    assert again.status_code == 200 and again.parsed.duplicate is True
    assert again.parsed.ledger_id == first.parsed.ledger_id
    assert again.headers["Idempotent-Replayed"] == "true"

    balance = balance_api.sync(client=client, external_user_id="user_123")
    assert isinstance(balance, models.UserBalance)
    assert balance.balance == "$5.50" == quota_mock.balance("user_123")

    # A grant the pool cannot cover: 402, parsed into the contract's error model, nothing moved.
    quota_mock.set_pool("0.10")
    refused = grant_api.sync_detailed(
        client=client, body=models.GrantRequest(external_user_id="user_123", amount=1.0), idempotency_key="big"
    )
    assert refused.status_code == 402
    assert isinstance(refused.parsed, models.InsufficientBalanceError)
    assert refused.parsed.error.code == "insufficient_balance"
    assert quota_mock.balance("user_123") == "$5.50"

    unknown = balance_api.sync_detailed(client=client, external_user_id="nobody")
    assert unknown.status_code == 404 and unknown.parsed.error.code == "user_not_found"
