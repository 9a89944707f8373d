"""quota-mock's options for browser apps: --cors-origin, --no-cors, --rate-limit."""

from __future__ import annotations

import pytest
import requests

from mockserver.cli import build_parser, config_from_args
from mockserver.config import ConfigError

from .conftest import start_quota_mock
from .test_cli import run_quota_mock

DEMO = {"Authorization": "Bearer sk-quota-your-api-key"}


def _config(*argv: str):
    return config_from_args(build_parser().parse_args(list(argv)))


def test_cors_is_on_for_any_origin_by_default_and_configurable():
    assert _config().cors_origins == ("*",)
    assert _config("--cors-origin", "http://localhost:3000", "--cors-origin", "http://127.0.0.1:5173").cors_origins == (
        "http://localhost:3000",
        "http://127.0.0.1:5173",
    )
    assert _config("--no-cors").cors_origins == ()
    with pytest.raises(ConfigError, match="contradict"):
        _config("--no-cors", "--cors-origin", "http://localhost:3000")
    with pytest.raises(ConfigError, match="CORS origin"):
        _config("--cors-origin", "localhost:3000")


def test_rate_limit_is_off_by_default():
    assert _config().rate_limit is None
    assert _config("--rate-limit", "100/min").parsed_rate_limit.limit == 100


def test_the_command_limits_rates_and_serves_cors():
    live = start_quota_mock("--quiet", "--rate-limit", "2/min", "--cors-origin", "http://localhost:3000")
    try:
        headers = {**DEMO, "Origin": "http://localhost:3000"}
        statuses = [requests.get(live.base_url + "/v1/me", headers=headers, timeout=5) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[2].json()["error"]["code"] == "rate_limit_exceeded"
        assert statuses[2].headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert int(statuses[2].headers["Retry-After"]) >= 1
    finally:
        live.stop()
    banner = "\n".join(live.output)
    assert "rate limit:  2 requests per minute per API key" in banner
    assert "dashboard:" in banner and "/_mock/" in banner


def test_bad_browser_options_exit_2_with_a_clear_message():
    bad_rate = run_quota_mock("--rate-limit", "lots")
    assert bad_rate.returncode == 2 and "e.g. 100/min" in bad_rate.stderr
    bad_origin = run_quota_mock("--cors-origin", "localhost:3000")
    assert bad_origin.returncode == 2 and "CORS origin" in bad_origin.stderr


def test_help_documents_the_options():
    help_text = run_quota_mock("--help").stdout
    for option in ("--cors-origin", "--no-cors", "--rate-limit"):
        assert option in help_text
