"""The request journal on Redis is one journal for every worker and instance on the store."""

from __future__ import annotations

import json

import redis
import requests

from mockserver import mock_state
from mockserver.domain.redis_journal import TRIM_EVERY

from .conftest import AUTH
from .test_workers import two_workers  # noqa: F401 - a fixture


def test_two_apps_on_one_redis_share_one_journal(redis_app):
    one, two = redis_app().test_client(), redis_app().test_client()
    one.get("/v1/me", headers=AUTH)
    two.get("/v1/packages")
    for client in (one, two):
        assert [r["operation_id"] for r in client.get("/_mock/requests").json["requests"]] == ["listPackages", "getMe"]
    two.post("/_mock/reset")
    assert one.get("/_mock/requests").json["requests"] == []


def test_the_ring_size_holds_across_apps(redis_app):
    one, two = redis_app(journal_size=4).test_client(), redis_app(journal_size=4).test_client()
    for n in range(5):
        (one if n % 2 else two).get("/v1/packages")
    assert len(two.get("/_mock/requests").json["requests"]) == 4


def test_a_ring_past_its_size_lists_only_its_newest_records(redis_app, redis_server, prefix):
    # Grants talk to Redis, so their records go under reserved ids, and only every
    # TRIM_EVERY-th of them trims the set: readers must still see exactly the newest four.
    app = redis_app(journal_size=4)
    client = app.test_client()
    grants = 2 * TRIM_EVERY + 5
    for n in range(grants):
        body = {"external_user_id": f"ring-{n}", "amount": 0.01}
        assert client.post("/v1/funding/grant", json=body, headers=AUTH).status_code == 200
    records = client.get("/_mock/requests").json["requests"]
    assert [json.loads(r["request"]["body"])["external_user_id"] for r in records] == [
        f"ring-{n}" for n in range(grants - 1, grants - 5, -1)
    ]
    assert mock_state(app).journal.count() == 4
    held = redis.Redis.from_url(redis_server.url).zcard(prefix + "journal:records")
    assert 4 <= held <= 4 + TRIM_EVERY  # trimmed along the way, not left to grow


def test_requests_to_a_two_worker_mock_all_land_in_the_journal(two_workers):  # noqa: F811
    live = two_workers()
    for n in range(20):  # a new connection each: both workers answer some
        response = requests.get(f"{live.base_url}/v1/users/nobody-{n}/balance", headers=AUTH, timeout=10)
        assert response.status_code == 404
    records = requests.get(
        f"{live.base_url}/_mock/requests", params={"operation_id": "getUserBalance"}, timeout=10
    ).json()["requests"]
    assert sorted(r["path"] for r in records) == sorted(f"/v1/users/nobody-{n}/balance" for n in range(20))
    assert all(r["problem"] == "user_not_found: User not found" for r in records)


def test_each_answer_of_a_busy_two_worker_mock_is_in_the_journal_when_the_client_asks(two_workers):  # noqa: F811
    # Records are sent without waiting (redis_journal.py): a client that asks right after its
    # answer, through either worker, must still find it, while other clients keep both busy.
    import threading

    live = two_workers()
    stop = threading.Event()

    def background() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                session.post(f"{live.base_url}/v1/funding/grant", json={"external_user_id": "busy", "amount": 0.01},
                             headers=AUTH, timeout=10)  # fmt: skip

    others = [threading.Thread(target=background) for _ in range(3)]
    for thread in others:
        thread.start()
    try:
        for n in range(60):
            body = {"external_user_id": f"asker-{n}", "amount": 0.01}
            answer = requests.post(f"{live.base_url}/v1/funding/grant", json=body, headers=AUTH, timeout=10)
            ledger_id = answer.json()["ledger_id"]
            records = requests.get(
                f"{live.base_url}/_mock/requests", params={"limit": 50, "operation_id": "grantUserBalance"}, timeout=10
            ).json()["requests"]
            assert any(ledger_id in r["response"]["body"] for r in records), n
    finally:
        stop.set()
        for thread in others:
            thread.join()
