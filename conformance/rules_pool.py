"""The rule of the grant pool: the developer balance (GET /v1/balance) drops by exactly what
users receive, to the micro-dollar, concurrent grants and a developer-billed chat included,
and a replay moves it by nothing; amounts are chosen where a pool kept in float dollars drifts.

Every grant goes to a user this run created, and every amount is whole cents, within the
rule's share of the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from mockserver.domain.money import MICROS_PER_CENT, MICROS_PER_DOLLAR

from .actions import developer_balance, grant
from .checks import json_integer
from .engine import Exchange
from .facts import CHAT, GRANT
from .properties import Probe, usd
from .registry import Cost, Needs, probe
from .rule_helpers import (
    GRANT_OP,
    Stillness,
    concurrently,
    pool_forms_agree,
    pool_micros,
    signed_change,
    watch_pool,
)
from .safety import DEVELOPER_CHAT_RESERVE
from .strategies import amount_json

CENT = MICROS_PER_CENT


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
    pool_forms_agree(p, start)
    developer_chat = p.first and p.t.options.chat and p.wallet.left >= DEVELOPER_CHAT_RESERVE + 2 * CENT
    if developer_chat:
        p.wallet.take(DEVELOPER_CHAT_RESERVE)  # kept for the chat at the end, after the grants
    _concurrent_pool_debit(p)
    cents = _adversarial_cents(p, pool_micros(developer_balance(p))) if p.first else [
        p.draw_cents(p.wallet.left // 3)]
    user = p.t.guard.new_user()
    made: list[tuple[int, str | None, Exchange]] = []
    for i, c in enumerate(cents):
        # The second without an Idempotency-Key: a pool debited only where a key was claimed shows.
        key = None if i == 1 else p.t.guard.new_idempotency_key()
        moved, still, reads, first = watch_pool(p, lambda: grant(p, user, c, key=key))  # noqa: B023
        if not first.ok:
            p.skip(f"the grant answered {first.status} (see grant.arithmetic)")
        keyless = "" if key else " without an Idempotency-Key"
        _judge_pool(p, moved, still, -c * CENT, [first, *reads], f"a grant of {usd(c * CENT)}{keyless}")
        made.append((c, key, first))
    c, key, first = min((m for m in made if m[1] is not None), key=lambda m: m[0])  # the cheapest to replay
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
    landed = [a for a in answers if a.ok]
    _judge_pool(p, moved, still, -len(landed) * CENT, [*landed, *reads],
                f"{len(landed)} concurrent grants of $0.01 to different users")


def _developer_spend(p: Probe) -> None:
    """A tiny developer-billed chat (its cost already taken from the share): the pool moves by
    exactly its cost, to the micro-dollar (and the grants that follow meet a pool with a part
    under the cent)."""
    body = {"model": p.t.chat_model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 1}
    moved, still, reads, chat = watch_pool(p, lambda: p.t.send(CHAT, body=body))
    cost = json_integer(chat.field("quota", "credits_used")) if chat.ok else None
    if cost is not None:
        _judge_pool(p, moved, still, -cost, [chat, *reads], f"a developer-billed chat costing {usd(cost)}")


def _judge_pool(p: Probe, moved: int | None, still: Stillness, expected: int, steps: list[Exchange], what: str,
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
               f"after {what} the developer balance moved by {signed_change(moved)}; "
               f"expected {signed_change(expected)}", rule=rule)
