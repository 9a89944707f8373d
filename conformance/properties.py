"""Rules as properties: each probe is run as a Hypothesis property (its inputs drawn, one
example after another) within the money the run's plan gives it, and records verdicts
through a :class:`Probe`.

The plan walks the probes in order. Each gets what its first example costs while the budget
lasts; a probe the budget cannot cover is reported skipped with the budget that would run it
("needs --budget >= $X"). What is left then buys further examples, in the same order.
"""

from __future__ import annotations

import contextlib
import copy
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, Unsatisfiable

from mockserver.domain.money import MICROS_PER_CENT, MICROS_PER_DOLLAR

from .engine import Exchange, Target
from .registry import Needs, Rule
from .safety import LimitReached, RequestRefused, potential_credit

T = TypeVar("T")
# The part of the budget the plan leaves to the schema-driven phase (generated grants).
FUZZ_SHARE_PERCENT = 5
# What a rule's sharpest inputs get in the plan's first pass over them (see plan()).
SHARP_STEP = 30 * MICROS_PER_CENT


class Skip(Exception):
    """The rule cannot run here; the message says why (it is reported skipped)."""


class NeedsBudget(Skip):
    """The rule's share of the budget is spent."""


class Remeasure(Exception):
    """The example saw the grant pool move by the wrong amount while the account then stayed
    quiet: another client may still have spent during the action and stopped since (a nightly
    job finishing, a user closing a tab). The example is run again, with the same draws (see
    :class:`_Draws`), before a difference becomes a failure (see :data:`REMEASURES`)."""


# How many times an example whose pool moved wrongly is run again before it is judged: a
# broken deployment moves it wrongly every time; another client's spend has to land inside the
# action and then fall silent once more, the same rare coincidence twice.
REMEASURES = 1


def usd(micros: int) -> str:
    """Micro-dollars as dollars for a message: ``$0.29``, or ``$0.000053`` below the cent."""
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    if micros % MICROS_PER_CENT == 0:
        return f"{sign}${Decimal(micros) / MICROS_PER_DOLLAR:.2f}"
    return f"{sign}${Decimal(micros) / MICROS_PER_DOLLAR:.6f}"


@dataclass
class Wallet:
    """What one rule may still grant, in micro-dollars (the guard holds the run's total)."""

    allowance: int
    spent: int = 0

    @property
    def left(self) -> int:
        return self.allowance - self.spent

    def take(self, micros: int) -> None:
        if micros > self.left:
            raise NeedsBudget(f"its share of the budget is spent ({usd(self.allowance)})")
        self.spent += micros


