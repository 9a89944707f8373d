"""Fault rules: checked on entry, applied per operation, ended by count or mock time."""

import pytest

from mockserver.domain.faults import MAX_LATENCY_MS, FaultBook, FaultError


def test_a_fail_rule_hits_the_next_request_by_default_then_ends():
    book = FaultBook()
    rule = book.add(operation_id="getMe", action="fail", status=503, now=0)
    assert rule.remaining == 1
    assert book.take("getBalance", 1).fail_status is None  # another operation is untouched
    assert book.take("getMe", 1).fail_status == 503
    assert book.take("getMe", 2).fail_status is None
    assert book.rules(2) == []


def test_count_and_ttl_whichever_comes_first():
    book = FaultBook()
    book.add(operation_id="getMe", action="fail", status=503, count=3, now=0)
    book.add(operation_id="getMe", action="drop", ttl_seconds=10, now=0)
    assert [book.take("getMe", t).fail_status for t in (1, 2, 3, 4)] == [503, 503, 503, None]
    assert book.take("getMe", 9.9).drop is True
    assert book.take("getMe", 10).drop is False  # expired on the clock
    assert book.rules(10) == []


def test_latencies_add_up_and_the_oldest_failure_wins():
    book = FaultBook()
    book.add(operation_id="op", action="latency", latency_ms=100, now=0)
    book.add(operation_id="op", action="latency", latency_ms=250, now=0)
    book.add(operation_id="op", action="fail", status=429, now=0)
    book.add(operation_id="op", action="fail", status=503, now=0)
    first = book.take("op", 1)
    assert (first.latency_ms, first.fail_status) == (350, 429)
    assert book.take("op", 1).fail_status == 503
    assert book.take("op", 1).latency_ms == 350  # latency rules last until removed


def test_remove_and_clear():
    book = FaultBook()
    a = book.add(operation_id="op", action="drop", now=0)
    book.add(operation_id="op", action="drop", now=0)
    assert book.remove(a.id) and not book.remove(a.id)
    book.clear()
    assert book.rules(0) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "explode"}, "action must be one of"),
        ({"action": "fail"}, "needs a status"),
        ({"action": "drop", "status": 503}, "status applies to 'fail'"),
        ({"action": "latency", "latency_ms": MAX_LATENCY_MS + 1}, "latency_ms must be"),
        ({"action": "latency", "latency_ms": 0}, "latency_ms must be"),
        ({"action": "drop", "latency_ms": 5}, "latency_ms applies"),
        ({"action": "drop", "count": 0}, "count must be"),
        ({"action": "drop", "ttl_seconds": 0}, "ttl_seconds must be"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(fields, message):
    with pytest.raises(FaultError, match=message):
        FaultBook().add(operation_id="op", now=0, **fields)
