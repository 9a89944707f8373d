"""Several mocks on one Redis are one mock: users, pool, ledger, idempotency keys and the clock
are shared, and the state outlives the mock process."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import redis
import requests

from mockserver import mock_state
from mockserver.domain.redis_resets import SharedResets

from .conftest import AUTH


def grant(client, user="u1", amount=1.5, key=None):
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/funding/grant", json={"external_user_id": user, "amount": amount}, headers=headers)


def test_two_apps_on_one_redis_share_every_piece_of_state(redis_app):
    one, two = redis_app().test_client(), redis_app().test_client()
    first = grant(one, key="shared-key")
    assert first.status_code == 200
    replay = grant(two, key="shared-key")
    assert replay.json == {**first.json, "duplicate": True}
    assert two.get("/v1/users/u1/balance", headers=AUTH).json["balance"] == "$1.50"
    assert two.get("/v1/balance", headers=AUTH).json == one.get("/v1/balance", headers=AUTH).json
    assert grant(two, amount=2.0, key="shared-key").status_code == 422  # same key, other body
    assert two.get("/_mock/ledger").json == one.get("/_mock/ledger").json
    assert one.get("/_mock/idempotency-keys").json["count"] == 1
    # A clock move answered by one instance expires the key for the other as well.
    one.post("/_mock/clock", json={"advance_seconds": 86_401})
    assert two.get("/_mock/idempotency-keys").json["count"] == 0
    assert grant(two, key="shared-key").json["duplicate"] is False
    assert two.get("/_mock/state").json["conservation"]["holds"] is True


def test_state_survives_a_restart_of_the_app_and_reset_is_explicit(redis_app):
    app = redis_app()
    grant(app.test_client(), key="before-restart")
    mock_state(app).service.store.close()

    restarted = redis_app().test_client()
    assert restarted.get("/v1/users/u1/balance", headers=AUTH).json["balance"] == "$1.50"
    assert grant(restarted, key="before-restart").json["duplicate"] is True
    state = restarted.get("/_mock/state").json
    assert state["ledger_size"] == 4 and state["conservation"]["holds"]

    restarted.post("/_mock/reset")
    assert restarted.get("/v1/users/u1/balance", headers=AUTH).status_code == 404
    assert restarted.get("/_mock/state").json["ledger_size"] == 3


def test_a_restarted_quota_mock_process_keeps_its_balances(redis_server, prefix, quota_mock_on):
    args = ("--store", redis_server.url, "--store-prefix", prefix)
    first = quota_mock_on(*args)
    assert any("seeded" in line for line in first.output)
    body = {"external_user_id": "survivor", "amount": 2.25}
    headers = {**AUTH, "Idempotency-Key": "k"}
    credited = requests.post(first.base_url + "/v1/funding/grant", json=body, headers=headers, timeout=10).json()
    assert first.stop() == 0

    second = quota_mock_on(*args)
    assert any("state kept from an earlier run" in line for line in second.output)
    balance = requests.get(second.base_url + "/v1/users/survivor/balance", headers=AUTH, timeout=10).json()
    assert balance["balance"] == "$2.25"
    again = requests.post(second.base_url + "/v1/funding/grant", json=body, headers=headers, timeout=10).json()
    assert again == {**credited, "duplicate": True}


def _subscribed(app) -> None:
    resets = mock_state(app).shared_resets
    assert resets is not None and resets.wait_subscribed(5), "the shared-reset listener did not subscribe"


def test_a_seed_posted_to_one_instance_is_served_by_every_instance(redis_app):
    """API keys, prices and the developer live in each process: a seed posted to one worker
    reaches the others before the control API answers (not only the shared balances)."""
    apps = [redis_app(), redis_app(), redis_app()]
    for app in apps:
        _subscribed(app)
    one, two, three = (app.test_client() for app in apps)
    new_key = {"Authorization": "Bearer sk-quota-rotated-key"}
    seed = {"api_keys": ["sk-quota-rotated-key"], "developer": {"billing_mode": "developer"},
            "prices": {"markup_percent": 25}, "users": {"seeded": "1.00"}}
    assert one.post("/_mock/seed", json=seed).status_code == 200
    for client in (two, three):  # at once: no wait, no retry
        assert client.get("/v1/balance", headers=AUTH).status_code == 401
        answer = client.get("/v1/balance", headers=new_key)
        assert answer.status_code == 200 and answer.json["billing_mode"] == "developer"
        assert client.get("/v1/users/seeded/balance", headers=new_key).json["balance"] == "$1.00"
    assert all(mock_state(app).service.seed == mock_state(apps[0]).service.seed for app in apps)
    # A plain reset goes back to each instance's own starting seed, everywhere.
    assert three.post("/_mock/reset").status_code == 200
    for client in (one, two, three):
        assert client.get("/v1/balance", headers=AUTH).status_code == 200
        assert client.get("/v1/balance", headers=new_key).status_code == 401


def test_a_reset_clears_every_instances_fault_rules(redis_app):
    first, second = redis_app(), redis_app()
    _subscribed(first)
    _subscribed(second)
    rule = {"operation_id": "getBalance", "action": "fail", "status": 503}
    assert second.test_client().post("/_mock/faults", json=rule).status_code in (200, 201)
    assert second.test_client().get("/v1/balance", headers=AUTH).status_code == 503
    assert first.test_client().post("/_mock/reset").status_code == 200
    assert second.test_client().get("/v1/balance", headers=AUTH).status_code == 200
    assert second.test_client().get("/_mock/faults").json["faults"] == []


def test_an_instance_closed_does_not_hold_a_reset_up(redis_app):
    """A closed mock stops listening; an announcement then waits for nobody."""
    import time

    gone = redis_app()
    _subscribed(gone)
    thread = mock_state(gone).shared_resets._thread
    mock_state(gone).close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    survivor = redis_app()
    _subscribed(survivor)
    started = time.monotonic()
    assert survivor.test_client().post("/_mock/reset").status_code == 200
    assert time.monotonic() - started < 1.0


def test_a_worker_that_starts_after_a_reset_of_its_run_serves_that_seed(redis_app):
    """quota-mock answers once its first worker is up: a seed posted then must still reach a
    worker of the same run that was starting (or that granian starts later to replace one)."""
    first = redis_app(run_id="run-a")
    _subscribed(first)
    new_key = {"Authorization": "Bearer sk-quota-rotated-key"}
    seed = {"api_keys": ["sk-quota-rotated-key"], "developer": {"billing_mode": "developer"}}
    assert first.test_client().post("/_mock/seed", json=seed).status_code == 200
    late = redis_app(run_id="run-a").test_client()  # built after the announcement went out
    answer = late.get("/v1/balance", headers=new_key)
    assert answer.status_code == 200 and answer.json["billing_mode"] == "developer"
    assert late.get("/v1/balance", headers=AUTH).status_code == 401
    # Another run (a mock started afresh on the namespace) keeps its own configuration.
    for other in (redis_app(run_id="run-b").test_client(), redis_app().test_client()):
        assert other.get("/v1/balance", headers=AUTH).status_code == 200
        assert other.get("/v1/balance", headers=new_key).status_code == 401


def test_a_reset_read_at_start_never_undoes_a_newer_one(redis_server, prefix):
    """The announcement a starting worker reads and one arriving on the channel may cross:
    the sequence number keeps the newer one."""
    adopted: list[object] = []

    def adopt(seed: object) -> None:
        adopted.append(seed)

    resets = SharedResets(redis_server.url, prefix, adopt, run_id="run")
    try:
        assert resets._adopt({"id": "b", "sequence": 5, "seed": "five"}, adopt)
        assert not resets._adopt({"id": "a", "sequence": 3, "seed": "three"}, adopt)
        assert resets._adopt({"id": "c", "sequence": 6, "seed": "six"}, adopt)
        assert adopted == ["five", "six"]
    finally:
        resets.close()


@contextlib.contextmanager
def listener_and_announcer(url: str, prefix: str) -> Iterator[tuple[list[object], SharedResets, redis.Redis]]:
    """A listening worker (what it adopts, in order), another worker that announces, both
    subscribed, and a plain client: the test's hand on Redis."""
    adopted: list[object] = []
    listener = SharedResets(url, prefix, lambda seed: adopted.append(seed))
    announcer = SharedResets(url, prefix, lambda seed: None)
    admin = redis.Redis.from_url(url)
    try:
        assert listener.wait_subscribed(5) and announcer.wait_subscribed(5)
        yield adopted, announcer, admin
    finally:
        listener.close()
        announcer.close()
        admin.close()


