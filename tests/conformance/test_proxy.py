"""``quota-conformance proxy`` in front of three kinds of upstream: the mock (clean), broken
doubles (one bug per rule family, each reported) and correct variants that differ from the
mock only where the docs are silent (no documented violation)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask, Response, stream_with_context
from flask import request as flask_request

from conformance.options import Profile
from conformance.proxy import traffic_rules
from conformance.proxy.cli import Proxy
from mockserver.web.state import mock_state

from .mutants import KEY, MUTANTS, base_app
from .variants import VARIANTS

AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Proxied:
    """A proxy in front of ``upstream``, the lines it printed, and a session through it."""

    def __init__(self, upstream: str, profile: Profile = Profile.DOCUMENTED) -> None:
        self.lines: list[str] = []
        self.proxy = Proxy(upstream, "127.0.0.1", 0, profile, say=self.lines.append).start()
        self.url = self.proxy.server.base_url
        self.session = requests.Session()

    def grant(self, user: str, amount: Any, key: str | None = None, **extra: Any) -> requests.Response:
        headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
        body = {"external_user_id": user, "amount": amount, **extra}
        return self.session.post(f"{self.url}/v1/funding/grant", json=body, headers=headers, timeout=10)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.url}{path}", headers=kwargs.pop("headers", AUTH), timeout=10, **kwargs)

    def report(self) -> dict[str, Any]:
        return self.session.get(f"{self.url}/_proxy/report", timeout=30).json()

    def statuses(self) -> dict[str, str]:
        return rule_statuses(self.report())

    def failed(self) -> set[str]:
        assert not [line for line in self.lines if "could not judge" in line]
        return {name for name, status in self.statuses().items() if status == "failed"}

    def close(self) -> None:
        self.session.close()
        self.proxy.stop()


def rule_statuses(report: dict[str, Any]) -> dict[str, str]:
    return {rule["id"]: rule["status"] for rule in report["rules"]}


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for rule in report["rules"] for f in rule["findings"]]


@pytest.fixture
def proxied(served: Callable[[Flask], str]) -> Iterator[Callable[..., Proxied]]:
    proxies: list[Proxied] = []

    def start(app: Flask, profile: Profile = Profile.DOCUMENTED) -> Proxied:
        proxies.append(Proxied(served(app), profile))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


def app_traffic(p: Proxied) -> None:
    """What an app's session might send: grants (a retry, a changed retry), reads, chats, errors."""
    assert 200 <= p.grant("alice", 1.00, key="order-1").status_code < 300  # 201, 202: variants of the success
    p.grant("alice", 1.00, key="order-1")  # the retry of a lost answer
    p.grant("alice", 2.50, key="order-1")  # the same key, another body
    p.get("/v1/users/alice/balance")
    p.grant("alice", 1.00, key="order-2")  # the same body under a new key: a new grant
    p.get("/v1/balance", params={"external_user_id": "alice"})
    p.grant("bob", 0.50)
    p.get("/v1/users/bob/balance")
    p.session.post(f"{p.url}/v1/users/alice/chat/completions", json=CHAT, headers=AUTH, timeout=10)
    p.get("/v1/users/alice/balance")
    p.get("/v1/me")
    p.get("/v1/packages", headers={})
    p.get("/v1/users/nobody/balance")  # 404
    p.session.post(f"{p.url}/v1/funding/grant", json={"external_user_id": "alice"}, headers=AUTH, timeout=10)
    p.get("/v1/me", headers={})  # 401


