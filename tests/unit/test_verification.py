"""assert_called's matching and near-miss report, on records as /_mock/requests shows them."""

from decimal import Decimal

import pytest

from mockserver.verification import JournalRequest, verify


def record(n: int, operation_id: str | None = "grantUserBalance", key: str | None = "k", body: str = "", status=200):
    return JournalRequest(
        id=n,
        method="POST",
        path="/v1/funding/grant",
        query="",
        operation_id=operation_id,
        status=status,
        idempotency="new" if key else "none",
        idempotency_key=key,
        problem=None,
        dropped=False,
        request={
            "headers": {"Idempotency-Key": key} if key else {},
            "body": body,
            "size": len(body),
            "truncated": False,
        },
        response={"body": '{"duplicate":false}', "size": 19, "truncated": False},
    )


def test_matches_by_operation_and_field_mapping():
    records = [record(1, key="a"), record(2, key="b"), record(3, "getMe", key=None)]
    assert [r["id"] for r in verify(records, "grantUserBalance", 2, None)] == [1, 2]
    assert [r["id"] for r in verify(records, "grantUserBalance", 1, {"idempotency_key": "b"})] == [2]
    assert verify(records, "getUserBalance", 0, None) == []


def test_fields_reach_into_headers_and_parsed_bodies():
    one = record(1, body='{"external_user_id": "u", "amount": 0.10}')
    assert one.json == {"external_user_id": "u", "amount": Decimal("0.10")}
    assert one.response_json == {"duplicate": False}
    where = {
        "request.headers.Idempotency-Key": "k",
        "json.amount": 0.1,  # a float in a test means its decimal text
        "response_json.duplicate": False,
        "status": lambda status: status < 300,
    }
    assert verify([one], "grantUserBalance", 1, where) == [one]


def test_the_report_names_each_difference_closest_first():
    records = [record(1, "getMe", key=None), record(2, key="other"), record(3, key="other", status=402)]
    with pytest.raises(AssertionError) as failure:
        verify(records, "grantUserBalance", None, {"idempotency_key": "mine", "status": 200})
    lines = str(failure.value).splitlines()
    assert lines[0] == (
        "expected grantUserBalance to be called at least once where idempotency_key='mine', status=200, "
        "but it was called 0 time(s)."
    )
    assert lines[1] == "Closest calls that did not match (3 of 3):"
    # One difference first; then two, the same operation before another operation's call.
    assert [line.split()[0] for line in lines[2:] if line.startswith("  #")] == ["#2", "#3", "#1"]
    assert lines[3] == "      idempotency_key: expected 'mine', got 'other'"
    assert lines[5:7] == ["      idempotency_key: expected 'mine', got 'other'", "      status: expected 200, got 402"]
    assert lines[8] == "      operation_id: expected 'grantUserBalance', got 'getMe'"


def test_too_many_calls_lists_the_matching_ones():
    with pytest.raises(AssertionError, match=r"called 0 times, but it was called 2 time\(s\)\.\nMatching calls \(2\)"):
        verify([record(1), record(2)], "grantUserBalance", 0, None)


def test_a_predicate_that_fails_or_raises_is_a_reason():
    def small_amount(r):
        return r.json["amount"] < 1

    with pytest.raises(AssertionError) as failure:
        verify([record(1, body="not json")], "grantUserBalance", 1, small_amount)
    assert "where small_amount raised TypeError" in str(failure.value)
    with pytest.raises(AssertionError, match=r"where <lambda at test_verification.py:\d+> returned false"):
        verify([record(1)], None, 1, lambda r: r["status"] == 500)


def test_an_empty_journal_says_so():
    with pytest.raises(AssertionError, match="journal is empty"):
        verify([], "grantUserBalance", None, None)
