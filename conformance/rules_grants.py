"""Rules of a grant's money: exact for every amount, and read back the same on both balance
endpoints and in both forms. (The grant pool's rule is in rules_pool.py; what a grant request
may omit and what it is refused for, in rules_grant_requests.py.)

Every grant goes to a user this run created (``PREFIX`` + random token), and every amount is
whole cents, drawn by Hypothesis within the rule's share of the budget.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mockserver.domain.money import MICROS_PER_CENT

from .actions import Balance, grant, query_balance, shown, user_balance
from .engine import Exchange
from .properties import Probe, usd
from .registry import Cost, Needs, probe
from .rule_helpers import DESCRIPTIONS, GRANT_OP, money_of
from .strategies import FLOAT_PRONE_CENTS, float_prone_within

CENT = MICROS_PER_CENT
# The most the first example of grant.arithmetic spends on its float-prone amounts.
FLOAT_PRONE_CAP = 340 * CENT


def amounts(p: Probe, most_grants: int = 3, cap: int = 50 * CENT) -> list[int]:
    """Whole-cent amounts, one to ``most_grants`` of them, within the rule's share (cents)."""
    left = min(p.wallet.left, cap * most_grants)
    if left < CENT:
        return []
    drawn = [p.draw_cents(cap) for _ in range(p.draw(st.integers(1, most_grants)))]
    chosen: list[int] = []
    for cents in drawn:  # all drawn first: what fits the share is decided afterwards
        if (sum(chosen) + cents) * CENT <= left:
            chosen.append(cents)
    return chosen or [1]


@probe("grant.arithmetic", sources=(
    "seed: Fund and manage balances for your app users.",
    "seed: amount number Dollar amount to add (e.g., 0.50 for $0.50)",
    "seed: Add balance to an app user's account from your grant pool.",
    'seed: "amount_granted": "$0.50", "balance_before": "$5.00", "balance_after": "$5.50"',
), elements=(GRANT_OP, "#/components/schemas/GrantResponse"),
    cost=Cost(CENT, 6, most=FLOAT_PRONE_CAP + 20 * CENT, sharp=FLOAT_PRONE_CAP),
    needs=(Needs.WRITES,), stage=1)
def grant_arithmetic(p: Probe) -> None:
    """Every grant answers 200 with amount_granted equal to the amount asked for and
    balance_after = balance_before + amount_granted, exact to the cent for every amount
    (float-prone ones such as 0.29 and 2.01 included), first and later grants to one user alike."""
    if p.first:
        cents = float_prone_within(min(p.wallet.left, FLOAT_PRONE_CAP)) or [1]
        description: Any = "quota-conformance: exact money"
    else:
        cents = amounts(p, most_grants=4, cap=60 * CENT)
        description = p.draw(DESCRIPTIONS)
    user = p.t.guard.new_user()
    previous: Exchange | None = None
    for c in cents:
        exchange = grant(p, user, c, description=description)
        if not _check_grant(p, exchange, c, previous):
            return
        previous = exchange


def _check_grant(p: Probe, exchange: Exchange, cents: int, previous: Exchange | None) -> bool:
    asked = usd(cents * CENT)
    if not p.require(exchange.ok, [exchange], "A valid grant was refused",
                     f"a grant of {asked} answered {exchange.status} {exchange.error_code or ''}".strip()):
        return False
    granted, before, after = (money_of(exchange, f) for f in ("amount_granted", "balance_before", "balance_after"))
    steps = [e for e in (previous, exchange) if e is not None]
    problems = []
    if granted != cents:
        problems.append(f"amount_granted is {shown(exchange.field('amount_granted'))} for a grant of {asked}")
    if before is None or after is None or after != before + cents:
        problems.append(f"balance_before {shown(exchange.field('balance_before'))} + {asked} should be "
                        f"balance_after, which is {shown(exchange.field('balance_after'))}")
    if previous is not None and exchange.field("balance_before") != previous.field("balance_after"):
        problems.append(f"balance_before is {shown(exchange.field('balance_before'))}, but the user's previous "
                        f"grant left balance_after {shown(previous.field('balance_after'))}")
    if exchange.field("duplicate") is not False:
        problems.append(f"a new grant answered duplicate {shown(exchange.field('duplicate'))}")
    return p.require(not problems, steps, "The grant's money is not exact", "; ".join(problems))


@probe("grant.readback", sources=(
    "seed: GET /v1/users/:id/balance Check an app user's dollar balance.",
    "seed: When external_user_id is provided, it returns that user's balance instead.",
), elements=("#/paths/~1v1~1users~1{external_user_id}~1balance/get", "#/paths/~1v1~1balance/get"),
    choices=("#/components/schemas/UserBalance/properties/balance_microdollars",),
    cost=Cost(2 * CENT, 4, most=60 * CENT, sharp=30 * CENT), needs=(Needs.WRITES,), stage=3)
def grant_readback(p: Probe) -> None:
    """Right after grants, GET /v1/users/{id}/balance and GET /v1/balance?external_user_id=
    both answer that user with the last balance_after; the display and micro-dollar forms agree."""
    if p.first:  # a cent, then a float-prone amount: a cache right once is not right twice
        fits = [c for c in FLOAT_PRONE_CENTS if c > 6 and (c + 1) * CENT <= p.wallet.left]
        cents = [1, *fits[:1]] if fits else [1, 1]
    else:
        cents = amounts(p, most_grants=3, cap=20 * CENT)
    user = p.t.guard.new_user()
    total = 0
    for c in cents:  # read after every grant: a cache right once is not right twice
        last = grant(p, user, c)
        if not last.ok:
            p.skip(f"a grant answered {last.status} (see grant.arithmetic)")
        expected = money_of(last, "balance_after")
        if expected is None:
            p.skip("the grant's balance_after is not a money string (see money.format)")
        total += c
        for read, how in ((user_balance(p, user), "GET /v1/users/{id}/balance"),
                          (query_balance(p, user), "GET /v1/balance?external_user_id=")):
            _check_read(p, last, read, how, user, expected, total * CENT)


def _check_read(p: Probe, last: Exchange, read: Balance, how: str, user: str, expected: int,
                total_micros: int) -> None:
    problems = []
    if not read.exchange.ok:
        problems.append(f"answered {read.exchange.status} {read.exchange.error_code or ''}".strip())
    else:
        # No echo at all is schema.response's to judge (the docs show none on the query form).
        if read.exchange.field("external_user_id") not in (user, None):
            problems.append(f"external_user_id is {shown(read.exchange.field('external_user_id'))}, not the user")
        if read.cents != expected:
            problems.append(f"balance is {read.shown}; the grant left balance_after "
                            f"{shown(last.field('balance_after'))}")
        if read.micros is not None and read.micros != total_micros:
            problems.append(f"balance_microdollars is {read.micros}; the user was granted {total_micros}")
    p.require(not problems, [last, read.exchange], f"{how} does not show the grant", "; ".join(problems))
