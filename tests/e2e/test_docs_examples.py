"""The vendor's own curl examples, verbatim but for the host, against a live quota-mock."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

SEED_DOC = Path(__file__).resolve().parents[2] / "docs" / "vendor" / "funding-api-seed.txt"
VENDOR_HOST = "https://api.usequota.ai"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def seed_curl_commands() -> list[str]:
    """Every curl command of the docs, with its continuation lines joined."""
    commands, current = [], None
    for line in SEED_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("curl "):
            current = line
        elif current is not None and line.startswith((" ", "\t")):
            current = current.rstrip("\\ ") + " " + line.strip()
        elif current is not None:
            commands.append(current.rstrip("\\ "))
            current = None
    if current is not None:
        commands.append(current.rstrip("\\ "))
    return commands


def run_curl(command: str, base_url: str) -> dict:
    argv = shlex.split(command.replace(VENDOR_HOST, base_url))
    result = subprocess.run([argv[0], "-sS", *argv[1:]], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(result.stdout)


def test_the_docs_have_the_expected_examples():
    paths = [re.search(r"https://\S+", c).group(0).removeprefix(VENDOR_HOST) for c in seed_curl_commands()]
    assert paths == ["/v1/funding/grant", "/v1/users/user_123/balance", "/v1/me", "/v1/packages"]


def test_the_docs_curl_examples_answer_as_documented(live_mock):
    grant_cmd, balance_cmd, me_cmd, packages_cmd = seed_curl_commands()

    granted = run_curl(grant_cmd, live_mock.base_url)
    ledger_id = granted.pop("ledger_id")
    assert granted == {
        "external_user_id": "user_123",
        "amount_granted": "$0.50",
        "balance_before": "$5.00",
        "balance_after": "$5.50",
        "duplicate": False,
    }
    # The example carries an Idempotency-Key: pasting it again is a replay, not a second grant.
    replayed = run_curl(grant_cmd, live_mock.base_url)
    assert replayed["duplicate"] is True and replayed["ledger_id"] == ledger_id

    balance = run_curl(balance_cmd, live_mock.base_url)
    assert balance["external_user_id"] == "user_123"
    assert balance["balance"] == "$5.50"
    assert balance["billing_mode"] == "user"

    me = run_curl(me_cmd, live_mock.base_url)
    assert me["usage"]["window_days"] == 30 and me["usage"]["grants"]["count"] == 1

    packages = run_curl(packages_cmd, live_mock.base_url)
    assert [p["id"] for p in packages["packages"]] == ["starter", "basic", "plus", "pro"]
