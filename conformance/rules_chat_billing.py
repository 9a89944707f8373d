"""Rules of chat billing: a funded user's chat debits exactly what its quota block says, on
the path form and the header form alike, and never the developer; a chat naming no user bills
the developer.

Every chat bills a user this run created and funded with a few cents; the one developer-billed
chat (chat.developer_billing) is tiny, and its cost is reserved from the budget like a grant.
"""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import (
    BIG_PROMPT,
    chat_body,
    code_text,
    display_cents,
    grant,
    header_chat,
    query_balance,
    shown,
    user_balance,
    user_chat,
)
from .chat_helpers import BILLING, CHAT_OP, NEEDS, USER_CHAT_OP, charged, funded_user, quota_block, small_chat
from .checks import json_integer, parse_money
from .engine import Exchange
from .facts import USER_CHAT
from .properties import Probe, Skip, usd
from .registry import Cost, probe
from .rule_helpers import concurrently, watch_pool
from .safety import DEVELOPER_CHAT_RESERVE
from .sse import is_event_stream

CENT = MICROS_PER_CENT
# A sandbox account says billing_mode "test" of every chat (public-facts: "the newest
# generation adds "test", shown as Sandbox"): the money is what these rules judge there.
SANDBOX = "test"


def _debit(p: Probe, form: str, stream: bool | None = None) -> None:
    """Fund a user, chat on ``form`` ("path" or "header"), streamed or not (None: drawn), and
    read the money back: the user down by exactly the charge, the developer balance untouched,
    and the quota block (a stream's last) saying so."""
    # Five cents when the share allows (two on a small budget): more than a 4,096-token hold of
    # gpt-4o (4.5 cents), which a chat debiting its hold instead of its cost would then take.
    funds = min(5, p.wallet.left // CENT) if not p.first or p.affordable(0.08) else 1
    # A capital letter: a header or path lower-cased on the way bills another user. In the
    # header, a literal "%41" too: a gateway that percent-decodes the header bills "-AnnA".
    user = funded_user(p, funds, suffix="-Ann" if form == "path" else "-Ann%41")
    if stream is None:
        stream = not p.first and p.draw(st.booleans())
    body = small_chat(p, stream=stream)
    if not stream and p.first:
        body["stream"] = False  # said, not left out: a relay that streams on any "stream" key shows
    send = (lambda: user_chat(p, user, body)) if form == "path" else (lambda: header_chat(p, user, body))
    moved, still, pool_reads, answer = watch_pool(p, send)
    how = "POST /v1/users/{id}/chat/completions" if form == "path" else "POST /v1/chat/completions with the header"
    if not answer.ok:
        p.fail([answer], "A funded user's chat was refused",
               f"{how} for a user holding {usd(funds * CENT)} answered {answer.status} {code_text(answer)}")
        return
    if body.get("stream") is False and is_event_stream(answer):
        p.fail([answer], "A chat with stream: false was answered as a stream",
               f"{how} with \"stream\": false answered Content-Type {answer.header('Content-Type')}")
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
        quota = quota_block(answer) or {}
        # Who paid, or the account's own mode (public-facts lists the field, not whose it is).
        if quota.get("billing_mode") not in (None, "user", SANDBOX, p.t.billing_mode()):
            problems.append(f"quota.billing_mode is {shown(quota.get('billing_mode'))}")
        if quota:
            quota_before = parse_money(quota.get("balance_before"))
            quota_after = parse_money(quota.get("balance_after"))
            # The read right after shows the very balance the quota block ends on.
            if (quota_before not in display_cents(start) or quota_after not in display_cents(start - cost)
                    or (read.ok and quota_after != read.cents)):
                problems.append(f"the quota block says {shown(quota.get('balance_before'))} -> "
                                f"{shown(quota.get('balance_after'))} for a balance of {usd(start)} "
                                f"charged {usd(cost)}")
        by_query = query_balance(p, user)
        steps.append(by_query.exchange)
        if not by_query.agrees_with(start - cost):
            problems.append(f"GET /v1/balance?external_user_id= reads {by_query.shown} after the chat")
        p.require(not problems, steps, "A user's chat did not debit exactly its cost", f"{how}: " + "; ".join(problems))
        if p.affordable(0.01) and read.micros is not None and not stream:
            _grant_after_chat(p, user, start - cost, steps)
    if moved is not None and moved != 0:
        if still:
            # Billed, it breaks the docs; credited the markup of a chat the user paid for (which
            # the docs do not place) only the contract's choice. Credited the whole charge or
            # more, the money is counted twice: the user paid it, and the developer holds it too.
            markup_at_most = cost is None or moved < cost
            p.fail([answer, *pool_reads], "A user's chat moved the developer balance",
                   f"{how} billed the user, yet the developer balance moved by {usd(moved)}"
                   + ("" if cost is None else f" (the chat cost {usd(cost)})"),
                   DOCUMENTED if moved < 0 or not markup_at_most else CONTRACT)
        else:
            p.undecided("the developer balance moved for other reasons meanwhile")


def _grant_after_chat(p: Probe, user: str, held: int, steps: list[Exchange]) -> None:
    """A cent granted after a chat adds a cent to what the chat left, its part under the cent
    included (a store that rewrites the balance in whole cents loses it)."""
    granted = grant(p, user, 1, description="quota-conformance after a chat")
    read = user_balance(p, user)
    steps += [granted, read.exchange]
    if granted.ok and read.micros is not None:
        p.require(read.micros == held + CENT, steps, "A grant after a chat lost money",
                  f"the user held {held} micro-dollars after the chat; a grant of $0.01 left "
                  f"{read.micros} micro-dollars, not {held + CENT}")


@probe("chat.user_debit", sources=(*BILLING, "seed: POST /v1/users/:id/chat/completions"),
       elements=(USER_CHAT_OP, "#/components/schemas/QuotaCharge"),
       cost=Cost(2 * CENT, 3, most=20 * CENT, sharp=9 * CENT),
       choices=("#/components/schemas/QuotaCharge/properties/credits_used",),
       needs=NEEDS, stage=5)
def chat_user_debit(p: Probe) -> None:
    """A funded user's chat on POST /v1/users/{id}/chat/completions debits exactly its
    quota.credits_used from that user, read back, and nothing from the developer."""
    _debit(p, "path")
    if p.first and p.affordable(0.02):
        user = _path_wins_over_header(p)
        if user is not None:
            _same_usage_same_price(p, user)


def _path_wins_over_header(p: Probe) -> str | None:
    """A chat on a user's path that also carries the header naming another user bills the
    user of the path (the path is the user-billing form), once; the other user keeps every
    micro-dollar. The path's user, for more chats (None when this failed)."""
    user, other = funded_user(p, 1, suffix="-path"), funded_user(p, 1, suffix="-header")
    answer = p.t.send(USER_CHAT, path={"external_user_id": user}, headers={p.t.facts.user_header: other},
                      body=chat_body(p))
    read = user_balance(p, other)
    if not p.require(not answer.ok or read.agrees_with(CENT), [answer, read.exchange],
                     "A chat on a user's path billed the user the header named",
                     f"POST /v1/users/{{id}}/chat/completions with {p.t.facts.user_header} naming another user: "
                     f"that user's $0.01 now reads {read.shown}"):
        return None
    cost = charged(answer)
    if answer.ok and cost is not None:
        mine = user_balance(p, user)
        if not p.require(mine.agrees_with(CENT - cost), [answer, mine.exchange],
                         "A chat with both forms was billed twice",
                         f"the path's user held $0.01 and the chat cost {cost} micro-dollars; the balance reads "
                         f"{mine.shown}" + (f" ({mine.micros} micro-dollars)" if mine.micros is not None else "")):
            return None
    return user


# Pairs of chats whose usage is the same (the prompt's tokens, the completion's tokens) but
# whose requests differ otherwise: (what differs, the first body's fields, the second's). The
# mock and OpenAI count a message's tokens whatever its role, and a prompt once for all its
# choices; the answer is cut at max_tokens, so a long enough answer has exactly its limit.
PRICE_TEXT = BIG_PROMPT[:1200]
SAME_USAGE_PAIRS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    ("a system message in place of a user message of the same text",
     {"messages": [{"role": "user", "content": PRICE_TEXT}, {"role": "user", "content": "Say hello."}],
      "max_tokens": 1},
     {"messages": [{"role": "system", "content": PRICE_TEXT}, {"role": "user", "content": "Say hello."}],
      "max_tokens": 1}),
    ("a conversation's turns in another order (the long one first, then last)",
     {"messages": [{"role": "user", "content": PRICE_TEXT}, {"role": "assistant", "content": "Hello."},
                   {"role": "user", "content": "Say hello."}], "max_tokens": 1},
     {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello."},
                   {"role": "user", "content": PRICE_TEXT}], "max_tokens": 1}),
    ("two choices of 16 tokens each in place of one of 32",
     {"messages": [{"role": "user", "content": PRICE_TEXT}], "max_tokens": 32},
     {"messages": [{"role": "user", "content": PRICE_TEXT}], "max_tokens": 16, "n": 2}),
    # The second of this pair goes by the header form: the same user billed the same chat.
    ("the header form in place of the path form",
     {"messages": [{"role": "user", "content": PRICE_TEXT}], "max_tokens": 1},
     {"messages": [{"role": "user", "content": PRICE_TEXT}], "max_tokens": 1}),
)
HEADER_PAIR = SAME_USAGE_PAIRS[-1][0]


