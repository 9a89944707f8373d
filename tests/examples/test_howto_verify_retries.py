"""How to prove that an SDK's retry reuses its Idempotency-Key, with the request journal.

The scenario every payments SDK must survive: the grant is applied, then the connection
drops before the answer arrives ("commit then drop"). The SDK cannot tell whether the money
moved, so it retries; only if the retry carries the *same* Idempotency-Key does the API
replay the grant instead of crediting it twice.

``quota_mock.add_fault("grantUserBalance", "drop")`` scripts the drop. The journal then
shows what the SDK actually sent: ``quota_mock.requests(...)`` lists the calls and
``quota_mock.assert_called(...)`` checks them, with a near-miss report when they differ.
"""

import uuid

import pytest
import requests


class RetryingQuotaClient:
    """Stands in for your SDK: one Idempotency-Key per grant, reused by every retry."""

    def __init__(self, base_url: str, api_key: str, attempts: int = 3, key_per_attempt: bool = False) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.attempts = attempts
        self.key_per_attempt = key_per_attempt  # the bug this example catches

    def grant(self, user: str, amount: str) -> dict:
        key = f"grant-{uuid.uuid4()}"
        for attempt in range(self.attempts):
            if self.key_per_attempt:
                key = f"grant-{uuid.uuid4()}"
            try:
                response = self.session.post(
                    f"{self.base_url}/v1/funding/grant",
                    data=f'{{"external_user_id": "{user}", "amount": {amount}}}',
                    headers={"Content-Type": "application/json", "Idempotency-Key": key},
                    timeout=10,
                )
            except requests.ConnectionError:
                if attempt + 1 == self.attempts:
                    raise
                continue  # the answer was lost, not necessarily the grant: retry
            response.raise_for_status()
            return response.json()
        raise AssertionError("unreachable")


def test_the_retry_after_a_dropped_answer_reuses_the_key(quota_mock):
    quota_mock.add_fault("grantUserBalance", "drop")  # apply the next grant, then hang up
    client = RetryingQuotaClient(quota_mock.base_url, quota_mock.api_key)

    result = client.grant("user_123", "1.00")

    # The journal shows both attempts: the first applied and dropped, the retry replayed.
    first, retry = quota_mock.assert_called("grantUserBalance", times=2)
    assert first["dropped"] and first["idempotency"] == "new"
    assert retry["idempotency"] == "replayed"
    assert retry["idempotency_key"] == first["idempotency_key"]
    assert retry.json == first.json  # the same body, so the same request
    # And so the user was credited once, with the answer of the first attempt.
    assert result["duplicate"] is True
    assert quota_mock.balance("user_123") == "$6.00"


def test_the_same_check_written_as_one_assertion(quota_mock):
    quota_mock.add_fault("grantUserBalance", "drop")
    RetryingQuotaClient(quota_mock.base_url, quota_mock.api_key).grant("user_123", "1.00")
    key = quota_mock.requests("grantUserBalance")[0]["idempotency_key"]
    quota_mock.assert_called("grantUserBalance", times=2, where={"idempotency_key": key, "json.amount": 1})


def test_a_client_that_changes_the_key_is_caught_with_a_near_miss_report(quota_mock):
    quota_mock.add_fault("grantUserBalance", "drop")
    buggy = RetryingQuotaClient(quota_mock.base_url, quota_mock.api_key, key_per_attempt=True)
    buggy.grant("user_123", "1.00")
    assert quota_mock.balance("user_123") == "$7.00"  # credited twice: the bug's cost

    first_key = quota_mock.requests("grantUserBalance")[0]["idempotency_key"]
    with pytest.raises(AssertionError) as failure:
        quota_mock.assert_called("grantUserBalance", times=2, where={"idempotency_key": first_key})
    message = str(failure.value)
    # The report names the call that did not match, and why: the key differs.
    assert "but it was called 1 time(s)" in message
    assert "Closest calls that did not match (1 of 1)" in message
    assert f"idempotency_key: expected {first_key!r}, got 'grant-" in message
