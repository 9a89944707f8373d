"""What several rule modules share: the grant operation, the descriptions a grant may carry,
a grant's money fields, requests sent together, and the developer balance (the grant pool)
watched around what a probe does.

No rule is registered here: importing this module registers nothing, so the rule modules'
order (conformance/runner.py) alone decides the registry's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from hypothesis import strategies as st

from mockserver.contract import DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import ABSENT, Balance, developer_balance, display_cents
from .checks import parse_money
from .engine import Exchange
from .properties import Probe, usd

T = TypeVar("T")
CENT = MICROS_PER_CENT
GRANT_OP = "#/paths/~1v1~1funding~1grant/post"
DESCRIPTIONS = st.one_of(st.just(ABSENT), st.just(""), st.text(max_size=40),
                         st.text(min_size=400, max_size=500), st.sampled_from(["Welcome bonus", "crédit 🎁"]))


def money_of(exchange: Exchange, field: str) -> int | None:
    return parse_money(exchange.field(field))


def concurrently(n: int, act: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``act(i)`` for i < n in threads released together; exceptions are kept, not lost."""
    barrier = threading.Barrier(n)
    answers: list[T | BaseException] = [RuntimeError("not run")] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            answers[i] = act(i)
        except BaseException as exc:  # reported by the caller
            answers[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


# -- the grant pool ---------------------------------------------------------------------------


def pool_micros(balance: Balance) -> int | None:
    if not balance.ok:
        return None
    return balance.micros if balance.micros is not None else balance.cents * CENT  # type: ignore[operator]


def watch_pool(p: Probe, act: Callable[[], T]) -> tuple[int | None, bool, list[Exchange], T]:
    """Run ``act`` between pairs of developer-balance reads: how far the pool moved (micro-
    dollars, None when unreadable), and whether it was still meanwhile (two reads on each side
    agree; if not, another client is spending, and a difference proves nothing)."""
    before = [developer_balance(p) for _ in range(2)]
    result = act()
    after = [developer_balance(p) for _ in range(2)]
    for read in (*before, *after):
        if not pool_forms_agree(p, read):
            break
    values = [pool_micros(b) for b in (*before, *after)]
    exchanges = [b.exchange for b in (*before, *after)]
    if None in values:
        return None, True, exchanges, result
    b1, b2, a1, a2 = values
    assert b1 is not None and b2 is not None and a1 is not None and a2 is not None
    return a1 - b2, b1 == b2 and a1 == a2, exchanges, result


def pool_forms_agree(p: Probe, read: Balance) -> bool:
    """A developer-balance read whose display form is not its micro-dollars (truncated or
    rounded to the cent) is a failure of the rule reading it: the docs show both forms."""
    if read.micros is None or read.cents is None or read.cents in display_cents(read.micros):
        return True
    p.fail([read.exchange], "The developer balance's two forms disagree",
           f"balance {read.shown} but balance_microdollars {read.micros}", DOCUMENTED)
    return False


def signed_change(micros: int) -> str:
    """A move of money for messages, with its sign: ``+$0.01 (+10000 micro-dollars)``."""
    return f"{'+' if micros >= 0 else ''}{usd(micros)} ({micros:+d} micro-dollars)"