def _usage_of(exchange: Exchange) -> tuple[Any, ...] | None:
    """A plain chat answer's usage as (prompt, completion, cached prompt tokens), or None."""
    usage = exchange.field("usage")
    if not exchange.ok or not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    counts = (json_integer(usage.get("prompt_tokens")), json_integer(usage.get("completion_tokens")))
    return None if None in counts else (*counts, cached)


def _same_usage_same_price(p: Probe, user: str) -> None:
    """Two chats of one model whose usage is the same cost the same (public-facts: the cost is
    the provider's base cost, by its tokens, times the markup), in credits_used and in what the
    balance lost: whoever's role the prompt's tokens come in (a system message is priced as a
    user message of the same text), wherever in the conversation they are (an earlier turn as
    the last one), however many choices the completion's tokens are spread over (n: 2 of 16
    tokens as one of 32), and whichever user-billing form names the user (X-External-User-ID
    on POST /v1/chat/completions as the user's path). A pair whose usage differs (an answer that
    stopped short, a prompt cache) or that is refused (the user's cent ran out) is not judged.
    ``user`` is a funded user (what it holds need not be known: only differences are)."""
    problems: list[str] = []
    steps: list[Exchange] = []
    for what, first_fields, second_fields in SAME_USAGE_PAIRS:
        answers: list[tuple[Exchange, int | None]] = []
        for fields, by_header in ((first_fields, False), (second_fields, what == HEADER_PAIR)):
            before = user_balance(p, user)
            body = {"model": p.t.chat_model, **fields}
            try:
                answer = header_chat(p, user, body) if by_header else user_chat(p, user, body)
            except Skip:  # the provider or the account's billing mode refused it: nothing to compare
                break
            after = user_balance(p, user)
            steps += [answer, after.exchange]
            debit = before.micros - after.micros if before.micros is not None and after.micros is not None else None
            answers.append((answer, debit))
        if len(answers) < 2:
            break
        (one, one_debit), (two, two_debit) = answers
        usage = _usage_of(one)
        if usage is None or usage != _usage_of(two):
            p.t.results.note(p.rule.name, f"same usage, same price: {what} answered {one.status} and {two.status} "
                                          f"with usage {usage} and {_usage_of(two)}: not compared")
            continue
        costs = charged(one), charged(two)
        # A debit is known when both reads around its chat gave micro-dollars (a read refused
        # now and then, or a deployment without balance_microdollars, leaves it unknown).
        if costs[0] != costs[1] or (None not in (one_debit, two_debit) and one_debit != two_debit):
            problems.append(f"{what}: both chats used {usage[0]} prompt and {usage[1]} completion tokens, yet "
                            f"credits_used is {costs[0]} and {costs[1]}, and the balance lost {one_debit} and "
                            f"{two_debit} micro-dollars")
    p.require(not problems, steps, "Two chats with the same usage cost differently", "; ".join(problems))


