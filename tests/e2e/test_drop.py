"""Commit then drop, on a real socket, under both servers the mock runs on.

The client must see the connection closed with no HTTP response at all (not a status line,
not a partial body), after the grant was applied; a retry with the same Idempotency-Key is
then a replay, credited once.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from mockserver import create_app
from mockserver.server import MockServer

from .conftest import start_quota_mock

AUTH = {"Authorization": "Bearer sk-quota-your-api-key"}


@pytest.fixture(params=["waitress", "granian"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "waitress":
        with MockServer(create_app()) as server:
            yield server.base_url
        return
    live = start_quota_mock("--quiet")
    try:
        yield live.base_url
    finally:
        live.stop()


def _connect(base_url: str) -> socket.socket:
    url = urlsplit(base_url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _grant_request(key: str) -> bytes:
    body = json.dumps({"external_user_id": "user_123", "amount": 1}).encode()
    head = (
        "POST /v1/funding/grant HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _get_on(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: mock\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_commit_then_drop_closes_without_a_response_and_the_retry_is_a_replay(base_url):
    rule = requests.post(base_url + "/_mock/faults", json={"operation_id": "grantUserBalance", "action": "drop"})
    assert rule.status_code == 201
    # Another client's idle keep-alive connection from the same address must survive.
    bystander = _connect(base_url)
    assert _get_on(bystander, "/v1/packages").startswith(b"HTTP/1.1 200")

    with _connect(base_url) as client:
        client.sendall(_grant_request("drop-1"))
        assert _read_all(client) == b""  # closed, and not one byte of a response

    balance = requests.get(base_url + "/v1/users/user_123/balance", headers=AUTH, timeout=5).json()
    assert balance["balance"] == "$6.00"  # the grant was applied before the hang-up
    retry = requests.post(
        base_url + "/v1/funding/grant",
        json={"external_user_id": "user_123", "amount": 1},
        headers={**AUTH, "Idempotency-Key": "drop-1"},
        timeout=5,
    )
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True and retry.headers["Idempotent-Replayed"] == "true"
    assert requests.get(base_url + "/v1/users/user_123/balance", headers=AUTH, timeout=5).json()["balance"] == "$6.00"
    assert requests.get(base_url + "/_mock/faults", timeout=5).json()["faults"] == []  # used up

    with bystander:
        assert _get_on(bystander, "/v1/packages").startswith(b"HTTP/1.1 200")


def test_a_python_client_sees_a_connection_error(base_url):
    requests.post(base_url + "/_mock/faults", json={"operation_id": "getMe", "action": "drop"})
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "/v1/me", headers=AUTH, timeout=5)
    assert requests.get(base_url + "/v1/me", headers=AUTH, timeout=5).status_code == 200


def test_a_connection_opened_meanwhile_that_sent_nothing_is_not_the_one_dropped():
    """A pooled client (Node's fetch) opens connections ahead of need: one that has sent no
    request yet cannot be the request's, however recently it was opened."""
    live = start_quota_mock("--quiet", "--grant-delay", "0.6")
    try:
        drop = {"operation_id": "grantUserBalance", "action": "drop"}
        assert requests.post(live.base_url + "/_mock/faults", json=drop, timeout=5).status_code == 201
        with _connect(live.base_url) as client:
            client.sendall(_grant_request("drop-pooled"))
            time.sleep(0.2)  # the grant is held in flight; a fresh connection opens meanwhile
            with _connect(live.base_url) as spare:
                assert _read_all(client) == b""  # this request's connection: closed, no answer
                assert _get_on(spare, "/v1/packages").startswith(b"HTTP/1.1 200")  # the spare lives on
    finally:
        live.stop()
