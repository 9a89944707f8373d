"""Rules of what a grant request holds: the optional description changes no money; a request
missing a required field, with an amount outside the contract's limits, or for more than the
grant pool holds is refused and moves no money.

Every grant goes to a user this run created, and every amount that a lax server could credit
is counted against the rule's share of the budget before it is sent.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT, MICROS_PER_DOLLAR

from .actions import ABSENT, code_text, developer_balance, grant, shown, skip_if_the_pool_refused, user_balance
from .engine import Exchange
from .facts import GRANT
from .properties import Probe, usd
from .registry import Cost, Needs, probe
from .rule_helpers import DESCRIPTIONS, money_of, pool_micros, signed_change, watch_pool
from .strategies import amount_json

CENT = MICROS_PER_CENT


# application/json with a charset parameter, as clients send it (.NET's HttpClient, OkHttp, many
# others): RFC 8259 says the parameter has no effect on a compliant recipient.
JSON_MEDIA_TYPES = ("application/json; charset=utf-8", "application/json;charset=UTF-8")


@probe("grant.json_media_types", sources=("seed: Add balance to an app user's account from your grant pool.",),
       elements=("#/paths/~1v1~1funding~1grant/post",), cost=Cost(CENT, 2), needs=(Needs.WRITES,), stage=9)
def grant_json_media_types(p: Probe) -> None:
    """A valid grant whose Content-Type is application/json with a charset parameter
    (`application/json; charset=utf-8`, as .NET's HttpClient and OkHttp send it) is granted as
    one sent as plain application/json: a success, and the user credited."""
    media_type = JSON_MEDIA_TYPES[0] if p.first else p.draw(st.sampled_from(JSON_MEDIA_TYPES))
    user, amount = p.t.guard.new_user(), amount_json(1)
    p.spend(amount)
    body = json.dumps({"external_user_id": user, "amount": amount, "description": "quota-conformance media type"})
    headers = {"Content-Type": media_type, "Idempotency-Key": p.t.guard.new_idempotency_key()}
    exchange = p.t.raw("POST", p.t.facts.operation(GRANT).path, headers=headers, data=body.encode())
    skip_if_the_pool_refused(p, exchange, amount)
    read = user_balance(p, user)
    p.require(exchange.ok and read.cents == 1, [exchange, read.exchange],
              "A JSON grant with a charset parameter was not granted",
              f"a grant of $0.01 sent as {media_type} answered {exchange.status} {code_text(exchange)}; the "
              f"user's balance read {read.shown}")


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
    if not (answer.ok and read.cents == cents) and not (400 <= answer.status < 500 and not read.cents):
        problems.append(f"with description null: answered {answer.status} {code_text(answer)}, balance read "
                        f"{read.shown}")
        steps += [answer, read.exchange]
    for with_description, exchange, read in answers:
        label = "with" if with_description else "without"
        steps += [exchange, read.exchange]
        if not exchange.ok or money_of(exchange, "amount_granted") != cents or read.cents != cents:
            problems.append(f"{label} a description: answered {exchange.status}, amount_granted "
                            f"{shown(exchange.field('amount_granted'))}, balance read {read.shown}")
    p.require(not problems, steps, "The optional description changed the money",
              f"a grant of {usd(cents * CENT)}: " + "; ".join(problems))


@probe("grant.missing_fields", sources=(
    "seed: 400 bad_request POST /v1/funding/grant Missing required fields",
    "seed: external_user_id string Your unique identifier for the user",
), elements=("#/components/responses/BadRequest", "#/components/schemas/GrantRequest"),
    cost=Cost(0, 6, most=CENT, sharp=CENT), needs=(Needs.WRITES,), stage=0)
def grant_missing_fields(p: Probe) -> None:
    """A grant missing a required field (or null in its place), or whose body is not a JSON
    object, answers 400 bad_request and credits nobody; an amount with no user to credit
    debits nothing from the grant pool either."""
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
    if p.first and p.affordable(0.01):
        bodies.append({"amount": amount_json(1), "description": "quota-conformance probe"})
    for body in bodies:
        if isinstance(body, dict) and body.get("amount") is not None:
            p.spend(body["amount"])
        raw = body if isinstance(body, bytes) else None
        kwargs: dict[str, Any] = {"raw_body": raw} if raw is not None else {"body": body}

        def send(kwargs: dict[str, Any] = kwargs) -> Exchange:
            return p.t.send(GRANT, headers={"Idempotency-Key": p.t.guard.new_idempotency_key()}, **kwargs)

        if isinstance(body, dict) and body.get("amount") is not None and "external_user_id" not in body:
            # No user to credit: a pool debited before the body is checked loses the money.
            moved, still, reads, exchange = watch_pool(p, send)
            if moved is not None and moved != 0 and still:
                p.fail([exchange, *reads], "A grant refused for a missing user debited the grant pool",
                       f"a grant of {body!r} answered {exchange.status} {code_text(exchange)} and the developer "
                       f"balance moved by {signed_change(moved)}", DOCUMENTED)
        else:
            exchange = send()
        what = "a body that is not JSON" if raw is not None else f"a grant of {body!r}"
        # The seed's 400 is for fields missing from a JSON object; nulls, other JSON values and
        # bytes that are not JSON are refused as the contract chooses.
        plainly_missing = isinstance(body, dict) and None not in body.values()
        p.require(bad_request.answered(exchange), [exchange],
                  f"A grant missing fields was not refused with {bad_request.status} {bad_request.code}",
                  f"{what} answered {exchange.status} {code_text(exchange)}",
                  DOCUMENTED if plainly_missing else CONTRACT)


@probe("grant.invalid_amount", provenance=CONTRACT,
       elements=("#/components/schemas/GrantRequest/properties/amount/allOf/0",),
       cost=Cost(CENT, 4, minimum=0, most=3 * CENT, sharp=3 * CENT), needs=(Needs.WRITES,), stage=0)
def grant_invalid_amount(p: Probe) -> None:
    """An amount outside the contract's limits (zero, negative, finer than a cent), or not a
    JSON number (a numeric string: the docs' type, so documented), answers 400 bad_request,
    credits nothing and debits nothing: the grant pool reads the same before and after
    (inconclusive when other traffic moves it meanwhile)."""
    bad_request = p.t.facts.error("BadRequest")
    candidates: list[Any] = [0, -0.01, 0.001, 0.015, "0.01", True, 10_000.01]
    # The first example holds a numeric string too: the docs' "amount number" is a type, and a
    # server that parses "0.01" as a number accepts what the docs do not.
    chosen = [0, -0.01, 0.001, "0.01"] if p.first else [p.draw(st.sampled_from(candidates))]
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
        # Not a JSON number breaks the documented type; the limits are the contract's.
        not_a_number = isinstance(amount, str | bool)
        if not p.require(bad_request.answered(exchange)
                         and not credited, steps, f"An invalid amount was not refused with {bad_request.status}",
                         f"an amount of {amount!r} answered {exchange.status} {code_text(exchange)}; the user's "
                         f"balance read answered {read.shown}", DOCUMENTED if not_a_number else None):
            return
        if moved not in (None, 0):
            if not still:
                p.undecided("the developer balance moved for other reasons meanwhile (shared traffic?)")
                return
            p.fail([*pool_reads, *steps], "A refused grant moved the grant pool",
                   f"a grant of {amount!r} was refused with {exchange.status}, yet the developer balance "
                   f"moved by {signed_change(moved)}", DOCUMENTED)  # whatever the limits: a refusal moves no money
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
    # The smallest amount the contract accepts that the pool cannot cover: whole cents (the
    # pool may hold a part of a cent after a developer-billed chat).
    step = max(CENT, p.t.facts.amount_limits.step)
    need = (micros // step + 1) * step
    left = p.t.guard.budget.remaining
    if need > left or need > p.t.facts.amount_limits.maximum:
        p.skip(f"needs --budget >= {usd(need)} (more than the developer balance, {pool.shown})")
    p.wallet.allowance = p.wallet.spent + left
    too_low = p.t.facts.error("GrantPoolTooLow")
    user = p.t.guard.new_user()
    amount = float(Decimal(need) / MICROS_PER_DOLLAR)
    exchange = grant(p, user, amount=amount, pool_may_refuse=True)
    after = developer_balance(p)
    p.require(too_low.answered(exchange)
              and pool_micros(after) == micros, [pool.exchange, exchange, after.exchange],
              f"A grant the pool cannot cover was not refused with {too_low.status} {too_low.code}",
              f"a grant of {amount} against a pool of {pool.shown} answered {exchange.status} "
              f"{code_text(exchange)}; the pool then showed {after.shown}")
