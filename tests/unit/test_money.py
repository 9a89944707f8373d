from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.domain.money import MoneyError, dollars_to_micros, format_money, parse_dollar_string

cents = st.integers(min_value=1, max_value=1_000_000)
micros = st.integers(min_value=0, max_value=10**15)


def test_ten_grants_of_ten_cents_make_exactly_one_dollar():
    total = sum(dollars_to_micros(Decimal("0.10")) for _ in range(10))
    assert total == 1_000_000
    assert format_money(total) == "$1.00"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("0.50"), 500_000),
        (Decimal("0.5"), 500_000),
        (1, 1_000_000),
        ("0.000001", 1),
        (Decimal("1E+2"), 100_000_000),
    ],
)
def test_exact_amounts_convert(amount, expected):
    assert dollars_to_micros(amount) == expected


@pytest.mark.parametrize("amount", [0.1, "0.0000001", "NaN", "Infinity", "abc", True, Decimal("1E-7")])
def test_inexact_or_non_numbers_are_refused(amount):
    with pytest.raises(MoneyError):
        dollars_to_micros(amount)


def test_display_truncates_toward_zero():
    assert format_money(5_004_999) == "$5.00"
    assert format_money(0) == "$0.00"
    assert format_money(1) == "$0.00"
    assert format_money(123_456_789_012) == "$123456.78"


@given(cents)
def test_cent_amounts_round_trip_through_the_display_form(n):
    amount = Decimal(n) / 100
    assert parse_dollar_string(format_money(dollars_to_micros(amount))) == dollars_to_micros(amount)


@given(balance=micros, grant=cents)
def test_display_arithmetic_is_exact_for_whole_cent_grants(balance, grant):
    # The contract's promise: balance_after == balance_before + amount_granted on the strings.
    grant_micros = grant * 10_000
    before = parse_dollar_string(format_money(balance))
    after = parse_dollar_string(format_money(balance + grant_micros))
    assert after == before + grant_micros


@given(st.lists(cents, min_size=1, max_size=50))
def test_sums_of_cents_are_exact(amounts):
    total = sum(dollars_to_micros(Decimal(a) / 100) for a in amounts)
    assert total == sum(amounts) * 10_000


def test_amounts_beyond_what_the_stores_hold_are_refused():
    from mockserver.domain.errors import MAX_SAFE_MICRODOLLARS

    assert dollars_to_micros(format_money(MAX_SAFE_MICRODOLLARS)) <= MAX_SAFE_MICRODOLLARS
    for too_big in ("1e400", Decimal("9007199254.740992"), "-9007199255"):
        with pytest.raises(MoneyError, match="largest amount"):
            dollars_to_micros(too_big)
