"""How to test an SDK against quota-mock with the ``quota_mock`` pytest fixture.

The fixture comes with the kit (a pytest plugin): install ``quota-contract-kit`` in the
environment of your SDK's tests and use it; nothing to import or configure. The mock runs
in-process on a free port, and every test starts from the same seeded state.
"""

import requests


class TinyQuotaClient:
    """Stands in for your SDK: what matters is that it talks HTTP to ``base_url``."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def grant(self, user: str, amount: float, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self.session.post(
            f"{self.base_url}/v1/funding/grant",
            json={"external_user_id": user, "amount": amount},
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def balance(self, user: str) -> str:
        response = self.session.get(f"{self.base_url}/v1/users/{user}/balance", timeout=10)
        response.raise_for_status()
        return response.json()["balance"]


def test_a_grant_raises_the_balance(quota_mock):
    client = TinyQuotaClient(quota_mock.base_url, quota_mock.api_key)
    client.grant("user_123", 0.50)
    assert client.balance("user_123") == "$5.50"
    assert quota_mock.balance("user_123") == "$5.50"  # the fixture reads state directly too


def test_each_test_starts_from_the_seed(quota_mock):
    assert quota_mock.balance("user_123") == "$5.00"


def test_retries_with_an_idempotency_key_are_safe(quota_mock):
    client = TinyQuotaClient(quota_mock.base_url, quota_mock.api_key)
    first = client.grant("user_123", 1.00, idempotency_key="order-42")
    retry = client.grant("user_123", 1.00, idempotency_key="order-42")
    assert retry["duplicate"] and retry["ledger_id"] == first["ledger_id"]
    assert quota_mock.balance("user_123") == "$6.00"


def test_set_up_your_own_state(quota_mock):
    quota_mock.seed({"users": {"vip": "250.00"}})
    quota_mock.set_balance("broke", "0.00")
    client = TinyQuotaClient(quota_mock.base_url, quota_mock.api_key)
    assert client.balance("vip") == "$250.00"
    chat = requests.post(
        f"{quota_mock.base_url}/v1/users/broke/chat/completions",
        headers=quota_mock.headers,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert chat.status_code == 402 and chat.json()["error"]["code"] == "insufficient_balance"


def test_move_the_clock_to_expire_idempotency_keys(quota_mock):
    client = TinyQuotaClient(quota_mock.base_url, quota_mock.api_key)
    client.grant("user_123", 1.00, idempotency_key="daily-bonus")
    quota_mock.advance_clock(24 * 3600 + 1)  # keys live 24 hours
    assert not client.grant("user_123", 1.00, idempotency_key="daily-bonus")["duplicate"]
    assert quota_mock.conservation().holds
