"""Concurrency over a real socket: idempotency holds and money is conserved under load."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mockserver import create_app, mock_state
from mockserver.server import MockServer

from ..races import AUTH, RACE_BODY, RACE_CREDIT, assert_credited_once, race_one_key


@pytest.fixture
def slow_grant_mock() -> Iterator[MockServer]:
    # Each grant is held in flight for 300 ms, so concurrent retries really overlap it.
    app = create_app({"grant_delay_seconds": 0.3})
    with MockServer(app, threads=16) as server:
        yield server


def test_64_concurrent_grants_with_one_key_credit_exactly_once(slow_grant_mock):
    in_flight = assert_credited_once(race_one_key(slow_grant_mock.base_url))
    assert in_flight  # the requests really overlapped the held grant
    service = mock_state(slow_grant_mock.app).service
    assert service.user_balance("racer") == RACE_CREDIT
    # Once the first request is done, a retry is a plain replay.
    replay = requests.post(
        slow_grant_mock.base_url + "/v1/funding/grant",
        json=RACE_BODY,
        headers={**AUTH, "Idempotency-Key": "race-1"},
        timeout=10,
    )
    assert replay.json()["duplicate"] is True and replay.headers["Idempotent-Replayed"] == "true"
    assert service.conservation().holds


def test_1000_concurrent_grants_with_distinct_keys_conserve_money():
    app = create_app({})
    with MockServer(app, threads=8) as server:
        url = server.base_url + "/v1/funding/grant"
        session = requests.Session()

        def send(i: int) -> int:
            body = {"external_user_id": f"user-{i % 37}", "amount": 0.01 * (1 + i % 5)}
            return session.post(url, json=body, headers={**AUTH, "Idempotency-Key": f"k-{i}"}, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = list(pool.map(send, range(1000)))
    assert statuses == [200] * 1000
    service = mock_state(app).service
    check = service.conservation()
    assert check.holds
    expected_total = sum(10_000 * (1 + i % 5) for i in range(1000))
    assert sum(b for u, b in service.store.users().items() if u.startswith("user-")) == expected_total
