"""Exact money: integer micro-dollars inside, dollar strings only at the edge.

Binary floats never touch an amount. JSON numbers reach this module as ``Decimal`` (the
web layer parses request bodies with ``parse_float=Decimal``) or ``int``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import MAX_SAFE_MICRODOLLARS

MICROS_PER_DOLLAR = 1_000_000
MICROS_PER_CENT = 10_000


class MoneyError(ValueError):
    """An amount that cannot be represented exactly in micro-dollars."""


def dollars_to_micros(amount: Decimal | int | str) -> int:
    """The kit's one reading of a dollar amount, in micro-dollars, refusing anything inexact.

    ``Decimal("0.5")``, ``1``, ``"0.50"`` and ``"$5.50"`` are fine (text as people write it,
    a leading ``$`` allowed); ``0.1`` as a float, ``"0.0000001"``, NaN and infinities are
    refused, because each would silently round, and so is anything beyond what both stores
    hold exactly (:data:`MAX_SAFE_MICRODOLLARS`, about $9 billion). The sign is kept: whether
    a negative amount makes sense is for the caller to say.
    """
    if isinstance(amount, (bool, float)):
        raise MoneyError(f"amount must be an exact decimal, not {type(amount).__name__}")
    if isinstance(amount, str):
        amount = _dollar_text(amount)
    try:
        value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    except InvalidOperation as exc:
        raise MoneyError(f"not a dollar amount: {amount!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not a finite dollar amount: {amount!r}")
    micros = value * MICROS_PER_DOLLAR
    if micros != micros.to_integral_value():
        raise MoneyError(f"{amount} has more precision than one micro-dollar")
    if abs(micros) > MAX_SAFE_MICRODOLLARS:
        raise MoneyError(f"{amount} is beyond the largest amount the mock holds, {format_money(MAX_SAFE_MICRODOLLARS)}")
    return int(micros)


def parse_dollar_string(text: str) -> int:
    """The inverse of :func:`format_money`: ``"$5.50"`` back to micro-dollars."""
    return dollars_to_micros(text)


def _dollar_text(text: str) -> str:
    cleaned = text.strip()
    if cleaned.startswith("$"):
        cleaned = cleaned[1:]
    if not cleaned or (cleaned[0] in "+-" and cleaned[1:2] == "$") or "_" in cleaned:
        raise MoneyError(f"not a dollar amount: {text!r}")
    return cleaned


def format_money(micros: int) -> str:
    """Display micro-dollars as the contract's Money string, truncated toward zero.

    Truncation (not rounding) keeps grant arithmetic exact on the display form: adding whole
    cents to a balance never changes its sub-cent remainder, so the displayed ``balance_after``
    is always the displayed ``balance_before`` plus the grant.
    """
    sign = "-" if micros < 0 else ""
    cents = abs(micros) // MICROS_PER_CENT
    return f"{sign}${cents // 100}.{cents % 100:02d}"


def micros_to_decimal(micros: int) -> Decimal:
    """The exact dollar value of an amount of micro-dollars."""
    return Decimal(micros) / MICROS_PER_DOLLAR
