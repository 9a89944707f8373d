"""The hardening issue's reproductions (issue 11), sent over a real socket to a running mock.

Each reproduction resets the mock, sends what the issue's table sent (raw bytes where a
client library would tidy them up), checks the answer, and checks through the control API
that a refused request changed nothing. The same functions run against quota-mock on
granian (memory store; Redis with two workers) and against the in-process waitress server.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

KEY = "sk-quota-your-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
GRANT = "/v1/funding/grant"
LIMIT = 64 * 1024
UNSUPPORTED = "unsupported_media_type"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
# Fault rules live in the worker process that received them (and a reset clears only its
# own): the rules added here slow down, by a millisecond, an operation no check calls.
HARMLESS_RULE = {"operation_id": "getUserBalance", "action": "latency", "latency_ms": 1, "count": 1}


def raw_exchange(base_url: str, request: bytes, timeout: float = 15) -> bytes:
    """Send raw bytes (ending the request with ``Connection: close``); everything answered."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        # The server may answer 413 and close before the whole body is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def statuses(answer: bytes) -> list[int]:
    """The status of every HTTP response in ``answer`` (pipelined answers included)."""
    return [int(line.split(b" ")[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"", *, chunked: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: mock", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        if "Content-Length" not in headers:
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload


def reset(base_url: str) -> None:
    requests.post(base_url + "/_mock/reset", timeout=10).raise_for_status()


def state_of(base_url: str) -> dict[str, Any]:
    """What a refused request must leave as it was: money, ledger, keys, clock, and the fault
    rules of the worker that answers (the only one, but with ``--workers``)."""
    state = requests.get(base_url + "/_mock/state", timeout=10).json()
    faults = [
        rule
        for rule in requests.get(base_url + "/_mock/faults", timeout=10).json()["faults"]
        if rule["operation_id"] != HARMLESS_RULE["operation_id"]
    ]
    return {
        "pool": state["pool"],
        "users": state["users"],
        "ledger_size": state["ledger_size"],
        "keys": state["idempotency_key_count"],
        "clock_offset": round(state["clock"]["offset_seconds"]),
        "faults": faults,
    }


def views_answer(base_url: str) -> None:
    """Every view still renders: nothing stored can break one."""
    for path in ("/_mock/", "/_mock/dashboard.json", "/_mock/state", "/_mock/ledger", "/_mock/users"):
        assert requests.get(base_url + path, timeout=10).status_code == 200, path
    assert requests.get(base_url + "/v1/me", headers=AUTH, timeout=10).status_code == 200


def refused(base_url: str, method: str, path: str, body: bytes, status: int, *, headers: dict[str, str] | None = None,
            mentions: str = "", code: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Send one request; it must be refused with ``status`` in the envelope and change nothing."""
    before = state_of(base_url)
    response = requests.request(
        method, base_url + path, data=body, headers={**AUTH, **JSON, **(headers or {})}, timeout=15
    )
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert mentions in error["message"], error
    if code is not None:
        assert error["code"] == code
    assert state_of(base_url) == before
    return error


def grant_body(**extra: Any) -> dict[str, Any]:
    return {"external_user_id": "hostile_user", "amount": 1, **extra}


# --- the table's rows -------------------------------------------------------------------


def integral_floats_are_integers(base_url: str) -> None:
    reset(base_url)
    for path in ("/v1/users/user_123/chat/completions", "/v1/chat/completions"):
        for stream in (False, True):
            whole = requests.post(base_url + path, json={**CHAT, "max_tokens": 3, "stream": stream}, headers=AUTH)
            for spelling in ("3.0", "3.00", "0.3e1"):
                body = json.dumps({**CHAT, "stream": stream})[:-1] + f', "max_tokens": {spelling}}}'
                answer = requests.post(base_url + path, data=body, headers={**AUTH, **JSON}, timeout=15)
                assert answer.status_code == 200, (path, stream, spelling, answer.text[:200])
                if stream:
                    assert answer.text.rstrip().endswith("data: [DONE]")
                else:
                    assert answer.json()["choices"] == whole.json()["choices"]
    five = b'{"external_user_id": "f", "amount": 5.0}'
    granted = requests.post(base_url + GRANT, data=five, headers={**AUTH, **JSON}, timeout=15)
    assert granted.status_code == 200 and granted.json()["amount_granted"] == "$5.00"
    added = requests.post(base_url + "/_mock/faults", json={**HARMLESS_RULE, "latency_ms": 1.0, "count": 2.0})
    assert added.status_code == 201 and added.json()["remaining"] == 2 and added.json()["latency_ms"] == 1
    reset(base_url)


def lone_surrogates_are_refused(base_url: str) -> None:
    reset(base_url)
    cases = {
        "description": b'{"external_user_id": "u", "amount": 1, "description": "x\\udfffy"}',
        "external_user_id": b'{"external_user_id": "u\\ud800", "amount": 1}',
        "\\udfff": b'{"external_user_id": "u", "amount": 1, "\\udfff": 1}',
    }
    for field, body in cases.items():
        refused(base_url, "POST", GRANT, body, 400, mentions=f"'{field}'")
    seed = b'{"users": {"a\\udfff": 1}}'
    refused(base_url, "POST", "/_mock/seed", seed, 400, mentions="surrogate")
    views_answer(base_url)


def deep_nesting_and_huge_numbers_are_refused(base_url: str) -> None:
    reset(base_url)
    deep_array = b'{"external_user_id": "u", "amount": 1, "x": ' + b"[" * 600 + b"]" * 600 + b"}"
    deep_object = (
        b'{"external_user_id": "u", "amount": 1, "description": ' + b'{"a": ' * 400 + b"1" + b"}" * 400 + b"}"
    )
    refused(base_url, "POST", GRANT, deep_array, 400, mentions="nested too deeply")
    refused(base_url, "POST", GRANT, deep_object, 400, mentions="nested too deeply")
    huge = b'{"external_user_id": "u", "amount": 1, "x": 1e1000000}'
    refused(base_url, "POST", GRANT, huge, 400, mentions="out of range")
    views_answer(base_url)


def clock_moves_out_of_range_are_refused(base_url: str) -> None:
    reset(base_url)
    for seconds in ("253402300800", "-1e12", "1e300"):
        refused(base_url, "POST", "/_mock/clock", f'{{"advance_seconds": {seconds}}}'.encode(), 400,
                mentions="advance_seconds")  # fmt: skip
    # Allowed moves cannot add up past the years a view can show either: from now, two moves
    # back of 31 years each would pass 1970.
    assert requests.post(base_url + "/_mock/clock", json={"advance_seconds": -999_999_999}).status_code == 200
    moved = requests.post(base_url + "/_mock/clock", json={"advance_seconds": -999_999_999})
    assert moved.status_code == 400 and "1970" in moved.json()["error"]["message"]
    views_answer(base_url)
    reset(base_url)


def bodies_past_the_limit_are_413_however_they_come(base_url: str) -> None:
    reset(base_url)
    before = state_of(base_url)
    padded = json.dumps(grant_body()).encode() + b" " * (LIMIT + 100) + b"garbage"
    headers = {**AUTH, **JSON}
    chunked = raw_exchange(base_url, http_request("POST", GRANT, headers, padded, chunked=True))
    assert statuses(chunked)[:1] == [413], chunked[:300]
    bomb = gzip.compress(json.dumps(grant_body(description="x" * (LIMIT * 4))).encode())
    assert len(bomb) < LIMIT
    zipped = requests.post(base_url + GRANT, data=bomb, headers={**headers, "Content-Encoding": "gzip"}, timeout=15)
    assert zipped.status_code == 413 and zipped.json()["error"]["code"] == "payload_too_large"
    # A Content-Length past the limit is refused (before the body is read, where the server
    # hands the request over before its body: granian)...
    claimed = raw_exchange(base_url, http_request("POST", GRANT, headers, padded[: LIMIT + 1]))
    assert statuses(claimed)[:1] == [413]
    # ...and one that claims less leaves the rest to be read as a request of its own.
    body = json.dumps(grant_body()).encode()
    short = raw_exchange(base_url, http_request("POST", GRANT, {**headers, "Content-Length": "10"}, body))
    assert statuses(short)[:1] == [400]
    assert state_of(base_url) == before
    fine = requests.post(base_url + GRANT, data=gzip.compress(body), headers={**headers, "Content-Encoding": "gzip"})
    assert fine.status_code == 200 and fine.json()["balance_after"] == "$1.00"


def the_control_api_refuses_other_sites(base_url: str) -> None:
    reset(base_url)
    evil = {"Origin": "http://evil.example"}
    for path, body in (("/_mock/reset", b""), ("/_mock/seed", b'{"pool": 1}'), ("/_mock/clock", b'{"reset": true}')):
        refused(base_url, "POST", path, body, 403, headers=evil, code="cross_site_refused")
    rule = json.dumps({"operation_id": "getMe", "action": "fail", "status": 503}).encode()
    refused(base_url, "POST", "/_mock/faults", rule, 403, headers={"Sec-Fetch-Site": "cross-site"})
    refused(base_url, "POST", "/_mock/dashboard/reset", b"", 403, headers={"Origin": "null"})
    # What a cross-site form or text/plain post looks like, even without an Origin: not JSON.
    yaml_keys = b"api_keys: [sk-quota-attacker-key-00000000]"
    refused(base_url, "POST", "/_mock/seed", yaml_keys, 415, headers={"Content-Type": "text/plain"})
    form = b"operation_id=getMe&action=fail&status=503"
    refused(base_url, "POST", "/_mock/faults", form, 415, headers={"Content-Type": "application/x-www-form-urlencoded"})
    for method in ("GET", "OPTIONS"):
        answer = requests.request(
            method,
            base_url + "/_mock/state",
            headers={**evil, "Access-Control-Request-Method": "POST"} if method == "OPTIONS" else evil,
            timeout=10,
        )
        assert "Access-Control-Allow-Origin" not in answer.headers
    # The public API is still open to every origin.
    public = requests.get(base_url + "/v1/packages", headers=evil, timeout=10)
    assert public.headers["Access-Control-Allow-Origin"] == "*"
    # And the mock's own users still get through: curl, and the dashboard's own form.
    own = {"Origin": base_url}
    assert requests.post(base_url + "/_mock/dashboard/reset", headers=own, allow_redirects=False).status_code == 303
    assert requests.post(base_url + "/_mock/faults", json=HARMLESS_RULE).status_code == 201
    reset(base_url)


def non_ascii_header_values(base_url: str, *, passes_bytes: bool) -> None:
    """UTF-8 header bytes are read as UTF-8 where the server passes them on (waitress); where it
    does not (granian hands the app an empty value) the answer is a 400 naming the header."""
    reset(base_url)
    requests.post(base_url + GRANT, json={"external_user_id": "café", "amount": 1}, headers=AUTH).raise_for_status()
    body = json.dumps(CHAT).encode()
    headers = {**AUTH, **JSON, "X-External-User-ID": "café"}
    answer = raw_exchange(base_url, http_request("POST", "/v1/chat/completions", headers, body))
    _, _, payload = answer.partition(b"\r\n\r\n")
    if passes_bytes:
        assert statuses(answer) == [200], answer[:300]
        assert json.loads(payload)["quota"]["billing_mode"] == "user"
    else:
        assert statuses(answer) == [400], answer[:300]
        assert "X-External-User-ID" in json.loads(payload)["error"]["message"]
    reset(base_url)


def duplicate_fields_are_refused(base_url: str) -> None:
    reset(base_url)
    body = b'{"external_user_id":"u","amount":0.01,"amount":2}'
    refused(base_url, "POST", GRANT, body, 400, mentions="'amount'")


def bodies_that_are_not_json_are_415(base_url: str) -> None:
    reset(base_url)
    body = json.dumps(grant_body()).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"):
        refused(base_url, "POST", GRANT, body, 415, headers={"Content-Type": content_type}, code=UNSUPPORTED)
    before = state_of(base_url)
    bare = raw_exchange(base_url, http_request("POST", GRANT, AUTH, body))
    assert statuses(bare) == [415] and state_of(base_url) == before
    utf8 = {"Content-Type": "application/json; charset=UTF-8"}
    fine = requests.post(base_url + GRANT, data=body, headers={**AUTH, **utf8}, timeout=15)
    assert fine.status_code == 200


REPRODUCTIONS: dict[str, Callable[[str], None]] = {
    "integral float": integral_floats_are_integers,
    "lone surrogate": lone_surrogates_are_refused,
    "deep nesting, huge exponent": deep_nesting_and_huge_numbers_are_refused,
    "clock overflow": clock_moves_out_of_range_are_refused,
    "chunked, compressed, lying length": bodies_past_the_limit_are_413_however_they_come,
    "cross-site control": the_control_api_refuses_other_sites,
    "duplicate JSON keys": duplicate_fields_are_refused,
    "other content types": bodies_that_are_not_json_are_415,
}