@probe("chat.header_form", sources=BILLING, elements=(f"{CHAT_OP}/parameters/0",),
       cost=Cost(CENT, 2, sharp=2 * CENT), needs=NEEDS, stage=9)
def chat_header_form(p: Probe) -> None:
    """A chat on POST /v1/chat/completions with X-External-User-ID bills that user, exactly as
    the path form does, and not the developer; streamed too (the first example sends both)."""
    if p.first:  # the stream first: the JSON form's grant after its chat may take the last cent
        _debit(p, "header", stream=True)
    _debit(p, "header")


@probe("chat.developer_billing", sources=BILLING, elements=(CHAT_OP,),
       cost=Cost(CENT + 2 * DEVELOPER_CHAT_RESERVE, 1, minimum=CENT + DEVELOPER_CHAT_RESERVE),
       needs=NEEDS, stage=9)
def chat_developer_billing(p: Probe) -> None:
    """POST /v1/chat/completions without X-External-User-ID bills the developer, never a user,
    even right after a chat that named one (one tiny chat, reserved from the budget), and its
    quota block ends on the developer balance read right after; streamed, it bills the developer
    too. An account whose GET /v1/balance says billing_mode "user" may refuse it with 400
    bad_request, the docs' wrong billing endpoint: the rule is then skipped (as every chat rule
    is when the account's mode refuses its chats)."""
    user = funded_user(p, 1)
    named = header_chat(p, user, chat_body(p, max_tokens=1))
    if not named.ok:
        p.skip(f"the header-billed chat answered {named.status} (see chat.header_form)")
    before = user_balance(p, user)
    p.wallet.take(DEVELOPER_CHAT_RESERVE)
    moved, still, pool_reads, plain = watch_pool(p, lambda: header_chat(p, None, chat_body(p, max_tokens=1)))
    after = user_balance(p, user)
    steps = [named, plain, after.exchange]
    if not plain.ok:
        p.fail(steps, "A developer-billed chat was refused",
               f"POST /v1/chat/completions without the header answered {plain.status} {code_text(plain)}")
        return
    problems = []
    if after.cents != before.cents or after.micros != before.micros:
        problems.append(f"the user named by the previous chat went {before.shown} -> {after.shown}")
    if plain.field("quota", "billing_mode") not in (None, "developer", SANDBOX, p.t.billing_mode()):
        problems.append(f"quota.billing_mode is {shown(plain.field('quota', 'billing_mode'))}")
    cost = charged(plain)
    if cost is not None and moved is not None and moved != -cost:
        if still:
            problems.append(f"the chat cost {usd(cost)} but the developer balance moved by {usd(moved)}")
        else:
            p.undecided("the developer balance moved for other reasons meanwhile")
    quota_after = parse_money(plain.field("quota", "balance_after"))
    last = pool_reads[-1] if pool_reads else None
    pool_after = json_integer(last.field("balance_microdollars")) if last is not None else None
    if (pool_after is not None and quota_after is not None and quota_after not in display_cents(pool_after)
            and still):  # asked only with a difference in hand: a passing rule waits for nothing
        problems.append(f"quota.balance_after is {shown(plain.field('quota', 'balance_after'))}, the developer "
                        f"balance read right after {shown(pool_reads[-1].field('balance'))}")
    if not p.require(not problems, [*steps, *pool_reads], "A developer-billed chat did not bill the developer",
                     "; ".join(problems)):
        return
    if p.wallet.left >= DEVELOPER_CHAT_RESERVE:
        p.wallet.take(DEVELOPER_CHAT_RESERVE)
        _developer_stream(p)