def test_in_front_of_the_mock_every_exchange_passes_and_answers_arrive_unchanged(proxied, served):
    upstream = base_app()
    p = proxied(upstream)
    direct = requests.get(f"{served(base_app())}/v1/packages", timeout=10)
    relayed = p.get("/v1/packages", headers={})
    assert (relayed.status_code, relayed.content) == (direct.status_code, direct.content)
    app_traffic(p)
    report = p.report()
    statuses = rule_statuses(report)
    assert "failed" not in statuses.values() and "warned" not in statuses.values(), p.lines
    # The stateful rules were exercised by the traffic, not merely skipped.
    passed = {name for name, status in statuses.items() if status == "passed"}
    for rule in ("grant.arithmetic", "errors.code", "schema.response", *traffic_rules.RULES):
        assert rule in passed, rule
    assert p.lines == []
    assert report["conformant"] is True
    grants = report["coverage"]["by_operation"]["grantUserBalance"]["documented"]
    assert grants["200"] >= 4 and grants["400"] == 1 and grants["422"] == 1 and grants["402"] == 0
    assert report["coverage"]["by_operation"]["getUserBalance"]["documented"]["404"] == 1
    # The upstream saw each request once, as sent: the pool paid exactly what was granted.
    assert mock_state(upstream).service.conservation().holds


# One bug per rule family; each must be reported under its rule.
BROKEN = {
    "money_string_from_float": "money.format",  # schema: "$1.0"
    "validation_errors_framework_shape": "errors.envelope",  # envelope
    "missing_fields_answer_422": "errors.code",  # status and error code
    "upsert_overwrites_balance": "grant.arithmetic",  # grant arithmetic
    "replay_lacks_duplicate_flag": "idem.replay",  # replay semantics
    "replay_gets_new_ledger_id": "idem.replay",
    "replay_credits_again": "idem.replay",  # credited once, as later reads show
    "reused_key_credits_new_amount": "idem.reuse_changed",
    "new_key_same_body_replayed": "idem.new_key_new_grant",
    "first_grant_credited_twice": "grant.readback",  # reads after grants
}


@pytest.mark.parametrize(("mutant", "rule"), BROKEN.items(), ids=list(BROKEN))
def test_a_broken_upstream_is_reported_under_the_rule_it_breaks(proxied, mutant, rule):
    p = proxied(MUTANTS[mutant].build(), Profile.STRICT)
    app_traffic(p)
    assert rule in p.failed(), p.lines
    assert any(f" {rule} " in line for line in p.lines)  # printed as it happened
    assert all(line.startswith("VIOLATION ") and "\n" not in line for line in p.lines)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_variant_differing_where_the_docs_are_silent_has_no_documented_violation(proxied, variant):
    p = proxied(VARIANTS[variant].build())
    app_traffic(p)
    assert p.failed() == set(), p.lines
    assert not any(line.startswith("VIOLATION failure") for line in p.lines)


def test_the_key_is_never_printed_or_reported(proxied, tmp_path):
    p = proxied(MUTANTS["validation_errors_framework_shape"].build())
    app_traffic(p)
    text = json.dumps(p.report()) + "\n".join(p.lines)
    assert KEY not in text and KEY[9:] not in text
    curls = [c for f in findings(p.report()) for c in f["curl"]]
    assert curls and all("$QUOTA_API_KEY" in c for c in curls if "Authorization" in c)


def test_server_sent_events_pass_through_as_they_arrive(proxied):
    """The upstream holds its stream after the first event until the client has read that
    event through the proxy: a proxy that buffered would never deliver it in time."""
    first_read = threading.Event()
    outcome: dict[str, bool] = {}
    app = Flask("sse")

    @app.get("/v1/events")
    def events() -> Response:
        def stream() -> Iterator[bytes]:
            yield b"data: one\n\n"
            outcome["client_read_first_event_live"] = first_read.wait(timeout=10)
            yield b"data: [DONE]\n\n"

        return Response(stream_with_context(stream()), mimetype="text/event-stream")

    p = proxied(app)
    response = p.session.get(f"{p.url}/v1/events", stream=True, timeout=20)
    chunks = response.iter_content(chunk_size=None)
    assert next(chunks) == b"data: one\n\n"
    first_read.set()
    assert b"".join(chunks) == b"data: [DONE]\n\n"
    assert outcome == {"client_read_first_event_live": True}


