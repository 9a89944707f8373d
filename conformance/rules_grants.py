"""Rules of a grant's money: exact for every amount, read back the same on both balance
endpoints and in both forms, taken from the grant pool, refused when fields are missing.

Every grant goes to a user this run created (``PREFIX`` + random token), and every amount is
whole cents, drawn by Hypothesis within the rule's share of the budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT, MICROS_PER_DOLLAR

from .actions import (
    ABSENT,
    Balance,
    code_text,
    developer_balance,
    display_cents,
    grant,
    query_balance,
    shown,
    user_balance,
)
from .checks import parse_money
from .engine import Exchange
from .facts import CHAT, GRANT
from .properties import Probe, usd
from .registry import Cost, Needs, probe
from .safety import DEVELOPER_CHAT_RESERVE
from .strategies import FLOAT_PRONE_CENTS, amount_json, float_prone_within

T = TypeVar("T")
CENT = MICROS_PER_CENT
GRANT_OP = "#/paths/~1v1~1funding~1grant/post"
# The most the first example of grant.arithmetic spends on its float-prone amounts.
FLOAT_PRONE_CAP = 340 * CENT
DESCRIPTIONS = st.one_of(st.just(ABSENT), st.just(""), st.text(max_size=40),
                         st.text(min_size=400, max_size=500), st.sampled_from(["Welcome bonus", "crédit 🎁"]))


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


def money_of(exchange: Exchange, field: str) -> int | None:
    return parse_money(exchange.field(field))


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
    if not p.require(exchange.status == 200, [exchange], "A valid grant was refused",
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
        if last.status != 200:
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
    if read.exchange.status != 200:
        problems.append(f"answered {read.exchange.status} {read.exchange.error_code or ''}".strip())
    else:
        if read.exchange.field("external_user_id") != user:
            problems.append(f"external_user_id is {shown(read.exchange.field('external_user_id'))}, not the user")
        if read.cents != expected:
            problems.append(f"balance is {read.shown}; the grant left balance_after "
                            f"{shown(last.field('balance_after'))}")
        if read.micros is not None and read.micros != total_micros:
            problems.append(f"balance_microdollars is {read.micros}; the user was granted {total_micros}")
    p.require(not problems, [last, read.exchange], f"{how} does not show the grant", "; ".join(problems))


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
        if not _pool_forms_agree(p, read):
            break
    values = [pool_micros(b) for b in (*before, *after)]
    exchanges = [b.exchange for b in (*before, *after)]
    if None in values:
        return None, True, exchanges, result
    b1, b2, a1, a2 = values
    assert b1 is not None and b2 is not None and a1 is not None and a2 is not None
    return a1 - b2, b1 == b2 and a1 == a2, exchanges, result


def _pool_forms_agree(p: Probe, read: Balance) -> bool:
    """A developer-balance read whose display form is not its micro-dollars (truncated or
    rounded to the cent) is a failure of the rule reading it: the docs show both forms."""
    if read.micros is None or read.cents is None or read.cents in display_cents(read.micros):
        return True
    p.fail([read.exchange], "The developer balance's two forms disagree",
           f"balance {read.shown} but balance_microdollars {read.micros}", DOCUMENTED)
    return False


def lossy_through_float(micros: int) -> bool:
    """Whether ``micros`` shown as dollars and read back through a float loses a micro-dollar."""
    return int(float(Decimal(micros) / MICROS_PER_DOLLAR) * MICROS_PER_DOLLAR) != micros


def _float_dollars_drift(pool: int, cents: Sequence[int]) -> bool:
    """Whether a pool kept in float dollars (``pool -= amount``, read as ``int(pool * 1e6)``)
    shows a wrong micro-dollar at some point of these grants."""
    dollars, exact = pool / MICROS_PER_DOLLAR, pool
    for c in cents:
        dollars -= c / 100
        exact -= c * CENT
        if int(dollars * MICROS_PER_DOLLAR) != exact or lossy_through_float(exact):
            return True
    return False


def _adversarial_cents(p: Probe, pool: int | None) -> list[int]:
    """The cheapest one, two or three grants (cents, within the share less a replay of the
    smallest) after
    which a pool kept in float dollars, or shown through a float, reads a wrong micro-dollar;
    one cent when none is near."""
    most = p.wallet.left // CENT
    if pool is None or most < 2:
        return [1]
    candidates = [[c] for c in range(1, 61)]
    candidates += [[a, b] for a in range(1, 41) for b in range(1, 41)]
    candidates += [[a, b, c] for a in range(1, 16) for b in range(1, 16) for c in range(1, 16)]
    for cents in sorted(candidates, key=lambda seq: sum(seq) + min(seq)):
        if sum(cents) + min(cents) <= most and _float_dollars_drift(pool, cents):
            return cents
    return [1]


@probe("grant.pool_debit", sources=(
    "seed: Add balance to an app user's account from your grant pool.",
    "seed: GET /v1/balance returns the developer balance.",
    "public-facts: grants move balance from the pool to a user",
), elements=(GRANT_OP, "#/paths/~1v1~1balance/get"), cost=Cost(2 * CENT, 3, most=40 * CENT, sharp=25 * CENT),
    needs=(Needs.WRITES,),
    stage=-2)  # first: the pool as the run found it, before any other rule's grant moved it
def grant_pool_debit(p: Probe) -> None:
    """The developer balance (the grant pool, GET /v1/balance) drops by exactly what users
    receive, in micro-dollars, concurrent grants included; a replay moves it by nothing. When
    other traffic moves the pool meanwhile, the verdict is inconclusive, never a false failure."""
    start = developer_balance(p)
    if not start.ok:
        p.skip(f"GET /v1/balance answered {start.exchange.status}: the pool cannot be read")
    _pool_forms_agree(p, start)
    developer_chat = p.first and p.t.options.chat and p.wallet.left >= DEVELOPER_CHAT_RESERVE + 2 * CENT
    if developer_chat:
        p.wallet.take(DEVELOPER_CHAT_RESERVE)  # kept for the chat at the end, after the grants
    _concurrent_pool_debit(p)
    cents = _adversarial_cents(p, pool_micros(developer_balance(p))) if p.first else [
        p.draw_cents(p.wallet.left // 3)]
    user = p.t.guard.new_user()
    made: list[tuple[int, str, Exchange]] = []
    for c in cents:
        key = p.t.guard.new_idempotency_key()
        moved, still, reads, first = watch_pool(p, lambda: grant(p, user, c, key=key))  # noqa: B023
        if first.status != 200:
            p.skip(f"the grant answered {first.status} (see grant.arithmetic)")
        _judge_pool(p, moved, still, -c * CENT, [first, *reads], f"a grant of {usd(c * CENT)}")
        made.append((c, key, first))
    c, key, first = min(made, key=lambda m: m[0])  # the cheapest to replay
    moved, still, reads, replay = watch_pool(p, lambda: grant(p, user, c, key=key))
    _judge_pool(p, moved, still, 0, [first, replay, *reads], f"a replay of the grant of {usd(c * CENT)}")
    if developer_chat:
        _developer_spend(p)


def _concurrent_pool_debit(p: Probe) -> None:
    """Grants of a cent to different users, in flight together: the pool moves by all of them."""
    n = p.t.options.concurrent_requests
    if p.wallet.left < n * CENT + 2 * CENT:  # a grant and its replay must still fit
        return
    for _ in range(n):
        p.spend(amount_json(1))
    users = [p.t.guard.new_user() for _ in range(n)]
    moved, still, reads, answers = watch_pool(p, lambda: concurrently(n, lambda i: p.t.send(
        GRANT, headers={"Idempotency-Key": p.t.guard.new_idempotency_key()},
        body={"external_user_id": users[i], "amount": amount_json(1), "description": "quota-conformance"})))
    landed = [a for a in answers if isinstance(a, Exchange) and a.status == 200]
    _judge_pool(p, moved, still, -len(landed) * CENT, [*landed, *reads],
                f"{len(landed)} concurrent grants of $0.01 to different users")


def _developer_spend(p: Probe) -> None:
    """A tiny developer-billed chat (its cost already taken from the share): the pool moves by
    exactly its cost, to the micro-dollar (and the grants that follow meet a pool with a part
    under the cent)."""
    body = {"model": p.t.options.chat_model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 1}
    moved, still, reads, chat = watch_pool(p, lambda: p.t.send(CHAT, body=body))
    cost = chat.field("quota", "credits_used") if chat.status == 200 else None
    if isinstance(cost, int) and not isinstance(cost, bool):
        _judge_pool(p, moved, still, -cost, [chat, *reads], f"a developer-billed chat costing {usd(cost)}")


def _judge_pool(p: Probe, moved: int | None, still: bool, expected: int, steps: list[Exchange], what: str,
                rule: str | None = None) -> None:
    if moved is None:
        p.skip("GET /v1/balance did not answer the developer balance around the grant")
    if moved == expected:
        p.passed(rule)
    elif not still:
        p.undecided("the developer balance moved for other reasons meanwhile (shared traffic?); "
                    "rerun when the account is quiet", rule)
    else:
        p.fail(steps, "The grant pool moved by the wrong amount",
               f"after {what} the developer balance moved by {_signed(moved)}; expected {_signed(expected)}",
               rule=rule)


def _signed(micros: int) -> str:
    return f"{'+' if micros >= 0 else ''}{usd(micros)} ({micros:+d} micro-dollars)"


@probe("grant.optional_fields", sources=("seed: description string Optional. Notes stored in the ledger",),
       elements=("#/components/schemas/GrantRequest/properties/description",), cost=Cost(3 * CENT, 3),
       needs=(Needs.WRITES,), stage=9)
def grant_optional_fields(p: Probe) -> None:
    """The same amount granted with and without the optional description (any text up to its
    limit) credits the same money."""
    cents = 1 if p.first else p.draw_cents(min(p.wallet.left // 2, 20 * CENT))
    description = "Welcome bonus" if p.first else p.draw(DESCRIPTIONS.filter(lambda d: d is not ABSENT))
    answers = []
    for with_description in (True, False):
        user = p.t.guard.new_user()
        exchange = grant(p, user, cents, description=description if with_description else ABSENT)
        read = user_balance(p, user)
        answers.append((with_description, exchange, read))
    problems, steps = [], []
    # A null description: refused (400) or taken as none (credited exactly); never a crash.
    nulled = p.t.guard.new_user()
    answer = grant(p, nulled, cents, description=None)
    read = user_balance(p, nulled)
    if not (answer.status == 200 and read.cents == cents) and not (400 <= answer.status < 500 and not read.cents):
        problems.append(f"with description null: answered {answer.status} {code_text(answer)}, balance read "
                        f"{read.shown}")
        steps += [answer, read.exchange]
    for with_description, exchange, read in answers:
        label = "with" if with_description else "without"
        steps += [exchange, read.exchange]
        if exchange.status != 200 or money_of(exchange, "amount_granted") != cents or read.cents != cents:
            problems.append(f"{label} a description: answered {exchange.status}, amount_granted "
                            f"{shown(exchange.field('amount_granted'))}, balance read {read.shown}")
    p.require(not problems, steps, "The optional description changed the money",
              f"a grant of {usd(cents * CENT)}: " + "; ".join(problems))


@probe("grant.missing_fields", sources=(
    "seed: 400 bad_request POST /v1/funding/grant Missing required fields",
    "seed: external_user_id string Your unique identifier for the user",
), elements=("#/components/responses/BadRequest", "#/components/schemas/GrantRequest"), cost=Cost(0, 6),
    needs=(Needs.WRITES,), stage=0)
def grant_missing_fields(p: Probe) -> None:
    """A grant missing a required field (or null in its place), or whose body is not a JSON
    object, answers 400 bad_request and credits nobody."""
    bad_request = p.t.facts.error("BadRequest")
    user = p.t.guard.new_user()
    if p.first:
        bodies: list[Any] = [{}, {"external_user_id": user}, {"description": "quota-conformance probe"}, b"not JSON"]
    else:
        complete = {"external_user_id": user, "amount": amount_json(1), "description": p.draw(st.text(max_size=20))}
        dropped = p.draw(st.sets(st.sampled_from(["external_user_id", "amount"]), min_size=1))
        nulled = p.draw(st.booleans())
        body: Any = {k: (None if nulled and k in dropped else v) for k, v in complete.items()
                     if nulled or k not in dropped}
        if p.draw(st.booleans()):
            body.pop("description", None)
        if "amount" in body and body["amount"] is not None and not p.affordable(body["amount"]):
            body.pop("amount")
        bodies = [p.draw(st.sampled_from([body, body, [], "a string", 3, b"{not json"]))]
    for body in bodies:
        if isinstance(body, dict) and body.get("amount") is not None:
            p.spend(body["amount"])
        raw = body if isinstance(body, bytes) else None
        kwargs: dict[str, Any] = {"raw_body": raw} if raw is not None else {"body": body}
        exchange = p.t.send(GRANT, headers={"Idempotency-Key": p.t.guard.new_idempotency_key()},
                            **kwargs)
        what = "a body that is not JSON" if raw is not None else f"a grant of {body!r}"
        # The seed's 400 is for fields missing from a JSON object; nulls, other JSON values and
        # bytes that are not JSON are refused as the contract chooses.
        plainly_missing = isinstance(body, dict) and None not in body.values()
        p.require(exchange.status == bad_request.status and exchange.error_code == bad_request.code, [exchange],
                  f"A grant missing fields was not refused with {bad_request.status} {bad_request.code}",
                  f"{what} answered {exchange.status} {code_text(exchange)}",
                  DOCUMENTED if plainly_missing else CONTRACT)


@probe("grant.invalid_amount", provenance=CONTRACT,
       elements=("#/components/schemas/GrantRequest/properties/amount/allOf/0",),
       cost=Cost(CENT, 4, minimum=0, most=2 * CENT), needs=(Needs.WRITES,), stage=0)
def grant_invalid_amount(p: Probe) -> None:
    """An amount outside the contract's limits (zero, negative, finer than a cent, not a
    number) answers 400 bad_request, credits nothing and debits nothing: the grant pool reads
    the same before and after (inconclusive when other traffic moves it meanwhile)."""
    bad_request = p.t.facts.error("BadRequest")
    candidates: list[Any] = [0, -0.01, 0.001, 0.015, "0.01", True, 10_000.01]
    chosen = [0, -0.01, 0.001] if p.first else [p.draw(st.sampled_from(candidates))]
    for index, amount in enumerate(chosen):
        if not p.affordable(amount):
            if index:
                return  # what the budget allowed has run
            p.skip(f"an amount of {amount!r} could be credited by a lax server; the budget does not cover it")
        user = p.t.guard.new_user()
        moved, still, pool_reads, exchange = watch_pool(p, lambda: grant(p, user, amount=amount))  # noqa: B023
        read = user_balance(p, user)
        credited = read.ok and bool(read.cents)
        steps = [exchange, read.exchange]
        if not p.require(exchange.status == bad_request.status and exchange.error_code == bad_request.code
                         and not credited, steps, f"An invalid amount was not refused with {bad_request.status}",
                         f"an amount of {amount!r} answered {exchange.status} {code_text(exchange)}; the user's "
                         f"balance read answered {read.shown}"):
            return
        if moved not in (None, 0):
            if not still:
                p.undecided("the developer balance moved for other reasons meanwhile (shared traffic?)")
                return
            p.fail([*pool_reads, *steps], "A refused grant moved the grant pool",
                   f"a grant of {amount!r} was refused with {exchange.status}, yet the developer balance "
                   f"moved by {_signed(moved)}", DOCUMENTED)  # whatever the limits: a refusal moves no money
            return


@probe("grant.pool_insufficient", provenance=CONTRACT, elements=("#/components/responses/GrantPoolTooLow",),
       needs=(Needs.WRITES,), stage=10)
def grant_pool_insufficient(p: Probe) -> None:
    """A grant the pool cannot cover answers 402 insufficient_balance and moves nothing (run
    only when the budget covers the whole pool: a lax server would credit it)."""
    pool = developer_balance(p)
    micros = pool_micros(pool)
    if micros is None:
        p.skip("the developer balance cannot be read")
    need = micros + CENT
    left = p.t.guard.budget.remaining
    if need > left or need > p.t.facts.amount_limits.maximum:
        p.skip(f"needs --budget >= {usd(need)} (more than the developer balance, {pool.shown})")
    p.wallet.allowance = p.wallet.spent + left
    too_low = p.t.facts.error("GrantPoolTooLow")
    user = p.t.guard.new_user()
    amount = float(Decimal(need) / MICROS_PER_DOLLAR)
    exchange = grant(p, user, amount=amount)
    after = developer_balance(p)
    p.require(exchange.status == too_low.status and exchange.error_code == too_low.code
              and pool_micros(after) == micros, [pool.exchange, exchange, after.exchange],
              f"A grant the pool cannot cover was not refused with {too_low.status} {too_low.code}",
              f"a grant of {amount} against a pool of {pool.shown} answered {exchange.status} "
              f"{code_text(exchange)}; the pool then showed {after.shown}")