def _developer_stream(p: Probe) -> None:
    """A developer-billed chat streamed: the developer balance moves by what it reports."""
    moved, still, pool_reads, streamed = watch_pool(
        p, lambda: header_chat(p, None, chat_body(p, max_tokens=1, stream=True)))
    cost = charged(streamed)
    if not streamed.ok or cost is None or moved is None:
        return
    if moved != -cost and not still:  # asked only with a difference in hand
        p.undecided("the developer balance moved for other reasons meanwhile")
        return
    p.require(moved == -cost, [streamed, *pool_reads], "A streamed developer-billed chat did not bill the developer",
              f"the stream reported credits_used {cost} micro-dollars; the developer balance moved by {usd(moved)}")


@probe("chat.concurrent_users", sources=(*BILLING, "seed: POST /v1/users/:id/chat/completions"),
       elements=(USER_CHAT_OP,), cost=Cost(2 * CENT, 1), needs=NEEDS, stage=9)
def chat_concurrent_users(p: Probe) -> None:
    """Two users' chats in flight at the same moment each bill their own user: each balance
    drops by exactly its own chat's charge (a deployment that keeps "the billed user" in shared
    state while the provider answers bills one user twice)."""
    users = [funded_user(p, 1, suffix=f"-both{i}") for i in range(2)]
    chats = concurrently(2, lambda i: user_chat(p, users[i], chat_body(p, max_tokens=8)))
    if not all(c.ok for c in chats):
        p.undecided("a chat in flight with another was not served (see chat.user_debit)")
        return
    reads = [user_balance(p, user) for user in users]
    problems = []
    for user, chat, read in zip(users, chats, reads, strict=True):
        cost = charged(chat)
        if cost is not None and not read.agrees_with(CENT - cost):
            problems.append(f"{user!r} held $0.01 and its chat cost {cost} micro-dollars; it reads {read.shown}"
                            + (f" ({read.micros} micro-dollars)" if read.micros is not None else ""))
    p.require(not problems, [*chats, *(r.exchange for r in reads)], "Chats in flight together billed the wrong user",
              "; ".join(problems))