def test_a_streamed_chat_through_the_proxy_is_judged(proxied):
    p = proxied(base_app())
    response = p.session.post(
        f"{p.url}/v1/users/user_123/chat/completions",
        json={**CHAT, "stream": True},
        headers=AUTH,
        stream=True,
        timeout=10,
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert b"".join(response.iter_content(None)).endswith(b"data: [DONE]\n\n")
    coverage = p.report()["coverage"]["by_operation"]["createUserChatCompletion"]["documented"]
    assert coverage["200"] == 1


def test_an_upstream_that_hangs_up_leaves_the_client_without_an_answer_too(proxied):
    upstream = base_app()
    p = proxied(upstream)
    requests.post(f"{p.url}/_mock/faults", json={"operation_id": "grantUserBalance", "action": "drop"}, timeout=10)
    with pytest.raises(requests.ConnectionError):
        p.grant("carol", 1.00, key="dropped-1")
    retry = p.grant("carol", 1.00, key="dropped-1")
    assert retry.json()["duplicate"] is True
    assert p.report()["coverage"]["without_an_answer"] == 1
    assert p.failed() == set(), p.lines


def test_an_unreachable_upstream_answers_502(proxied):
    p = Proxied("http://127.0.0.1:9")  # discard port: nothing listens
    try:
        response = p.get("/v1/me")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "proxy_upstream_unreachable"
    finally:
        p.close()


@pytest.mark.parametrize(("app", "exit_code"), [("mock", 0), ("replay_credits_again", 1)])
def test_the_command_writes_its_reports_on_sigterm_and_exits_by_what_it_saw(served, tmp_path, app, exit_code):
    upstream = served(base_app() if app == "mock" else MUTANTS[app].build())
    json_path, junit_path = tmp_path / "proxy.json", tmp_path / "proxy.xml"
    command = [
        sys.executable,
        "-m",
        "conformance.cli",
        "proxy",
        "--upstream",
        upstream,
        "--port",
        "0",
        "--json",
        str(json_path),
        "--junit-xml",
        str(junit_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = process.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+) ->", banner).group(1)
        process.stdout.readline()  # the second banner line
        session = requests.Session()
        for _attempt in ("first", "retry"):  # a grant and its retry, then a read
            session.post(
                f"{url}/v1/funding/grant",
                json={"external_user_id": "dave", "amount": 1.00},
                headers={**AUTH, "Idempotency-Key": "cli-1"},
                timeout=10,
            )
        session.get(f"{url}/v1/users/dave/balance", headers=AUTH, timeout=10)
        assert session.get(f"{url}/_proxy/report", timeout=30).json()["coverage"]["exchanges"] == 3
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == exit_code, output
    report = json.loads(json_path.read_text())
    assert report["conformant"] is (exit_code == 0) and "coverage" in report
    assert junit_path.read_text().startswith("<?xml")
    assert KEY not in output + json_path.read_text() + junit_path.read_text()
    if exit_code:
        assert re.search(r"^VIOLATION failure idem\.replay ", output, re.M), output
    assert "RESULT: " in output


def test_a_key_echoed_by_the_upstream_is_not_printed_either(proxied):
    app = Flask("echo")

    @app.get("/v1/me")
    def me() -> Response:  # an error page quoting the header it refused, in no envelope
        return Response(f"refused {flask_request.headers['Authorization']}", status=401, mimetype="text/plain")

    p = proxied(app)
    assert p.get("/v1/me").status_code == 401
    assert "errors.envelope" in p.failed()
    text = json.dumps(p.report()) + "\n".join(p.lines)
    assert "refused Bearer $QUOTA_API_KEY" in text and KEY not in text


def test_answers_leave_without_waiting_for_the_clients_ack(proxied, monkeypatch):
    # With Nagle's algorithm on, the body written after the headers waited for the client's
    # delayed ACK: 40 ms a request (benchmarks/proxy_overhead.py measured 44 ms against 1 ms
    # direct). Each connection the proxy accepts must have TCP_NODELAY set.
    from conformance.proxy import forwarding

    seen: list[int] = []
    handle = forwarding._Handler.handle

    def recording(self: Any) -> None:
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        handle(self)

    monkeypatch.setattr(forwarding._Handler, "handle", recording)
    p = proxied(base_app())
    assert p.grant("alice", 1.00, key="order-1").status_code == 200
    assert seen and all(seen), seen
