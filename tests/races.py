"""Shared race drivers for the concurrency tests of both stores (in-process and workers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}
RACE_BODY = {"external_user_id": "racer", "amount": 1.25}
RACE_CREDIT = 1_250_000


def race_one_key(base_url: str, senders: int = 64, key: str = "race-1") -> list[requests.Response]:
    """``senders`` concurrent grants of :data:`RACE_BODY`, all with one Idempotency-Key."""
    url = base_url + "/v1/funding/grant"

    def send(_: int) -> requests.Response:
        with requests.Session() as session:
            return session.post(url, json=RACE_BODY, headers={**AUTH, "Idempotency-Key": key}, timeout=30)

    with ThreadPoolExecutor(max_workers=senders) as pool:
        return list(pool.map(send, range(senders)))


def assert_credited_once(responses: list[requests.Response]) -> list[requests.Response]:
    """Every answer is the one grant (200, one ledger id, one non-duplicate) or the in-flight
    error; returns the in-flight answers."""
    oks = [r for r in responses if r.status_code == 200]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(oks) + len(in_flight) == len(responses)
    assert all(r.json()["error"]["code"] == "idempotency_key_in_flight" for r in in_flight)
    assert len({r.json()["ledger_id"] for r in oks}) == 1
    assert sum(not r.json()["duplicate"] for r in oks) == 1
    return in_flight
