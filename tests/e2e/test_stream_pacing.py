"""A streamed chat paced like a model's tokens, over a real socket: with ``--stream-chunk-delay``
(or a request's ``Prefer: chunk-delay``) its events arrive apart, and a client that stops
reading has still paid for the chat."""

from __future__ import annotations

import time

import requests

from .conftest import start_quota_mock

AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16,
        "stream": True}


def _arrivals(response: requests.Response, started: float) -> list[float]:
    """When each event's data line arrived, in seconds after the request was sent."""
    return [time.monotonic() - started for line in response.iter_lines(chunk_size=1) if line.startswith(b"data: ")]


def test_the_command_paces_a_streams_events_and_prefer_overrides_it():
    live = start_quota_mock("--stream-chunk-delay", "60")
    try:
        url = live.base_url + "/v1/users/user_123/chat/completions"
        started = time.monotonic()
        with requests.post(url, json=CHAT, headers=AUTH, stream=True, timeout=30) as response:
            assert response.status_code == 200
            arrivals = _arrivals(response, started)
        pacing = 0.06 * (len(arrivals) - 1)
        assert len(arrivals) >= 4
        assert arrivals[-1] >= pacing  # the server cannot send the last event sooner
        assert arrivals[0] < arrivals[-1] - pacing / 2  # the first came long before: events arrive apart

        headers = {**AUTH, "Prefer": "chunk-delay=0"}
        started = time.monotonic()
        with requests.post(url, json=CHAT, headers=headers, stream=True, timeout=30) as response:
            assert response.headers["Preference-Applied"] == "chunk-delay=0"
            assert _arrivals(response, started)[-1] < pacing
    finally:
        live.stop()


def test_a_client_that_stops_reading_has_paid_for_the_chat():
    live = start_quota_mock()
    try:
        url = live.base_url + "/v1/users/user_123/chat/completions"
        before = requests.get(live.base_url + "/v1/users/user_123/balance", headers=AUTH, timeout=10).json()
        headers = {**AUTH, "Prefer": "chunk-delay=200"}
        with requests.post(url, json=CHAT, headers=headers, stream=True, timeout=30) as response:
            assert response.headers["Preference-Applied"] == "chunk-delay=200"
            first = next(response.iter_lines())
            assert first.startswith(b"data: ")
        # Closed after the first event: the chat was charged when it was answered.
        after = requests.get(live.base_url + "/v1/users/user_123/balance", headers=AUTH, timeout=10).json()
        assert after["balance_microdollars"] < before["balance_microdollars"]
        assert requests.get(live.base_url + "/v1/packages", timeout=10).status_code == 200  # still serving
    finally:
        live.stop()
