"""Redis going away: every stateful request answers 503 ``service_unavailable`` in the envelope,
nothing is half-applied, and the mock recovers once Redis is back. Each test owns its Redis
(persistent, so that a restart brings back exactly what was acknowledged)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from mockserver import create_app, mock_state
from mockserver.domain.errors import StoreUnavailable
from mockserver.server import MockServer

from ..e2e.conftest import quota_mock_command
from ..private_redis import free_port
from .conftest import AUTH

GRANT_DELAY = 0.4


@pytest.fixture
def mock_on_fault_redis(fault_redis) -> Iterator[MockServer]:
    app = create_app({"store": fault_redis.url, "grant_delay_seconds": GRANT_DELAY, "validate_responses": True})
    with MockServer(app, threads=8) as server:
        yield server
    mock_state(app).service.store.close()
    assert app.extensions["quota_mock_response_violations"] == []


def send(method: str, url: str, headers: dict[str, str] | None = None, **options) -> requests.Response:
    # "Connection: close": a response the test keeps must not keep its connection open, or
    # the server's shutdown would wait for it.
    headers = {**(headers or {}), "Connection": "close"}
    return requests.request(method, url, headers=headers, timeout=10, **options)


def grant(server: MockServer, key: str, user: str = "u1", amount: float = 1.0) -> requests.Response:
    body = {"external_user_id": user, "amount": amount}
    return send("POST", server.base_url + "/v1/funding/grant", json=body, headers={**AUTH, "Idempotency-Key": key})


def snapshot(server: MockServer) -> dict:
    state = send("GET", server.base_url + "/_mock/state").json()
    del state["clock"]
    return state


def wait_for_recovery(server: MockServer, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if send("GET", server.base_url + "/v1/balance", headers=AUTH).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the mock did not recover after Redis came back")


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "Redis" in response.json()["error"]["message"]
    assert response.headers["Retry-After"] == "1"


def test_redis_down_answers_503_in_the_envelope_and_the_mock_recovers(fault_redis, mock_on_fault_redis):
    server = mock_on_fault_redis
    assert grant(server, "before").status_code == 200
    before = snapshot(server)

    fault_redis.stop()
    started = time.monotonic()
    assert_unavailable(grant(server, "during"))
    for path in ("/v1/balance", "/v1/users/u1/balance", "/v1/me"):
        assert_unavailable(send("GET", server.base_url + path, headers=AUTH))
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert_unavailable(send("POST", server.base_url + "/v1/chat/completions", json=chat, headers=AUTH))
    assert time.monotonic() - started < 2 + GRANT_DELAY  # a dead Redis answers fast, not after retries
    assert send("GET", server.base_url + "/v1/packages").status_code == 200  # needs no state

    fault_redis.start()
    wait_for_recovery(server)
    assert snapshot(server) == before  # nothing was applied while Redis was away
    assert grant(server, "during").json()["duplicate"] is False
    assert snapshot(server)["conservation"]["holds"]


def test_redis_killed_mid_grant_leaves_no_half_applied_grant_and_frees_the_key(fault_redis, mock_on_fault_redis):
    server = mock_on_fault_redis
    before = snapshot(server)
    responses: list[requests.Response] = []
    request = threading.Thread(target=lambda: responses.append(grant(server, "mid-flight", amount=2.0)))
    request.start()
    time.sleep(GRANT_DELAY / 2)  # the key is claimed; the grant is held in flight
    fault_redis.stop(kill=True)
    request.join()
    assert_unavailable(responses[0])

    fault_redis.start()
    wait_for_recovery(server)
    assert snapshot(server) == before
    retried = grant(server, "mid-flight", amount=2.0)  # the key was freed, not stuck in flight
    assert retried.status_code == 200 and retried.json()["duplicate"] is False
    after = snapshot(server)
    assert after["users"]["u1"] == 2_000_000 and after["conservation"]["holds"]


def test_a_hung_redis_times_out_into_503_and_a_retry_credits_exactly_once(fault_redis):
    # A short socket timeout from the URL, so that the test waits half a second, not two.
    app = create_app({"store": fault_redis.url + "?socket_timeout=0.5", "grant_delay_seconds": GRANT_DELAY})
    assert fault_redis.process is not None
    with MockServer(app, threads=8) as server:
        responses: list[requests.Response] = []
        request = threading.Thread(target=lambda: responses.append(grant(server, "hung")))
        request.start()
        time.sleep(GRANT_DELAY / 2)  # claimed; the grant script will be sent to a frozen Redis
        fault_redis.process.send_signal(signal.SIGSTOP)
        try:
            request.join()
        finally:
            fault_redis.process.send_signal(signal.SIGCONT)
        assert_unavailable(responses[0])
        wait_for_recovery(server)
        # Whether the frozen Redis ran the grant or not, the retry credits exactly once: it
        # replays the grant, or (the key released once Redis answered) makes it.
        retried = grant(server, "hung")
        assert retried.status_code == 200
        state = snapshot(server)
        ledger = send("GET", server.base_url + "/_mock/ledger").json()["entries"]
    mock_state(app).service.store.close()
    assert state["users"]["u1"] == 1_000_000 and state["conservation"]["holds"]
    assert [e["id"] for e in ledger if e["account"] == "u1"] == [retried.json()["ledger_id"]]


def test_a_frozen_redis_fails_a_request_within_one_timeout(fault_redis):
    # The request's own command times out; its journal record must not make the answer wait
    # out a second timeout on a fresh connection (a frozen Redis still accepts connections).
    # A timeout of a second: the bounds below then keep half a second of margin either side
    # for a loaded machine, and two timeouts (the bug) still fall outside them.
    app = create_app({"store": fault_redis.url + "?socket_timeout=1.0"})
    client = app.test_client()
    assert client.get("/v1/users/frozen/balance", headers=AUTH).status_code == 404  # connected
    assert fault_redis.process is not None
    fault_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = client.get("/v1/users/frozen/balance", headers=AUTH)
        took = time.monotonic() - started
    finally:
        fault_redis.process.send_signal(signal.SIGCONT)
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "service_unavailable"
    assert 0.95 < took < 1.9, f"answered after {took:.2f} s: one timeout is 1 s"
    mock_state(app).service.store.close()


def test_a_client_that_disconnects_mid_grant_leaves_no_partial_state(mock_on_fault_redis):
    server = mock_on_fault_redis
    body = b'{"external_user_id": "quitter", "amount": 3.0}'
    raw = (
        b"POST /v1/funding/grant HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer sk-quota-your-api-key\r\nIdempotency-Key: gone\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection((server.host, server.port), timeout=5) as client:
        client.sendall(raw)
    time.sleep(GRANT_DELAY + 0.3)
    state = snapshot(server)
    # The request ran to its end or not at all: either way the books balance, no key is stuck.
    assert state["users"].get("quitter", 3_000_000) == 3_000_000
    assert state["conservation"]["holds"]
    keys = send("GET", server.base_url + "/_mock/idempotency-keys").json()["keys"]
    assert all(k["state"] == "completed" for k in keys)
    replay = grant(server, "gone", user="quitter", amount=3.0)
    assert replay.status_code == 200
    assert snapshot(server)["users"]["quitter"] == 3_000_000


def test_quota_mock_refuses_to_start_without_its_redis():
    import subprocess

    dead = f"redis://127.0.0.1:{free_port()}/0"
    finished = subprocess.run(
        [*quota_mock_command(), "--port", "0", "--store", dead], capture_output=True, text=True, timeout=30
    )
    assert finished.returncode == 2
    assert f"cannot reach the store {dead}" in finished.stderr


def test_several_workers_need_the_redis_store():
    import subprocess

    finished = subprocess.run(
        [*quota_mock_command(), "--port", "0", "--workers", "2"], capture_output=True, text=True, timeout=30
    )
    assert finished.returncode == 2
    assert "--workers 2 needs a shared store" in finished.stderr


def test_a_keyless_grant_redis_took_then_froze_on_is_a_503_that_says_it_may_have_been_applied(fault_redis):
    # An adversary froze Redis (SIGSTOP) under a keyless grant: the answer was a 503 saying
    # nothing was applied, and when Redis resumed it ran the grant it had been sent, so a client
    # retrying was credited twice. The 503 now says the outcome is unknown.
    # A timeout of a second: the bounds below then keep half a second of margin either side
    # for a loaded machine, and two timeouts (the bug) still fall outside them.
    app = create_app({"store": fault_redis.url + "?socket_timeout=1.0"})
    client = app.test_client()
    body = {"external_user_id": "frozen-keyless", "amount": 1.0}
    assert client.post("/v1/funding/grant", json=body, headers=AUTH).status_code == 200  # connected
    assert fault_redis.process is not None
    fault_redis.process.send_signal(signal.SIGSTOP)
    try:
        answer = client.post("/v1/funding/grant", json=body, headers=AUTH)
    finally:
        fault_redis.process.send_signal(signal.SIGCONT)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    error = answer.get_json()["error"]
    assert error["code"] == "service_unavailable" and "may have been applied" in error["message"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # Redis runs what it was sent once it resumes
        balance = client.get("/v1/users/frozen-keyless/balance", headers=AUTH)
        if balance.status_code == 200 and balance.get_json()["balance"] == "$2.00":
            break
        time.sleep(0.05)
    assert balance.get_json()["balance"] == "$2.00", "the grant the 503 answered ran after all"
    mock_state(app).service.store.close()


def test_a_redis_that_refuses_connections_says_nothing_was_applied(fault_redis):
    # A timeout of a second: the bounds below then keep half a second of margin either side
    # for a loaded machine, and two timeouts (the bug) still fall outside them.
    app = create_app({"store": fault_redis.url + "?socket_timeout=1.0"})
    client = app.test_client()
    store = mock_state(app).service.store
    store.link.close()
    assert fault_redis.process is not None
    fault_redis.process.terminate()
    fault_redis.process.wait(timeout=10)
    answer = client.post("/v1/funding/grant", json={"external_user_id": "u", "amount": 1.0}, headers=AUTH)
    assert answer.status_code == 503
    assert answer.get_json()["error"]["message"] == StoreUnavailable.message  # nothing reached Redis
    store.close()
