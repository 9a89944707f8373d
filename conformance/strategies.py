"""The inputs the rules vary, as Hypothesis strategies: grant amounts, user-id shapes, the
optional fields of a grant, near-miss API keys. Every amount is a whole number of cents within
the contract's limits and within what the rule may still spend."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from mockserver.domain.money import MICROS_PER_CENT

# Amounts a binary float gets wrong somewhere, granted in turn to one user, cheapest first: a
# float sum truncated a cent short (0.06 + 0.01), int(x * 100) (0.29, the smallest), $1 sent
# as the JSON integer 1 (read as cents by some), and 2.01, the smallest amount that
# int(x * 1_000_000) gets wrong (and more than a dollar).
FLOAT_PRONE_CENTS = (6, 1, 29, 100, 201)
# Characters a user id may hold that break naive routing, quoting or storage.
AWKWARD_CHARACTERS = (" ", "%", "@", "/", "+", "?", "#", "&", "=", ":", ";", ",", "é", "ß", "中", "😀", "'", '"',
                      "~", "%2F", "%20", "..")


def amount_json(cents: int) -> float | int:
    """A whole-cent amount as the JSON number a client sends: ``0.29`` (a float prints as the
    shortest decimal that reads back to it), or ``1`` for whole dollars."""
    if cents % 100 == 0:
        return cents // 100
    return float(Decimal(cents) / 100)


def micros_of_cents(cents: int) -> int:
    return cents * MICROS_PER_CENT


def float_prone_within(most_micros: int) -> list[int]:
    """The float-prone amounts (in cents) that fit in ``most_micros`` together, cheapest first."""
    chosen, spent = [], 0
    for cents in FLOAT_PRONE_CENTS:
        if spent + micros_of_cents(cents) <= most_micros:
            chosen.append(cents)
            spent += micros_of_cents(cents)
    return chosen


def user_suffixes() -> st.SearchStrategy[str]:
    """The part of a user id after the run's prefix and random token: any shape the contract
    allows (1 to 255 characters, no control character), awkward characters favoured."""
    plain = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
    awkward = st.lists(st.sampled_from(AWKWARD_CHARACTERS), min_size=1, max_size=4).map("".join)
    return st.one_of(awkward, st.tuples(awkward, plain).map("".join))


def with_case_flipped(text: str) -> str | None:
    """``text`` with its first cased letter flipped, or None when nothing has a case."""
    for i, ch in enumerate(text):
        if ch.lower() != ch.upper():
            flipped = ch.lower() if ch.isupper() else ch.upper()
            if len(flipped) == 1:
                return text[:i] + flipped + text[i + 1:]
    return None


@st.composite
def near_miss_keys(draw: st.DrawFn, key: str) -> tuple[str, str]:
    """A key that is not ``key`` but close to it, with a label saying how: one character
    changed, a prefix, extra characters, a letter's case flipped."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    kind = draw(st.sampled_from(("one character changed", "a prefix", "extra characters", "case flipped")))
    if kind == "one character changed":
        i = draw(st.integers(0, len(key) - 1))
        ch = draw(st.sampled_from(alphabet).filter(lambda c: c != key[i]))
        return kind, key[:i] + ch + key[i + 1:]
    if kind == "a prefix":
        n = draw(st.integers(max(1, len(key) // 2), len(key) - 1))
        return kind, key[:n]
    if kind == "extra characters":
        extra = draw(st.text(alphabet, min_size=1, max_size=4))
        return kind, key + extra
    flipped = with_case_flipped(key[::-1])
    if flipped is None:
        return "extra characters", key + "0"
    return kind, flipped[::-1]


