"""Rules of chat billing: a funded user's chat debits exactly what its quota block says, on
the path form and the header form alike, and never the developer; a chat the balance cannot
cover is 402 insufficient_balance; a balance never goes below zero; ``stream: true`` answers
server-sent events ending ``data: [DONE]``.

Every chat bills a user this run created and funded with a few cents; the one developer-billed
chat (chat.developer_billing) is tiny, and its cost is reserved from the budget like a grant.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import (
    BIG_MESSAGES,
    BIG_PROMPT,
    Balance,
    chat_body,
    code_text,
    display_cents,
    grant,
    header_chat,
    query_balance,
    quota_micros,
    shown,
    user_balance,
    user_chat,
)
from .checks import parse_money
from .engine import Exchange
from .facts import USER_CHAT
from .properties import Probe, usd
from .registry import Cost, Needs, probe
from .rules_grants import concurrently, watch_pool
from .safety import DEVELOPER_CHAT_RESERVE

CENT = MICROS_PER_CENT
# What _drain grants the user it drains (chat.insufficient expects the pool to move by it).
DRAIN_FUNDS = CENT
# A prompt of a few hundred tokens: chats sized by how many copies of it they send.
UNIT_PROMPT = ("Count the words in this sentence please. " * 20).strip()
USER_CHAT_OP = "#/paths/~1v1~1users~1{external_user_id}~1chat~1completions/post"
CHAT_OP = "#/paths/~1v1~1chat~1completions/post"
BILLING = ("public-facts: POST /v1/chat/completions bills the developer; for user billing, "
           "POST /v1/users/:external_user_id/chat/completions (or the X-External-User-ID header on the plain path).",)
NEEDS = (Needs.WRITES, Needs.CHAT)


def funded_user(p: Probe, cents: int, suffix: str = "") -> str:
    """A new user of this run holding ``cents``; the rule is skipped if the grant fails."""
    user = p.t.guard.new_user() + suffix
    funded = grant(p, user, cents, description="quota-conformance chat funds")
    if funded.status != 200:
        p.skip(f"could not fund a user to chat with: the grant answered {funded.status}")
    return user


def _small_chat(p: Probe, stream: bool = False) -> dict[str, Any]:
    if p.first:
        return chat_body(p, max_tokens=4, stream=stream)
    copies = p.draw(st.integers(1, 3))
    prompt = p.draw(st.sampled_from(["Say hello.", "Count to three.", "Résumé en une phrase: 🎉", BIG_PROMPT[:400]]))
    return chat_body(p, prompt, copies, p.draw(st.integers(1, 16)), stream=stream)


def sse_events(exchange: Exchange) -> list[str]:
    """The ``data:`` payloads of a server-sent event stream, in order."""
    text = exchange.response.content.decode("utf-8", "replace")
    return [line[5:].strip() for line in text.replace("\r\n", "\n").split("\n") if line.startswith("data:")]


def charged(exchange: Exchange) -> int | None:
    """What a chat answer says it cost (micro-dollars): its quota block, or a stream's last one."""
    if exchange.header("Content-Type") and "text/event-stream" in (exchange.header("Content-Type") or ""):
        for payload in reversed(sse_events(exchange)):
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue
            value = chunk.get("quota", {}).get("credits_used") if isinstance(chunk, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None
    return quota_micros(exchange)


def _debit(p: Probe, form: str) -> None:
    """Fund a user, chat on ``form`` ("path" or "header"), and read the money back: the user
    down by exactly the charge, the developer balance untouched."""
    # Ten cents when the share allows (two on a small budget): more than a 4,096-token hold,
    # which a chat debiting its hold instead of its cost would then take.
    funds = min(10, p.wallet.left // CENT) if not p.first or p.affordable(0.15) else 2
    # A capital letter: a header or path lower-cased on the way bills another user.
    user = funded_user(p, funds, suffix="-Ann")
    stream = not p.first and p.draw(st.booleans())
    body = _small_chat(p, stream=stream)
    send = (lambda: user_chat(p, user, body)) if form == "path" else (lambda: header_chat(p, user, body))
    moved, still, pool_reads, answer = watch_pool(p, send)
    how = "POST /v1/users/{id}/chat/completions" if form == "path" else "POST /v1/chat/completions with the header"
    if answer.status != 200:
        p.fail([answer], "A funded user's chat was refused",
               f"{how} for a user holding {usd(funds * CENT)} answered {answer.status} {code_text(answer)}")
        return
    cost = charged(answer)
    read = user_balance(p, user)
    steps = [answer, read.exchange]
    start = funds * CENT
    if cost is None:
        # No charge reported (a stream without a quota block): the balance must still have moved.
        p.require(read.ok and ((read.micros is not None and read.micros < start) or (read.cents or 0) < funds), steps,
                  "A user's chat debited nothing", f"{how}: the balance is still {read.shown} after the chat")
    else:
        problems = []
        if not read.agrees_with(start - cost):
            problems.append(f"the user held {usd(start)} and the chat cost {usd(cost)} ({cost} micro-dollars), "
                            f"but the balance reads {read.shown}"
                            + (f" ({read.micros} micro-dollars)" if read.micros is not None else ""))
        if not stream and answer.field("quota", "billing_mode") not in (None, "user"):
            problems.append(f"quota.billing_mode is {shown(answer.field('quota', 'billing_mode'))}")
        if not stream:
            quota_before = parse_money(answer.field("quota", "balance_before"))
            quota_after = parse_money(answer.field("quota", "balance_after"))
            # The read right after shows the very balance the quota block ends on.
            if (quota_before not in display_cents(start) or quota_after not in display_cents(start - cost)
                    or (read.ok and quota_after != read.cents)):
                problems.append(f"the quota block says {shown(answer.field('quota', 'balance_before'))} -> "
                                f"{shown(answer.field('quota', 'balance_after'))} for a balance of {usd(start)} "
                                f"charged {usd(cost)}")
        by_query = query_balance(p, user)
        steps.append(by_query.exchange)
        if not by_query.agrees_with(start - cost):
            problems.append(f"GET /v1/balance?external_user_id= reads {by_query.shown} after the chat")
        p.require(not problems, steps, "A user's chat did not debit exactly its cost", f"{how}: " + "; ".join(problems))
        if p.affordable(0.01) and read.micros is not None:
            _grant_after_chat(p, user, start - cost, steps)
    if moved is not None and moved != 0:
        if still:
            p.fail([answer, *pool_reads], "A user's chat moved the developer balance",
                   f"{how} billed the user, yet the developer balance moved by {usd(moved)}")
        else:
            p.undecided("the developer balance moved for other reasons meanwhile")


def _grant_after_chat(p: Probe, user: str, held: int, steps: list[Exchange]) -> None:
    """A cent granted after a chat adds a cent to what the chat left, its part under the cent
    included (a store that rewrites the balance in whole cents loses it)."""
    granted = grant(p, user, 1, description="quota-conformance after a chat")
    read = user_balance(p, user)
    steps += [granted, read.exchange]
    if granted.status == 200 and read.micros is not None:
        p.require(read.micros == held + CENT, steps, "A grant after a chat lost money",
                  f"the user held {held} micro-dollars after the chat; a grant of $0.01 left "
                  f"{read.micros} micro-dollars, not {held + CENT}")


@probe("chat.user_debit", sources=(*BILLING, "seed: POST /v1/users/:id/chat/completions"),
       elements=(USER_CHAT_OP, "#/components/schemas/QuotaCharge"),
       cost=Cost(2 * CENT, 3, most=25 * CENT, sharp=15 * CENT),
       choices=("#/components/schemas/QuotaCharge/properties/credits_used",),
       needs=NEEDS, stage=5)
def chat_user_debit(p: Probe) -> None:
    """A funded user's chat on POST /v1/users/{id}/chat/completions debits exactly its
    quota.credits_used from that user, read back, and nothing from the developer."""
    _debit(p, "path")
    if p.first and p.affordable(0.02):
        _path_wins_over_header(p)


def _path_wins_over_header(p: Probe) -> None:
    """A chat on a user's path that also carries the header naming another user bills the
    user of the path (the path is the user-billing form); the other user keeps every micro-dollar."""
    user, other = funded_user(p, 1, suffix="-path"), funded_user(p, 1, suffix="-header")
    answer = p.t.send(USER_CHAT, path={"external_user_id": user}, headers={p.t.facts.user_header: other},
                      body=chat_body(p))
    read = user_balance(p, other)
    p.require(answer.status != 200 or read.agrees_with(CENT), [answer, read.exchange],
              "A chat on a user's path billed the user the header named",
              f"POST /v1/users/{{id}}/chat/completions with {p.t.facts.user_header} naming another user: "
              f"that user's $0.01 now reads {read.shown}")


@probe("chat.header_form", sources=BILLING, elements=(f"{CHAT_OP}/parameters/0",), cost=Cost(2 * CENT, 2),
       needs=NEEDS, stage=9)
def chat_header_form(p: Probe) -> None:
    """A chat on POST /v1/chat/completions with X-External-User-ID bills that user, exactly as
    the path form does, and not the developer."""
    _debit(p, "header")


@probe("chat.developer_billing", sources=BILLING, elements=(CHAT_OP,),
       cost=Cost(2 * CENT + DEVELOPER_CHAT_RESERVE, 1), needs=NEEDS, stage=9)
def chat_developer_billing(p: Probe) -> None:
    """POST /v1/chat/completions without X-External-User-ID bills the developer, never a user,
    even right after a chat that named one (one tiny chat, reserved from the budget)."""
    user = funded_user(p, 2)
    named = header_chat(p, user, chat_body(p, max_tokens=1))
    if named.status != 200:
        p.skip(f"the header-billed chat answered {named.status} (see chat.header_form)")
    before = user_balance(p, user)
    p.wallet.take(DEVELOPER_CHAT_RESERVE)
    moved, still, pool_reads, plain = watch_pool(p, lambda: header_chat(p, None, chat_body(p, max_tokens=1)))
    after = user_balance(p, user)
    steps = [named, plain, after.exchange]
    if plain.status != 200:
        p.fail(steps, "A developer-billed chat was refused",
               f"POST /v1/chat/completions without the header answered {plain.status} {code_text(plain)}")
        return
    problems = []
    if after.cents != before.cents or after.micros != before.micros:
        problems.append(f"the user named by the previous chat went {before.shown} -> {after.shown}")
    if plain.field("quota", "billing_mode") not in (None, "developer"):
        problems.append(f"quota.billing_mode is {shown(plain.field('quota', 'billing_mode'))}")
    cost = charged(plain)
    if cost is not None and moved is not None and still and moved != -cost:
        problems.append(f"the chat cost {usd(cost)} but the developer balance moved by {usd(moved)}")
    elif cost is not None and moved is not None and not still and moved != -cost:
        p.undecided("the developer balance moved for other reasons meanwhile")
    p.require(not problems, [*steps, *pool_reads], "A developer-billed chat did not bill the developer",
              "; ".join(problems))


def _drain(p: Probe) -> tuple[str, list[Exchange], int, str]:
    """Fund a user with one cent and send large chats until one is not served. The outcome:
    "refused" (the last exchange is the refusal, whatever its status: an error envelope
    answered 200 included), "overserved" (a chat was served that the balance, by the quota
    blocks, could not cover) or "still" (never refused); the exchanges; what the user should
    still hold; and the user."""
    user = funded_user(p, DRAIN_FUNDS // CENT)
    left, steps = DRAIN_FUNDS, []
    for i in range(p.t.options.max_drain_chats + 1):
        # First a small chat: the balance, under a cent now, is still a balance (402, not 404).
        body = chat_body(p) if i == 0 else chat_body(p, BIG_PROMPT, BIG_MESSAGES)
        exchange = user_chat(p, user, body)
        steps.append(exchange)
        if exchange.status != 200 or isinstance(exchange.field("error"), dict):
            return "refused", steps, left, user
        cost = charged(exchange)
        if left == 0 or (cost is not None and cost > left):
            return "overserved", steps, left, user
        left -= cost or 0
    return "still", steps, left, user


@probe("chat.insufficient", sources=("seed: 402 insufficient_balance POST /v1/users/:id/chat/completions "
                                     "User balance too low",),
       elements=("#/components/responses/InsufficientBalance",), cost=Cost(CENT, 1), needs=NEEDS, stage=6)
def chat_insufficient(p: Probe) -> None:
    """A chat the user's balance cannot cover answers 402 insufficient_balance (any other
    answer is a failure: a 404 for a drained user, a 400, an error answered 200, a completion
    served anyway), and charges nothing: the balance then reads what the quota blocks left,
    and the developer balance moved only by the cent granted to that user."""
    insufficient = p.t.facts.error("InsufficientBalance")
    moved, still, pool_reads, (outcome, steps, left, user) = watch_pool(p, lambda: _drain(p))
    last = steps[-1]
    if moved is not None and still and moved != -DRAIN_FUNDS:  # what the user was granted, nothing more
        p.fail([*steps, *pool_reads], "A user's chats moved the developer balance",
               f"around a grant of {usd(DRAIN_FUNDS)} and that user's chats (the last one refused) the "
               f"developer balance moved by {usd(moved)}; expected -{usd(DRAIN_FUNDS)}: a user-billed chat "
               "never bills the developer",
               DOCUMENTED)
    if outcome == "overserved":
        p.fail(steps, "A chat the balance could not cover was served",
               f"the user held {usd(left)} by the quota blocks; the chat was served with credits_used "
               f"{shown(last.field('quota', 'credits_used'))} and quota.balance_after "
               f"{shown(last.field('quota', 'balance_after'))} (expected {insufficient.status} {insufficient.code})")
    elif outcome == "still":
        p.skip(f"the user still held {usd(left)} after {len(steps)} chats; raise --max-drain-chats")
    else:
        if not p.require(last.status == insufficient.status and last.error_code == insufficient.code, steps,
                         f"A chat the balance could not cover was not refused with {insufficient.status} "
                         f"{insufficient.code}", f"the chat answered {last.status} {code_text(last)}"):
            return
        after = user_balance(p, user)
        micros = "" if after.micros is None else f" ({after.micros} micro-dollars)"
        p.require(not after.ok or after.agrees_with(left), [*steps, after.exchange], "A refused chat charged the user",
                  f"by the quota blocks the user held {usd(left)} when the chat was refused; the balance "
                  f"then reads {after.shown}{micros}")


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
    if funded.status != 200:
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
        if exchange.status != 200:
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
    costs = [charged(x) if x.status == 200 else None for x in (one, two)]
    before = user_balance(p, user)
    held = before.micros if before.micros is not None else None if before.cents is None else before.cents * CENT
    if None in costs or held is None or costs[1] <= costs[0]:  # type: ignore[operator]
        return True  # nothing to size the chats by: the sequential checks still run
    per_copy = costs[1] - costs[0]  # type: ignore[operator]
    base = costs[0] - per_copy  # type: ignore[operator]
    copies = max(1, round((held * 0.7 - base) / per_copy))
    if not held < n * (base + copies * per_copy) <= n * held:
        return True
    answers = concurrently(n, lambda _: user_chat(p, user, chat_body(p, UNIT_PROMPT, copies)))
    sent = [a for a in answers if isinstance(a, Exchange)]
    after = user_balance(p, user)
    steps += [*sent, after.exchange]
    served = [a for a in sent if a.status == 200 and not isinstance(a.field("error"), dict)]
    spent = sum(charged(a) or 0 for a in served)
    negative = any(_negative(a, after) for a in served) or _negative(after.exchange, after)
    return p.require(not negative and spent <= held, steps, "Chats in flight together overspent the balance",
                     f"{n} concurrent chats for a user holding {before.shown}: {len(served)} served, costing "
                     f"{usd(spent)} together; the balance then reads {after.shown}")


def _negative(exchange: Exchange, after: Balance) -> bool:
    text = exchange.field("quota", "balance_after")
    if exchange.status == 200 and isinstance(text, str) and text.strip().startswith("-"):
        return True
    if after.micros is not None and after.micros < 0:
        return True
    raw = after.exchange.field("balance")
    return isinstance(raw, str) and raw.strip().startswith("-")


def _same(before: Balance, after: Balance) -> bool:
    return before.cents == after.cents and before.micros == after.micros


@probe("chat.stream_sse", sources=("public-facts: stream: true answers with server-sent events, OpenAI style.",),
       elements=("#/components/responses/ChatCompletion",), cost=Cost(2 * CENT, 2), needs=NEEDS, stage=9)
def chat_stream_sse(p: Probe) -> None:
    """``stream: true`` answers text/event-stream: ``data:`` events, each a JSON
    chat.completion.chunk, the last one ``data: [DONE]``."""
    user = funded_user(p, 2)
    body = _small_chat(p, stream=True)
    exchange = user_chat(p, user, body) if p.first or p.draw(st.booleans()) else header_chat(p, user, body)
    if exchange.status != 200:
        p.fail([exchange], "A streamed chat was refused",
               f"a funded user's chat with stream: true answered {exchange.status} {code_text(exchange)}")
        return
    content_type = exchange.header("Content-Type") or ""
    events = sse_events(exchange)
    problems = []
    if not content_type.startswith("text/event-stream"):
        problems.append(f"Content-Type is {shown(content_type)}, not text/event-stream")
    if not events or events[-1] != "[DONE]":
        problems.append("the stream does not end with data: [DONE]"
                        + (f" (its last event is {events[-1][:60]!r})" if events else " (no data: events at all)"))
    for payload in events[:-1]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            problems.append(f"an event is not JSON: {payload[:60]!r}")
            break
        if not isinstance(chunk, dict) or chunk.get("object") != "chat.completion.chunk":
            problems.append(f"an event is not a chat.completion.chunk: {payload[:60]!r}")
            break
    p.require(not problems, [exchange], "A streamed chat is not server-sent events ending [DONE]",
              "; ".join(problems))