# Grants sent while a user's chat is in flight, a little apart, until it answers.
GRANTS_DURING_CHAT = 3
GRANT_SPACING_SECONDS = 0.05


@probe("chat.grant_during_chat", sources=(*BILLING, "seed: Add balance to an app user's account from your grant pool."),
       elements=(USER_CHAT_OP, "#/paths/~1v1~1funding~1grant/post"), cost=Cost((1 + GRANTS_DURING_CHAT) * CENT, 1),
       needs=NEEDS, stage=9)
def chat_grant_during_chat(p: Probe) -> None:
    """A grant that lands while the user's chat is in flight counts: afterwards the balance is
    what the user held, plus every grant answered 200, less the chat's quota.credits_used. (A
    deployment that reads the balance before the provider's call and writes it back after
    loses the grant; a real provider takes long enough for one to land.)"""
    funds = 1
    user = funded_user(p, funds, suffix="-during")
    body = chat_body(p, max_tokens=16, stream=not p.first and p.draw(st.booleans()))
    chat: list[Exchange] = []
    skipped: list[Skip] = []  # the chat's probe skipped in the thread (its billing mode): so is this one

    failed: list[Exception] = []  # raised again in the probe's thread, which judges them (no answer...)

    def chat_in_flight() -> None:
        try:
            chat.append(user_chat(p, user, body))
        except Skip as skip:
            skipped.append(skip)
        except Exception as exc:
            failed.append(exc)

    worker = threading.Thread(target=chat_in_flight)
    worker.start()
    grants = [grant(p, user, 1, description="quota-conformance during a chat")]
    # Spread over the chat's time, not sent back to back: grants that all land before the
    # deployment even reads the balance (its thread slow to start) would show nothing.
    while len(grants) < GRANTS_DURING_CHAT:
        worker.join(GRANT_SPACING_SECONDS)
        if not worker.is_alive():
            break
        grants.append(grant(p, user, 1, description="quota-conformance during a chat"))
    worker.join()  # never left in flight: its charge landing later would move a later rule's pool
    if skipped:
        raise skipped[0]
    if failed:
        raise failed[0]
    if not chat or not chat[0].ok or charged(chat[0]) is None:
        p.undecided("the chat answered " + (f"{chat[0].status} {code_text(chat[0])}" if chat else "nothing")
                    + " or reported no cost (see chat.user_debit)")
        return
    cost = charged(chat[0]) or 0
    landed = sum(1 for g in grants if g.ok)
    read = user_balance(p, user)
    expected = funds * CENT + landed * CENT - cost
    p.require(read.agrees_with(expected), [chat[0], *grants, read.exchange], "A grant made during a chat was lost",
              f"the user held {usd(funds * CENT)}, {landed} grant(s) of $0.01 answered 200 while the chat ran and "
              f"the chat cost {usd(cost)}: the balance should be {usd(expected)}, but reads {read.shown}"
              + (f" ({read.micros} micro-dollars)" if read.micros is not None else ""))