def test_a_listener_whose_connection_dropped_adopts_what_was_announced_meanwhile(redis_server, prefix):
    """Redis drops every subscriber (CLIENT KILL TYPE pubsub, as a restart or a proxy's idle
    timeout would). A reset announced while they were away reached nobody on the channel: it is
    written here as announce() keeps it, and not published, so only the recovery can apply it.
    Each listener adopts it once its subscription is confirmed again, and only once."""
    with listener_and_announcer(redis_server.url, prefix) as (adopted, announcer, admin):
        assert announcer.announce({"api_key": "before"}) == 2 and adopted == [{"api_key": "before"}]
        sequence = admin.incr(f"{prefix}resets:sequence")
        admin.set(f"{prefix}resets:latest", json.dumps(
            {"origin": "another-worker", "id": "missed", "seed": {"api_key": "meanwhile"}, "sequence": sequence}))
        assert admin.client_kill_filter(_type="pubsub") >= 2  # (and other tests' listeners, if alive)
        deadline = time.monotonic() + 5
        while len(adopted) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert adopted == [{"api_key": "before"}, {"api_key": "meanwhile"}]
        admin.client_kill_filter(_type="pubsub")
        time.sleep(1.5)
        assert adopted == [{"api_key": "before"}, {"api_key": "meanwhile"}]


def test_a_listener_never_recovers_an_announcement_older_than_itself(redis_server, prefix):
    """A mock started afresh on the namespace keeps its own seed: a reconnection recovers only
    what was announced after it first subscribed."""
    old = SharedResets(redis_server.url, prefix, lambda seed: None)
    old.announce({"api_key": "old"})
    old.close()
    adopted: list[object] = []
    fresh = SharedResets(redis_server.url, prefix, lambda seed: adopted.append(seed))
    admin = redis.Redis.from_url(redis_server.url)
    try:
        assert fresh.wait_subscribed(5)
        admin.client_kill_filter(_type="pubsub")
        time.sleep(1.5)
        assert fresh.wait_subscribed(5) and adopted == []
    finally:
        fresh.close()
        admin.close()


def test_resets_are_followed_after_redis_lost_its_data(redis_server, prefix):
    """Redis restarted without persistence: the sequence counter is gone and starts again. The
    workers that applied the old numbers must still follow the resets announced from then on."""
    with listener_and_announcer(redis_server.url, prefix) as (adopted, announcer, admin):
        for seed in ({"api_key": "one"}, {"api_key": "two"}):
            assert announcer.announce(seed) == 2
        time.sleep(0.01)  # (the counter restarts at the wall clock's milliseconds)
        admin.delete(f"{prefix}resets:sequence", f"{prefix}resets:latest")  # the data Redis lost
        assert announcer.announce({"api_key": "after the loss"}) == 2
        assert adopted == [{"api_key": "one"}, {"api_key": "two"}, {"api_key": "after the loss"}]
