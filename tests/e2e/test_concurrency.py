"""Concurrency over a real socket: idempotency holds and money is conserved under load."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mockserver import create_app, mock_state
from mockserver.server import MockServer

AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}


@pytest.fixture
def slow_grant_mock() -> Iterator[MockServer]:
    # Each grant is held in flight for 300 ms, so concurrent retries really overlap it.
    app = create_app({"grant_delay_seconds": 0.3})
    with MockServer(app, threads=16) as server:
        yield server


def test_64_concurrent_grants_with_one_key_credit_exactly_once(slow_grant_mock):
    url = slow_grant_mock.base_url + "/v1/funding/grant"
    body = {"external_user_id": "racer", "amount": 1.25}

    def send(_: int) -> requests.Response:
        with requests.Session() as session:
            return session.post(url, json=body, headers={**AUTH, "Idempotency-Key": "race-1"}, timeout=30)

    with ThreadPoolExecutor(max_workers=64) as pool:
        responses = list(pool.map(send, range(64)))
    oks = [r for r in responses if r.status_code == 200]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(oks) + len(in_flight) == 64
    assert in_flight and all(r.json()["error"]["code"] == "idempotency_key_in_flight" for r in in_flight)
    assert len({r.json()["ledger_id"] for r in oks}) == 1
    assert sum(not r.json()["duplicate"] for r in oks) == 1
    service = mock_state(slow_grant_mock.app).service
    assert service.user_balance("racer") == 1_250_000
    # Once the first request is done, a retry is a plain replay.
    replay = requests.post(url, json=body, headers={**AUTH, "Idempotency-Key": "race-1"}, timeout=10)
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