class Probe:
    """One example of a rule's property: the target, the rule's wallet, Hypothesis' draw, and
    the verdicts it records (under its own rule or one it ``records`` too)."""

    def __init__(self, t: Target, rule: Rule, wallet: Wallet, draw: Callable[[st.SearchStrategy[T]], T],
                 index: int, first: bool, attempt: int = 0) -> None:
        self.t = t
        self.rule = rule
        self.wallet = wallet
        self._draw = draw
        self.index = index  # how many examples ran before this one
        # The example where a rule puts its sharpest inputs (Hypothesis' simplest, run first).
        self.first = first
        # How many times this example ran before, its pool having moved wrongly (Remeasure).
        self.attempt = attempt
        self._rate_limited_before = t.guard.stats.rate_limited

    def draw(self, strategy: st.SearchStrategy[T]) -> T:
        """Draw from ``strategy``; its shape must not depend on what the run has spent so far
        (Hypothesis replays draws): bounds that do go through :meth:`draw_int`."""
        return self._draw(strategy)

    def draw_int(self, low: int, high: int) -> int:
        """An integer in [low, high] where the bounds may depend on the run's state (what is
        left to spend): drawn from a fixed range, then folded into [low, high]."""
        if high <= low:
            return low
        return low + self._draw(st.integers(0, 1 << 20)) % (high - low + 1)

    def draw_cents(self, most_micros: int) -> int:
        """A whole-cent amount the contract allows, at most ``most_micros`` (and at least a cent)."""
        limits = self.t.facts.amount_limits
        step = max(1, limits.step // MICROS_PER_CENT)
        high = max(1, min(limits.maximum, most_micros) // MICROS_PER_CENT)
        cents = self.draw_int(1, high)
        return max(step, cents - cents % step)

    # -- verdicts ------------------------------------------------------------------------

    def _name(self, rule: str | None) -> str:
        name = rule or self.rule.name
        if name != self.rule.name and name not in self.rule.records:
            raise ValueError(f"{self.rule.name} does not record {name}")
        return name

    def passed(self, rule: str | None = None) -> None:
        self.t.results.ran(self._name(rule))

    def fail(self, exchanges: list[Exchange], title: str, message: str, provenance: str | None = None,
             rule: str | None = None) -> None:
        name = self._name(rule)
        stats = self.t.guard.stats
        if stats.rate_limited > self._rate_limited_before and not stats.persistently_rate_limited:
            # A request of this example was still refused for now (429, or 503 with Retry-After)
            # after the retries: whatever went wrong after it may be that refusal's doing, so
            # nothing is judged.
            self.undecided(f"not judged: the target answered 429 or 503 (retry later) during this check ({title})",
                           rule)
            return
        self.t.violation(name, exchanges, title, message, provenance or self.t.registry_provenance(name))

    def require(self, ok: bool, exchanges: list[Exchange], title: str, message: str,
                provenance: str | None = None, rule: str | None = None) -> bool:
        if ok:
            self.passed(rule)
        else:
            self.fail(exchanges, title, message, provenance, rule)
        return ok

    def undecided(self, reason: str, rule: str | None = None) -> None:
        self.t.results.undecided(self._name(rule), reason)

    def skip(self, reason: str) -> NoReturn:
        raise Skip(reason)

    def remeasure(self, what: str) -> None:
        """Before a wrong move of the grant pool is judged: run the example again while
        :data:`REMEASURES` allows (raises :class:`Remeasure`), else return and let it be judged."""
        if self.attempt < REMEASURES:
            raise Remeasure(what)

    # -- money -----------------------------------------------------------------------------

    def spend(self, amount: Any) -> None:
        """Count what a grant of ``amount`` could credit against this rule's share."""
        self.wallet.take(potential_credit(amount))

    def affordable(self, amount: Any) -> bool:
        return potential_credit(amount) <= self.wallet.left


def blocked(rule: Rule, t: Target) -> str | None:
    """Why ``rule`` cannot run with these options, naming the option that enables it."""
    options = t.options
    if Needs.WRITES in rule.needs and options.read_only:
        return "read-only mode sends no grants or chats; run without --read-only to enable"
    if Needs.CHAT in rule.needs and not options.chat:
        return "chats disabled by --no-chat; drop it to enable"
    if Needs.SECOND_KEY in rule.needs and not options.second_api_key:
        return "needs a second API key of the same account: --second-api-key"
    if Needs.RETENTION in rule.needs and not (options.retention_check_seconds or options.state_file):
        return "needs --retention-check SECONDS (replays within this run) or --state-file PATH (the next run)"
    return None


def plan(rules: list[Rule], t: Target) -> dict[str, int]:
    """Each runnable rule's share of the budget, in micro-dollars; the others are reported
    skipped here with the reason (the option, or the budget, that would run them).

    First pass, in priority order: each rule's first example. Then, in the same order, what a
    rule's sharpest first example can put to use (``Cost.sharp``). Last, what is left, to the
    rules wanting least more first."""
    remaining = t.guard.budget.remaining
    shares: dict[str, int] = {}
    needed = 0
    for rule in rules:
        reason = blocked(rule, t)
        if reason is not None:
            _skip_all(t, rule, reason)
            continue
        first, least = rule.cost.per_example, rule.cost.least
        needed += first
        if least > remaining:
            _skip_all(t, rule, f"needs --budget >= {usd(needed - first + least)}")
            continue
        shares[rule.name] = min(first, remaining)
        remaining -= shares[rule.name]
    # What is left buys further examples, bar a part kept for the schema-driven phase's grants.
    if t.options.fuzz:
        remaining -= min(remaining, t.guard.budget.total * FUZZ_SHARE_PERCENT // 100)
    # The sharpest inputs next (float-prone amounts, every pair of look-alike ids), in priority
    # order, before any rule's further examples: first up to SHARP_STEP each, so that one rule's
    # costly inputs (grant.arithmetic's dollars) leave the later rules their cheap ones, then the rest.
    for step in (SHARP_STEP, None):
        for rule in rules:
            if rule.name in shares and rule.cost.sharp is not None:
                want = rule.cost.sharp if step is None else min(rule.cost.sharp, step)
                more = max(0, min(want - shares[rule.name], remaining))
                shares[rule.name] += more
                remaining -= more
    # Smallest wants first: many rules served in full rather than one rule's long tail.
    for rule in sorted((r for r in rules if r.name in shares), key=lambda r: r.cost.full - shares[r.name]):
        if rule.name in shares:
            more = max(0, min(rule.cost.full - shares[rule.name], remaining))
            shares[rule.name] += more
            remaining -= more
    return shares


def run_rule(t: Target, rule: Rule, share: int) -> None:
    """Run ``rule``'s probe as a property: as many examples as its share and its cost allow."""
    assert rule.probe is not None
    per = rule.cost.per_example
    examples = rule.cost.examples if per == 0 else max(1, min(rule.cost.examples, share // per))
    wallet = Wallet(share)
    count = [0]
    stopped: list[BaseException] = []

    @seed(t.options.seed ^ zlib.crc32(rule.name.encode()))
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        if stopped:
            return
        # Every example starts with the same draw from a vast range: Hypothesis never finds the
        # space exhausted after a first example that draws nothing else, and what an example
        # draws later (which may depend on what is left to spend) hangs off its own prefix.
        nonce = data.draw(st.integers(0, 1 << 62), label="example")
        index = count[0]
        count[0] += 1
        draws = _Draws(data.draw)
        for attempt in range(REMEASURES + 1):
            probe = Probe(t, rule, wallet, draws, index, first=nonce == 0, attempt=attempt)
            spent_before = wallet.spent
            stop = _run_example(t, rule, probe)
            if not isinstance(stop, Remeasure):
                break
            # The same inputs again, with the same money: the run's guard still holds its total.
            draws.again()
            wallet.allowance += wallet.spent - spent_before
            # Undecided unless the second try fails too: a one-off wrong move in a quiet pool is
            # another client's spend or a wrong move that comes and goes, which no read can tell apart.
            t.results.undecided(rule.name, f"the grant pool moved by another amount than expected ({stop}) and "
                                           "the account stayed quiet after, but the example run again "
                                           "decides: another client's spend, or a wrong move that comes and goes")
        if stop is not None:
            stopped.append(stop)

    prop._hypothesis_internal_database_key = None  # type: ignore[attr-defined]  # as case_sources.generated
    try:
        with contextlib.suppress(Unsatisfiable):
            prop()
    except LimitReached:
        raise
    except Flaky:
        # Hypothesis saw an example draw differently from an earlier one with the same start
        # (the state of the target moved under it); the examples already run stand.
        t.results.note(rule.name, f"{count[0]} example(s) run")
    except Exception as exc:  # a bug in a probe must not hide the other rules' verdicts
        _broke(t, rule, exc)
    for stop in stopped:
        if isinstance(stop, LimitReached):
            raise stop


class _Draws:
    """An example's draws, kept so that the example run again (:class:`Remeasure`) draws the same
    inputs: a broken deployment's wrong move may need exactly them. Should the second run ask
    for something else (the target answered otherwise), it draws afresh from there."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self._draw = draw
        self._log: list[tuple[st.SearchStrategy[Any], Any]] = []
        self._at: int | None = None  # None: recording; else the next draw to replay

    def __call__(self, strategy: st.SearchStrategy[T]) -> T:
        if self._at is not None and self._at < len(self._log):
            logged, value = self._log[self._at]
            # The same strategy, or one built alike (many are built per call); compared only
            # when replaying, which is rare, so recording costs no repr.
            if logged is strategy or repr(logged) == repr(strategy):
                self._at += 1
                return copy.deepcopy(value)  # a probe may change what it drew
            self._at = len(self._log)
        value = self._draw(strategy)
        if self._at is None:
            self._log.append((strategy, copy.deepcopy(value)))
        return value

    def again(self) -> None:
        self._at = 0


def _run_example(t: Target, rule: Rule, probe: Probe) -> BaseException | None:
    """Run one example of ``rule``; what stops the rule's examples, if anything (a
    :class:`Remeasure` asks for the example again)."""
    assert rule.probe is not None
    again = probe.attempt > 0
    try:
        rule.probe(probe)
    except Remeasure as suspicion:
        return suspicion
    except NeedsBudget as spent:
        if again:  # the first try's wrong move stays unexplained, and unjudged
            t.results.undecided(rule.name, "the grant pool moved wrongly once and could not be measured again: "
                                           f"{spent}")
        elif probe.first:
            _skip_all(t, rule, f"not run: {spent}")
        return spent
    except LimitReached as limit:
        return limit
    except (Skip, RequestRefused) as skip:
        if again:
            t.results.undecided(rule.name, f"the grant pool moved wrongly once; measuring again stopped: {skip}")
        else:
            _skip_all(t, rule, str(skip))
        return skip
    except requests.RequestException as exc:
        t.results.undecided(rule.name, f"a request failed: {type(exc).__name__}")
        return exc
    except Exception as exc:  # a bug in the probe: caught here, where its traceback is
        _broke(t, rule, exc)
        return exc
    return None


def _broke(t: Target, rule: Rule, exc: Exception) -> None:
    """A probe's own error makes its rule INCONCLUSIVE (never PASSED), with the traceback."""
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    t.results.broke(rule.name, f"the probe stopped on an internal error: {detail}")
    where = "".join(traceback.format_exception(exc, limit=-3)).replace("\n", " | ")
    t.results.note(rule.name, "internal error: " + where)


def _skip_all(t: Target, rule: Rule, reason: str) -> None:
    for name in (rule.name, *rule.records):
        t.results.skip(name, reason)
