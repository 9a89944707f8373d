"""Rules of chats a balance cannot pay for: a chat the balance cannot cover is 402
insufficient_balance and charges nothing; a chat for a user never granted is refused and bills
nobody; a balance never goes below zero, chats in flight together included.

Every chat is for a user this run created: funded with a cent, or never granted at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import (
    BIG_MESSAGES,
    BIG_PROMPT,
    Balance,
    chat_body,
    code_text,
    grant,
    header_chat,
    shown,
    user_balance,
    user_chat,
)
from .chat_helpers import BILLING, CHAT_OP, NEEDS, USER_CHAT_OP, charged, funded_user
from .checks import parse_money
from .engine import Exchange
from .properties import Probe, usd
from .registry import Cost, probe
from .rule_helpers import concurrently, watch_pool
from .safety import DEVELOPER_CHAT_RESERVE

CENT = MICROS_PER_CENT
# What _drain grants the user it drains (chat.insufficient expects the pool to move by it).
DRAIN_FUNDS = CENT
# A prompt of a few hundred tokens: chats sized by how many copies of it they send.
UNIT_PROMPT = ("Count the words in this sentence please. " * 20).strip()
# The most messages a drain chat sends: a list longer than 128 is not plainly documented
# (conformance.plain), so a deployment may refuse it.
MOST_MESSAGES = 128


@dataclass
class _Drained:
    """How draining a user went: ``outcome`` is "refused" (the last exchange is the refusal,
    whatever its status: an error envelope answered 200 included), "overserved" (a chat was
    served that the balance, by the quota blocks, could not cover, and the balance did not stop
    at $0.00) or "still" (never refused); ``left``, what the user should still hold;
    ``to_zero``, a chat served for more than the balance held that stopped it at $0.00."""

    outcome: str
    steps: list[Exchange]
    left: int
    user: str
    to_zero: Exchange | None = None
    copies: int = BIG_MESSAGES  # of BIG_PROMPT in the next big chat (and the streamed one after)
    most_copies: int = MOST_MESSAGES  # lowered when the deployment refuses a body as too large
    largest_served: int = 0  # the most copies of the big prompt a served chat held
    # Every served chat's charge was read (quota.credits_used, an integer of micro-dollars, the
    # contract's unit): only then does ``left`` say what the user holds.
    costs_known: bool = True


def _drain(p: Probe) -> _Drained:
    """Fund a user with one cent and send large chats until one is not served. A chat that
    cost less than the balance left is followed by one sized past it (the run's model may be a
    cheap one: the docs name none)."""
    drained = _Drained("still", [], DRAIN_FUNDS, funded_user(p, DRAIN_FUNDS // CENT))
    for i in range(p.t.options.max_drain_chats + 1):
        # First a small chat: the balance, under a cent now, is still a balance (402, not 404).
        body = chat_body(p) if i == 0 else chat_body(p, BIG_PROMPT, drained.copies)
        exchange = user_chat(p, drained.user, body)
        if exchange.status == 413 and drained.copies > BIG_MESSAGES:
            # Past a body limit of the deployment's own (the contract's 64 MiB is its choice):
            # smaller chats drain it too, more of them.
            drained.most_copies = drained.copies // 2
            drained.copies = max(BIG_MESSAGES, drained.most_copies)
            continue
        if i > 0 and exchange.status == 400 and drained.copies > drained.largest_served >= BIG_MESSAGES:
            # A 400 for a chat larger than any served: a gateway's input or context cap (the docs
            # name no model or size). Chats of the size last served drain it too; a deployment
            # that answers 400 for want of money refuses that size as well, and is judged.
            drained.most_copies = drained.copies = drained.largest_served
            continue
        drained.steps.append(exchange)
        if not exchange.ok or isinstance(exchange.field("error"), dict):
            drained.outcome = "refused"
            return drained
        if i > 0:
            drained.largest_served = max(drained.largest_served, drained.copies)
        cost = charged(exchange)
        if drained.left > 0 and cost is not None and cost > drained.left and _reads_zero(exchange):
            # The docs' "402 at zero": served while the balance was above zero, and stopped at
            # $0.00; the next chat must be refused.
            drained.to_zero, drained.left = exchange, 0
            continue
        if drained.left == 0 or (cost is not None and cost > drained.left):
            drained.outcome = "overserved"
            return drained
        drained.costs_known = drained.costs_known and cost is not None
        drained.left -= cost or 0
        if i > 0 and cost:  # enough copies that the next chat costs more than what is left
            wanted = math.ceil(drained.copies * drained.left * 1.25 / cost)
            drained.copies = max(drained.copies, min(drained.most_copies, wanted))
    return drained


def _reads_zero(exchange: Exchange) -> bool:
    """Whether a chat answer says the balance is now $0.00 (its quota block's balance_after)."""
    return parse_money(exchange.field("quota", "balance_after")) == 0


@probe("chat.insufficient", sources=("seed: 402 insufficient_balance POST /v1/users/:id/chat/completions "
                                     "User balance too low",),
       elements=("#/components/responses/InsufficientBalance",), cost=Cost(2 * CENT, 1, minimum=CENT),
       needs=NEEDS, stage=6)
def chat_insufficient(p: Probe) -> None:
    """A chat the user's balance cannot cover answers 402 insufficient_balance (any other
    answer is a failure: a 404 for a drained user, a 400, an error answered 200, a completion
    served anyway), streamed or not, on the path and on the header form, and charges nothing:
    the balance then reads what the quota blocks left, and the developer balance moved only by
    the cent granted to that user; a cent granted after, the next chat debits exactly its cost.
    A chat served while the balance was above zero that stops it at $0.00 keeps the docs' "402
    at zero" and breaks only the contract's choice (a warning); the next chat must then answer 402.
    A 413, or a 400 for a chat larger than any served, is the deployment's own size cap: chats of
    a size it served drain the user instead."""
    insufficient = p.t.facts.error("InsufficientBalance")
    moved, still, pool_reads, drained = watch_pool(p, lambda: _drain(p))
    outcome, steps, left, user = drained.outcome, drained.steps, drained.left, drained.user
    last = steps[-1]
    if drained.to_zero is not None:
        p.fail(steps, "A chat the balance could not cover was served down to $0.00",
               f"the user held less than the chat's price ({shown(drained.to_zero.field('quota', 'credits_used'))}"
               " micro-dollars); it was served and the balance stopped at $0.00. The docs' \"402 at zero\" allows"
               f" it; the contract's choice is to refuse such a chat with {insufficient.status} {insufficient.code}",
               CONTRACT)
    if moved is not None and moved != -DRAIN_FUNDS and still:  # what the user was granted, nothing more
        p.fail([*steps, *pool_reads], "A user's chats moved the developer balance",
               f"around a grant of {usd(DRAIN_FUNDS)} and that user's chats (the last one refused) the "
               f"developer balance moved by {usd(moved)}; expected -{usd(DRAIN_FUNDS)}: a user-billed chat "
               "never bills the developer",
               DOCUMENTED if moved < -DRAIN_FUNDS else CONTRACT)  # credited: the markup, say (see _debit)
    if outcome == "overserved":
        p.fail(steps, "A chat the balance could not cover was served",
               f"the user held {usd(left)} by the quota blocks; the chat was served with credits_used "
               f"{shown(last.field('quota', 'credits_used'))} and quota.balance_after "
               f"{shown(last.field('quota', 'balance_after'))} (expected {insufficient.status} {insufficient.code})")
    elif outcome == "still":
        p.skip(f"the user still held {usd(left)} after {len(steps)} chats; raise --max-drain-chats")
    else:
        if not p.require(insufficient.answered(last), steps,
                         f"A chat the balance could not cover was not refused with {insufficient.status} "
                         f"{insufficient.code}", f"the chat answered {last.status} {code_text(last)}"):
            return
        # Without every charge read, what the user holds is read now: the streamed refusal
        # below must leave it as it is.
        before = None if drained.costs_known else user_balance(p, user)
        # The same chat streamed: refused before any stream opens, as the JSON form is (a
        # stream that opens with 200 and carries the error as an event is no 402).
        streamed = user_chat(p, user, chat_body(p, BIG_PROMPT, drained.copies, stream=True))
        steps.append(streamed)
        if not p.require(insufficient.answered(streamed), steps,
                         f"A streamed chat the balance could not cover was not refused with {insufficient.status} "
                         f"{insufficient.code}",
                         f"the streamed chat answered {streamed.status} {code_text(streamed)}"
                         f" ({streamed.header('Content-Type') or 'no Content-Type'})"):
            return
        # The header form names the same user: refused alike, never billed to the developer.
        named = header_chat(p, user, chat_body(p, BIG_PROMPT, drained.copies))
        steps.append(named)
        if not p.require(insufficient.answered(named), steps,
                         f"A header-form chat the balance could not cover was not refused with {insufficient.status} "
                         f"{insufficient.code}", f"POST /v1/chat/completions with X-External-User-ID answered "
                         f"{named.status} {code_text(named)}"):
            return
        after = user_balance(p, user)
        micros = "" if after.micros is None else f" ({after.micros} micro-dollars)"
        if before is not None:
            unchanged = (before.micros, before.cents) == (after.micros, after.cents)
            p.require(not after.ok or not before.ok or unchanged, [*steps, before.exchange, after.exchange],
                      "A refused chat charged the user", f"the balance read {before.shown} before a streamed chat "
                      f"was refused and {after.shown}{micros} after it")
            return
        if p.require(not after.ok or after.agrees_with(left), [*steps, after.exchange],
                     "A refused chat charged the user", f"by the quota blocks the user held {usd(left)} when the "
                     f"chat was refused; the balance then reads {after.shown}{micros}"):
            _top_up_and_chat(p, user, left, steps)


def _top_up_and_chat(p: Probe, user: str, left: int, steps: list[Exchange]) -> None:
    """After a refusal, a cent granted and a chat served: the chat debits exactly its cost (a
    deployment that waives or refunds the first chat after a 402 shows here)."""
    if not p.affordable(0.01):
        return
    granted = grant(p, user, 1, description="quota-conformance top-up after a 402")
    chat = user_chat(p, user, chat_body(p))
    cost = charged(chat)
    read = user_balance(p, user)
    if not granted.ok or not chat.ok or cost is None or read.micros is None:
        return
    p.require(read.micros == left + CENT - cost, [*steps, granted, chat, read.exchange],
              "A chat after a top-up did not debit its cost",
              f"the user held {left} micro-dollars, was granted $0.01 and chatted for {cost}; the balance reads "
              f"{read.micros} micro-dollars, not {left + CENT - cost}")


@probe("chat.unfunded_user", sources=("public-facts: A balance never expires and cannot go negative: "
                                      "requests get 402 at zero.", *BILLING),
       elements=(USER_CHAT_OP, CHAT_OP),
       cost=Cost(2 * DEVELOPER_CHAT_RESERVE, 1), needs=NEEDS, stage=9)
def chat_unfunded_user(p: Probe) -> None:
    """A chat for a user never granted, on the path form and the header form, is refused
    (404 user_not_found, or 402 insufficient_balance where every user is known at $0.00) and
    bills nobody: the developer balance does not move."""
    p.wallet.take(2 * DEVELOPER_CHAT_RESERVE)  # a deployment that bills the developer instead
    nobody = p.t.guard.new_user()
    moved, still, pool_reads, answers = watch_pool(p, lambda: (
        user_chat(p, nobody, chat_body(p)), header_chat(p, nobody, chat_body(p))))
    refusals = {(p.t.facts.error(name).status, p.t.facts.error(name).code)
                for name in ("UserNotFound", "InsufficientBalance")}
    for exchange, how in zip(answers, ("POST /v1/users/{never granted}/chat/completions",
                                       f"POST /v1/chat/completions with {p.t.facts.user_header}: (never granted)"),
                             strict=True):
        # Served is the failure; another refusal than the two the contract gives is its call.
        refused = 400 <= exchange.status < 500 and not isinstance(exchange.field("choices"), list)
        p.require((exchange.status, exchange.error_code) in refusals, [exchange],
                  "A chat for a user with no balance was not refused",
                  f"{how} answered {exchange.status} {code_text(exchange)}; expected 404 user_not_found or 402 "
                  "insufficient_balance", CONTRACT if refused else DOCUMENTED)
    if moved not in (None, 0):
        if still:
            p.fail([*answers, *pool_reads], "A chat for a user with no balance billed the developer",
                   f"the developer balance moved by {usd(moved)}")
        else:
            p.undecided("the developer balance moved for other reasons meanwhile")


@probe("chat.never_negative", sources=("public-facts: A balance never expires and cannot go negative: "
                                       "requests get 402 at zero.",),
       elements=(USER_CHAT_OP,), cost=Cost(CENT, 1), needs=NEEDS, stage=8)
def chat_never_negative(p: Probe) -> None:
    """Spending never takes a balance below $0.00: no chat answers a negative balance_after,
    the balance never reads negative (chats in flight together for a balance that covers only
    some of them included), and a refused chat charges nothing."""
    user = p.t.guard.new_user()
    funded = grant(p, user, 1, description="quota-conformance chat funds")
    if not funded.ok:
        p.skip(f"could not fund a user: the grant answered {funded.status}")
    steps: list[Exchange] = [funded]
    # max_tokens written 4.0: an integer in JSON Schema; served, or refused with a 4xx (the docs
    # do not say), but never a server error (errors.no_server_error judges every answer).
    odd = chat_body(p, max_tokens=4)
    odd["max_tokens"] = 4.0
    steps.append(user_chat(p, user, odd))
    if not _concurrent_chats(p, user, steps):
        return
    for _ in range(p.t.options.max_drain_chats):
        before = user_balance(p, user)
        exchange = user_chat(p, user, chat_body(p, BIG_PROMPT, BIG_MESSAGES))
        after = user_balance(p, user)
        steps += [exchange, after.exchange]
        if _negative(exchange, after):
            p.fail(steps, "A chat took the balance below zero",
                   f"quota.balance_after {shown(exchange.field('quota', 'balance_after'))}; the balance then reads "
                   f"{after.shown}: a balance never goes negative (402 at zero)")
            return
        if not exchange.ok:
            p.require(_same(before, after), steps, "A refused chat charged the user",
                      f"the chat answered {exchange.status}; the balance went {before.shown} -> {after.shown}")
            return
        p.passed()
    p.passed()


def _concurrent_chats(p: Probe, user: str, steps: list[Exchange]) -> bool:
    """Chats in flight together for a user whose balance covers one of them but not all: those
    served never cost more than the balance held, and it never goes below zero. The chats are
    sized from two measured ones (cost grows with the prompt's copies), so that each costs
    about 70% of what the user holds, whatever the model's price. False when it failed."""
    n = p.t.options.concurrent_requests
    one = user_chat(p, user, chat_body(p, UNIT_PROMPT, 1))
    two = user_chat(p, user, chat_body(p, UNIT_PROMPT, 2))
    steps += [one, two]
    costs = [charged(x) if x.ok else None for x in (one, two)]
    before = user_balance(p, user)
    held = before.micros if before.micros is not None else None if before.cents is None else before.cents * CENT
    if None in costs or held is None or costs[1] <= costs[0]:  # type: ignore[operator]
        return True  # nothing to size the chats by: the sequential checks still run
    per_copy = costs[1] - costs[0]  # type: ignore[operator]
    base = costs[0] - per_copy  # type: ignore[operator]
    copies = max(1, round((held * 0.7 - base) / per_copy))
    if not held < n * (base + copies * per_copy) <= n * held:
        return True
    sent = concurrently(n, lambda _: user_chat(p, user, chat_body(p, UNIT_PROMPT, copies)))
    after = user_balance(p, user)
    steps += [*sent, after.exchange]
    served = [a for a in sent if a.ok and not isinstance(a.field("error"), dict)]
    spent = sum(charged(a) or 0 for a in served)
    negative = any(_negative(a, after) for a in served) or _negative(after.exchange, after)
    message = (f"{n} concurrent chats for a user holding {before.shown}: {len(served)} served, costing "
               f"{usd(spent)} together; the balance then reads {after.shown}")
    if not negative and spent > held and (after.micros == 0 or (after.micros is None and after.cents == 0)):
        # Served for more than the balance held, which stopped at $0.00: the docs' "402 at zero".
        p.fail(steps, "Chats in flight together were served down to $0.00",
               message + ". The docs' \"402 at zero\" allows it; the contract's choice is to refuse a chat the "
               "balance cannot cover", CONTRACT)
        return True
    return p.require(not negative and spent <= held, steps, "Chats in flight together overspent the balance", message)


def _negative(exchange: Exchange, after: Balance) -> bool:
    text = exchange.field("quota", "balance_after")
    if exchange.ok and isinstance(text, str) and text.strip().startswith("-"):
        return True
    if after.micros is not None and after.micros < 0:
        return True
    raw = after.exchange.field("balance")
    return isinstance(raw, str) and raw.strip().startswith("-")


def _same(before: Balance, after: Balance) -> bool:
    return before.cents == after.cents and before.micros == after.micros
