"""The quota-mock command: start-up banner, request log, options, clean exit."""

from __future__ import annotations

import subprocess

import requests

from .conftest import quota_mock_command, start_quota_mock

DEMO_KEY = "sk-quota-your-api-key"


def test_banner_request_log_redaction_and_clean_ctrl_c():
    live = start_quota_mock()
    custom_key_mock = start_quota_mock("--api-key", "sk-quota-" + "z" * 32)
    try:
        response = requests.get(
            live.base_url + "/v1/balance", headers={"Authorization": f"Bearer {DEMO_KEY}"}, timeout=5
        )
        assert response.status_code == 200
        secret = "sk-quota-" + "z" * 32
        assert requests.get(
            custom_key_mock.base_url + "/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=5
        ).ok
        assert (
            requests.get(
                custom_key_mock.base_url + "/v1/me", headers={"Authorization": f"Bearer {DEMO_KEY}"}, timeout=5
            ).status_code
            == 401
        )
    finally:
        assert live.stop() == 0
        assert custom_key_mock.stop() == 0
    log = "\n".join(live.output)
    assert f"API key:     {DEMO_KEY}" in log  # the key to use is printed at start-up
    assert '"GET /v1/balance" 200' in log
    assert DEMO_KEY not in log.split("Press Ctrl-C")[1]  # requests are logged with the key redacted
    assert "quota-mock stopped." in log
    custom_log = "\n".join(custom_key_mock.output)
    assert "z" * 32 not in custom_log and '"GET /v1/me" 401' in custom_log


def test_seed_file_and_pool_options(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("users:\n  carol: '3.21'\n", encoding="utf-8")
    live = start_quota_mock("--seed", str(seed), "--pool", "12.50")
    try:
        headers = {"Authorization": f"Bearer {DEMO_KEY}"}
        assert (
            requests.get(live.base_url + "/v1/users/carol/balance", headers=headers, timeout=5).json()["balance"]
            == "$3.21"
        )
        assert requests.get(live.base_url + "/v1/balance", headers=headers, timeout=5).json()["balance"] == "$12.50"
    finally:
        live.stop()


def run_quota_mock(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*quota_mock_command(), *args], capture_output=True, text=True, timeout=30)


def test_bad_options_exit_2_with_a_clear_message(tmp_path):
    missing = run_quota_mock("--seed", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read seed file" in missing.stderr
    bad_seed = tmp_path / "bad.yaml"
    bad_seed.write_text("users: {x: -5}\n", encoding="utf-8")
    invalid = run_quota_mock("--seed", str(bad_seed))
    assert invalid.returncode == 2 and "users.x must not be negative" in invalid.stderr
    assert run_quota_mock("--pool", "lots").returncode == 2
    assert run_quota_mock("--port", "99999").returncode == 2


def test_exposing_the_control_api_beyond_loopback_needs_a_token():
    refused = run_quota_mock("--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert "--admin-token" in refused.stderr


def test_help_documents_every_option():
    help_text = run_quota_mock("--help").stdout
    for option in ("--host", "--port", "--api-key", "--seed", "--pool", "--admin-token", "--no-admin"):
        assert option in help_text
