"""``quota-mock --store redis://… --workers 2`` over real sockets: the money and idempotency
guarantees hold across worker processes exactly as they do across threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ..races import AUTH, RACE_CREDIT, assert_credited_once, race_one_key


def worker_pids(parent_pid: int) -> list[int]:
    children = Path(f"/proc/{parent_pid}/task/{parent_pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.fixture
def two_workers(redis_server, prefix, quota_mock_on):
    def start(*extra: str):
        live = quota_mock_on("--store", redis_server.url, "--store-prefix", prefix, "--workers", "2", *extra)
        if Path("/proc").exists():
            assert len(worker_pids(live.process.pid)) == 2
        return live

    return start


def state(live) -> dict:
    return requests.get(live.base_url + "/_mock/state", timeout=10).json()


def test_64_concurrent_grants_with_one_key_credit_exactly_once(two_workers):
    live = two_workers("--grant-delay", "0.3")
    assert_credited_once(race_one_key(live.base_url))
    after = state(live)
    assert after["users"]["racer"] == RACE_CREDIT
    assert after["conservation"]["holds"]


def test_1000_concurrent_grants_with_distinct_keys_conserve_money(two_workers):
    live = two_workers("--threads", "16")
    url = live.base_url + "/v1/funding/grant"
    local = threading.local()

    def send(i: int) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = {"external_user_id": f"user-{i % 37}", "amount": 0.01 * (1 + i % 5)}
        return session.post(url, json=body, headers={**AUTH, "Idempotency-Key": f"k-{i}"}, timeout=30).status_code

    workers = worker_pids(live.process.pid) if Path("/proc").exists() else []
    ticks_before = [cpu_ticks(pid) for pid in workers]
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(send, range(1000)))
    assert statuses == [200] * 1000
    # Both workers served: each spent CPU time on the run.
    assert all(cpu_ticks(pid) > before for pid, before in zip(workers, ticks_before, strict=True))
    after = state(live)
    assert after["conservation"]["holds"]
    assert after["ledger_size"] == 3 + 1000 and after["idempotency_key_count"] == 1000
    expected_total = sum(10_000 * (1 + i % 5) for i in range(1000))
    assert sum(b for u, b in after["users"].items() if u.startswith("user-")) == expected_total


def test_concurrent_chat_completions_drain_a_user_but_never_below_zero(two_workers):
    live = two_workers()
    start = 2_000
    requests.put(live.base_url + "/_mock/users/spender/balance", json={"balance": "0.002"}, timeout=10)
    url = live.base_url + "/v1/users/spender/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "drain " * 200}], "max_tokens": 16}

    def send(_: int) -> requests.Response:
        with requests.Session() as session:
            return session.post(url, json=body, headers=AUTH, timeout=30)

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(send, range(80)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 402} and 402 in statuses and 200 in statuses
    after = state(live)
    balance = after["users"]["spender"]
    assert balance >= 0
    ledger = requests.get(live.base_url + "/_mock/ledger?limit=1000", timeout=10).json()["entries"]
    charges = [e for e in ledger if e["kind"] == "charge" and e["account"] == "spender"]
    assert len(charges) == sum(r.status_code == 200 for r in responses)
    assert sum(e["amount_microdollars"] for e in charges) == start - balance
    assert after["conservation"]["holds"]



@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_ctrl_c_stops_busy_workers_within_the_kill_timeout(redis_server, prefix, attempt):
    # Ctrl-C in a terminal signals the whole process group: the server and each worker. A
    # worker waits for it on an event its signal handler sets (granian); it sometimes never
    # woke, and Ctrl-C hung for good.
    import os
    import signal
    import subprocess
    import time

    from mockserver.server import WORKERS_KILL_TIMEOUT_SECONDS, free_port

    from ..e2e.conftest import LiveMock, quota_mock_command, wait_until_serving

    port = free_port()
    command = [*quota_mock_command(), "--quiet", "--port", str(port), "--store", redis_server.url,
               "--store-prefix", f"{prefix}{attempt}:", "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_serving(LiveMock(process, f"http://127.0.0.1:{port}"), time.monotonic() + 15)
        url = f"http://127.0.0.1:{port}/v1/funding/grant"

        def send(i: int) -> int:
            body = {"external_user_id": f"stopper-{i % 7}", "amount": 0.01}
            headers = {**AUTH, "Idempotency-Key": f"s{attempt}-{i}"}
            return requests.post(url, json=body, headers=headers, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(send, range(400))) <= {200, 201}
        workers = worker_pids(process.pid)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # as the terminal sends it
        try:
            process.wait(timeout=WORKERS_KILL_TIMEOUT_SECONDS + 5)
        except subprocess.TimeoutExpired:
            pytest.fail("quota-mock did not stop on Ctrl-C")
        assert time.monotonic() - started < WORKERS_KILL_TIMEOUT_SECONDS + 2
        assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_seed_posted_to_one_worker_is_served_by_both(two_workers):
    """API keys, prices and billing mode live in each worker process: a seed posted to the one
    that happens to take the request is adopted by the other before the answer comes back."""
    live = two_workers()
    seed = {"api_keys": ["sk-quota-rotated-key"], "developer": {"billing_mode": "developer"}}
    assert requests.post(live.base_url + "/_mock/seed", json=seed, timeout=10).status_code == 200
    new_key = {"Authorization": "Bearer sk-quota-rotated-key"}
    answers = []
    for _ in range(40):  # a new connection each: both workers take some
        with requests.Session() as fresh:
            answers.append((fresh.get(live.base_url + "/v1/balance", headers=new_key, timeout=10),
                            fresh.get(live.base_url + "/v1/balance", headers=AUTH, timeout=10).status_code))
    assert {(a.status_code, a.json()["billing_mode"], old) for a, old in answers} == {(200, "developer", 401)}
