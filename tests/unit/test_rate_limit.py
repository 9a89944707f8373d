"""The rate limiter: parsing "100/min", fixed windows on the mock clock, per caller."""

import pytest

from mockserver.domain.rate_limit import MAX_TRACKED_CALLERS, RateLimit, RateLimiter, RateLimitError


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [("100/min", 100, 60), ("10/s", 10, 1), ("5000/hour", 5000, 3600), ("20/30s", 20, 30), (" 7 / 2 mins ", 7, 120)],
)
def test_parse_accepts_the_usual_spellings(text, limit, window):
    assert RateLimit.parse(text) == RateLimit(limit, window)


@pytest.mark.parametrize("text", ["", "100", "min", "0/min", "10/ms", "10/0s", "-1/min", "1e3/min", "10/fortnight"])
def test_parse_refuses_with_a_hint(text):
    with pytest.raises(RateLimitError, match="rate limit"):
        RateLimit.parse(text)


def test_a_window_allows_the_limit_then_refuses_until_it_resets():
    limiter = RateLimiter(RateLimit(2, 60))
    first, second, third = (limiter.hit("k", 120.5) for _ in range(3))
    assert (first.allowed, first.remaining) == (True, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    assert (third.allowed, third.remaining, third.reset_at, third.retry_after) == (False, 0, 180, 60)
    assert third.headers() == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "180",
        "Retry-After": "60",
    }
    assert "Retry-After" not in first.headers()
    assert limiter.hit("k", 180.0).allowed  # the next window


def test_callers_are_counted_apart_and_reset_forgets_them():
    limiter = RateLimiter(RateLimit(1, 60))
    assert limiter.hit("a", 0).allowed and limiter.hit("b", 0).allowed
    assert not limiter.hit("a", 1).allowed
    limiter.reset()
    assert limiter.hit("a", 2).allowed


def test_memory_is_bounded_however_many_callers():
    limiter = RateLimiter(RateLimit(1, 60))
    for n in range(MAX_TRACKED_CALLERS + 10):
        limiter.hit(f"c{n}", 0)
    assert len(limiter._windows) == MAX_TRACKED_CALLERS
