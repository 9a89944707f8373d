"""What several rule modules share: the grant operation, the descriptions a grant may carry,
a grant's money fields, requests sent together, and the developer balance (the grant pool)
watched around what a probe does.

No rule is registered here: importing this module registers nothing, so the rule modules'
order (conformance/runner.py) alone decides the registry's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from hypothesis import strategies as st

from mockserver.contract import DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import ABSENT, Balance, developer_balance, display_cents, pool_micros
from .checks import parse_money
from .engine import Exchange
from .properties import Probe, usd
from .results import Status

T = TypeVar("T")
CENT = MICROS_PER_CENT
GRANT_OP = "#/paths/~1v1~1funding~1grant/post"
# Descriptions plainly within the docs ("Notes stored in the ledger", no length given): no
# control character (many stores refuse NUL) and at most 250 characters (half the contract's
# own 500; a VARCHAR(255) is a correct store). Past that is the contract's choice (plain.py).
_NOTE_TEXT = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
DESCRIPTIONS = st.one_of(st.just(ABSENT), st.text(_NOTE_TEXT, min_size=1, max_size=40).filter(str.strip),
                         st.text(_NOTE_TEXT, min_size=200, max_size=250),
                         st.sampled_from(["Welcome bonus", "crédit 🎁"]))


def money_of(exchange: Exchange, field: str) -> int | None:
    return parse_money(exchange.field(field))


def concurrently(n: int, act: Callable[[int], T]) -> list[T]:
    """Run ``act(i)`` for i < n in threads released together, and return once every one has
    finished. No thread is abandoned: a request still waiting out a 429's Retry-After (up to
    --max-retry-after) lands later, after the probe's reads, so a verdict taken without it
    judges a state the deployment had not finished making. Each act is bounded by the session's
    own timeouts and the run's time limit. Were any act to raise, the first exception is raised
    here, once all have finished: a request that failed in flight is what it is when sent alone
    (the rule undecided, or the run stopped), never a missing answer to judge."""
    barrier = threading.Barrier(n)
    answers: list[T | BaseException] = [RuntimeError("not run")] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            answers[i] = act(i)
        except BaseException as exc:  # raised by the caller's thread below
            answers[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers  # type: ignore[return-value]  # none is an exception (checked above)


# -- the grant pool ---------------------------------------------------------------------------


# Before a difference in the pool becomes a failure, the pool must stay put this long: the
# reads either side of an action are milliseconds apart, and another client of the account
# spending during the action itself slips between them. One spending every 0.25 s moves the
# pool within this window all but about once in 400 runs.
QUIET_SECONDS = 1.5
QUIET_READS = 6
# ... and at least this many times as long as the action took, read to read (up to
# QUIET_MOST_SECONDS): a client spending now and then (every few seconds) lands inside a slow
# action (a deployment far from the runner, several chats) about as often as the action is long,
# and a quiet window shorter than its period then sees nothing. A client spending at rate r hits
# an action of span W and then stays quiet for QUIET_FACTOR * W with chance r*W*exp(-r*QUIET_FACTOR*W),
# at most 1 / (e * QUIET_FACTOR) (2%) whatever r is; a broken deployment waits once per rule.
QUIET_FACTOR = 20
QUIET_MOST_SECONDS = 30.0
# ... and at least this long when the pool did not move at all where the action should have
# moved it: the signature of a cached balance (a gateway's or a store's cache with a time to
# live, which the docs do not forbid), whose reads all answer one old copy. A cache younger than
# this expires during the wait, the pool then changes, and nothing is judged on a stale read.
STALE_READ_SECONDS = 5.0


class Stillness:
    """Whether the pool was still around an action, for judging a difference in it: true when
    the two reads each side agree and, asked only once a rule has a difference in hand (so a
    passing rule pays nothing), the pool then stays at its last value for :data:`QUIET_SECONDS`,
    or :data:`QUIET_FACTOR` times as long as the action took when that is longer.
    Rules therefore test it after the difference: ``if moved != expected and still``. A pool
    that did not move at all must stay put for :data:`STALE_READ_SECONDS` at least.

    A quiet pool after the action does not prove that nobody spent during it: another client
    that stops (a job finishing) leaves exactly that trace. So the first time a rule's example
    finds the pool quiet, the example is run again from the start (:meth:`Probe.remeasure`), and
    only a wrong move seen again is judged."""

    def __init__(self, p: Probe, agreed: bool, last: int | None, sleep: Callable[[float], None] = time.sleep,
                 acted_seconds: float = 0.0, moved: int | None = None) -> None:
        self._p, self._agreed, self._last, self._sleep, self._moved = p, agreed, last, sleep, moved
        least = STALE_READ_SECONDS if moved == 0 else QUIET_SECONDS
        self._quiet = min(QUIET_MOST_SECONDS, max(least, QUIET_FACTOR * acted_seconds))
        self._verdict: bool | None = None

    def __bool__(self) -> bool:
        if self._verdict is None:
            already = self._already_failed()
            self._verdict = self._agreed and (already or self._stays_quiet())
            if self._verdict and not already:
                moved = "" if self._moved is None else f" by {signed_change(self._moved)}"
                self._p.remeasure(f"it moved{moved} during the action")
        return self._verdict

    def _already_failed(self) -> bool:
        """The rule has a failure on record already (found quiet then): one wait per rule is
        enough to tell a broken deployment from a busy account."""
        return self._p.t.results.records[self._p.rule.name].status is Status.FAILED

    def _stays_quiet(self) -> bool:
        reads = max(QUIET_READS, round(QUIET_READS * self._quiet / QUIET_SECONDS))
        for _ in range(reads):
            self._sleep(self._quiet / reads)
            if pool_micros(developer_balance(self._p)) != self._last:
                return False
        return True


def watch_pool(p: Probe, act: Callable[[], T]) -> tuple[int | None, Stillness, list[Exchange], T]:
    """Run ``act`` between pairs of developer-balance reads: how far the pool moved (micro-
    dollars, None when unreadable), and whether it was still meanwhile (:class:`Stillness`;
    if not, another client is spending, and a difference proves nothing)."""
    first = developer_balance(p)
    started = time.monotonic()  # from the read before the action to the read after it: the
    before = [first, developer_balance(p)]  # span in which another client's spend goes unseen
    result = act()
    after = [developer_balance(p)]
    acted = time.monotonic() - started
    after.append(developer_balance(p))
    for read in (*before, *after):
        if not pool_forms_agree(p, read):
            break
    values = [pool_micros(b) for b in (*before, *after)]
    exchanges = [b.exchange for b in (*before, *after)]
    if None in values:
        return None, Stillness(p, True, None), exchanges, result
    b1, b2, a1, a2 = values
    assert b1 is not None and b2 is not None and a1 is not None and a2 is not None
    return a1 - b2, Stillness(p, b1 == b2 and a1 == a2, a2, acted_seconds=acted, moved=a1 - b2), exchanges, result


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
