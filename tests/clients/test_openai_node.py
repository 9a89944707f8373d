"""The official `openai` npm package under Node sends the same requests as the Python tests.

The package is installed into ``.ci/node`` (never globally) on first use, as the Spectral
test installs Spectral. Without Node.js and npm the test is skipped, saying so, except in CI
(``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mockserver.domain.completions import AUDIO_TOKENS, IMAGE_TOKENS

from .node_packages import NODE_PREFIX, node_with

# openai 7 needs Node 22; 6 runs on the Node 20 that Debian ships (apt-get install nodejs).
OPENAI_PACKAGE = "openai@6"
SCRIPT = Path(__file__).with_name("openai_node.mjs")


def _node() -> str:
    return node_with(OPENAI_PACKAGE)


def test_the_openai_npm_package_works_against_the_mock(quota_mock):
    node = _node()
    result = subprocess.run(
        [node, str(SCRIPT)],
        env={
            **os.environ,
            "QUOTA_BASE_URL": quota_mock.base_url,
            "QUOTA_API_KEY": quota_mock.api_key,
            "QUOTA_NODE_PREFIX": str(NODE_PREFIX),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)

    assert seen["developer"]["quota"]["billing_mode"] == "developer"
    assert seen["user"]["quota"]["billing_mode"] == "user"
    assert seen["header"]["quota"]["billing_mode"] == "user"
    spent = seen["user"]["quota"]["credits_used"] + seen["header"]["quota"]["credits_used"]
    assert quota_mock.balance_microdollars("user_123") == 5_000_000 - spent

    # Streams: the same text as the plain answer; usage only in include_usage's last chunk.
    plain = seen["developer"]
    for name in ("stream", "stream_usage"):
        assert seen[name]["content"] == plain["content"]
    assert seen["stream"]["last"]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in seen["stream"]["last"]
    assert seen["stream_usage"]["last"]["choices"] == []
    assert seen["stream_usage"]["last"]["usage"] == plain["usage"]
    assert set(seen["stream_usage"]["usages"]) == {None}

    assert seen["parts"]["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"] + IMAGE_TOKENS + AUDIO_TOKENS

    tools = seen["tools"]
    assert (tools["first_finish"], tools["call_name"]) == ("tool_calls", "get_weather")
    assert set(tools["arguments"]) == {"city", "unit"}
    assert tools["second_finish"] == "stop" and tools["second_content"]

    errors = seen["errors"]
    assert errors["400"]["type"] == "BadRequestError" and errors["400"]["code"] == "bad_request"
    assert "Unrecognized request argument supplied: temprature" in errors["400"]["message"]
    assert errors["401"]["type"] == "AuthenticationError" and errors["401"]["code"] == "invalid_api_key"
    assert (errors["402"]["status"], errors["402"]["code"]) == (402, "insufficient_balance")
    assert errors["404"]["type"] == "NotFoundError" and errors["404"]["code"] == "user_not_found"
    assert quota_mock.conservation().holds
