"""Behavioural probes of money: grant arithmetic, balance reads, idempotent replays (also
concurrent ones), and the 402 a chat gets when the user's balance is too low.

Every grant goes to a user this run created (``PREFIX`` + random suffix) and is one cent,
reserved from the budget by the safety guard before it is sent.

One grant flow feeds several rules (each a step of the same story: the grant, its reads, its
replays); the flow is the probe of the first, the others are registered as ``shared``.
"""

from __future__ import annotations

import threading
from typing import Any

from mockserver.contract import CONTRACT, DOCUMENTED

from .checks import parse_money
from .engine import Exchange, Target
from .facts import GRANT, USER_BALANCE, USER_CHAT
from .registry import probe, shared
from .safety import RequestRefused

CENT = 0.01
# About 9,000 tokens of prompt (four messages, each within the contract's 32,768 characters):
# one chat costs more than the cent granted at any usual price.
BIG_PROMPT = ("Count the words in this sentence please. " * 220).strip()
BIG_MESSAGES = 4



class Skip(Exception):
    """The remaining checks of a scenario cannot run; the message says why."""


def ptr(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


GRANT_RESPONSE = ("components", "schemas", "GrantResponse", "properties")
IDEMPOTENCY = ptr("components", "parameters", "IdempotencyKey")


@probe()
def valid_grant_accepted(t: Target) -> None:
    """A valid grant to a new user answers 200."""
    if t.options.read_only:
        for name in GRANT_CHECKS:
            t.results.skip(name, "read-only mode sends no grants; run without --read-only to enable")
        return
    try:
        _grant_flow(t)
    except Skip as skip:
        for name in GRANT_CHECKS:
            t.results.skip(name, str(skip))


# Recorded by valid_grant_accepted's flow, in its order.
GRANT_CHECKS = [
    "valid_grant_accepted",
    shared("grant_amount_matches_request",
           description="amount_granted is the amount asked for; a first grant has duplicate: false."),
    shared("balance_read_shows_new_balance",
           description="GET /v1/users/{id}/balance shows balance_after right after the grant."),
    shared("balance_query_returns_that_user",
           description="GET /v1/balance?external_user_id= returns that user's balance, not the developer's."),
    shared("duplicate_grant_credited_once",
           description="The same Idempotency-Key and body twice credit the user once."),
    shared("replay_marked_duplicate_true", description="The replay answers 200 with duplicate: true."),
    shared("replay_keeps_ledger_id", description="The replay answers the original ledger_id."),
    shared("replay_sends_idempotent_replayed_header", provenance=CONTRACT,
           description="The replay carries Idempotent-Replayed: true."),
    shared("reused_key_with_other_body_rejected", provenance=CONTRACT,
           description="The same key with another body answers 422 idempotency_key_reused and credits nothing."),
    shared("different_keys_credit_each_time", description="The same body under a new key is a new grant."),
    shared("concurrent_same_key_credited_once", description="Concurrent grants with one key credit the user once."),
]


def grant(t: Target, user: str, key: str | None, amount: float = CENT,
          description: str = "quota-conformance") -> Exchange:
    headers = {"Idempotency-Key": key} if key else {}
    try:
        return t.send(GRANT, headers=headers, body={"external_user_id": user, "amount": amount,
                                                     "description": description})
    except RequestRefused as refused:
        raise Skip(f"grant not sent: {refused}") from refused


def read_balance(t: Target, user: str) -> tuple[int | None, Exchange]:
    exchange = t.send(USER_BALANCE, path={"external_user_id": user})
    return (parse_money(exchange.field("balance")) if exchange.status == 200 else None), exchange


def _require(t: Target, check: str, ok: bool, exchanges: list[Exchange], title: str, message: str,
             provenance: str = DOCUMENTED) -> bool:
    if ok:
        t.results.ran(check)
    else:
        t.violation(check, exchanges, title, message, provenance)
    return ok


def _grant_flow(t: Target) -> None:
    user, key = t.guard.new_user(), t.guard.new_idempotency_key()
    first = grant(t, user, key)
    if not _require(t, "valid_grant_accepted", first.status == 200, [first], "A valid grant was refused",
                    f"a grant of $0.01 to a new user answered {first.status} {first.error_code or ''}"):
        raise Skip("the first grant was refused, so nothing was credited to check")
    after = parse_money(first.field("balance_after"))
    _require(t, "grant_amount_matches_request",
             first.field("amount_granted") == "$0.01" and first.field("duplicate") is False, [first],
             "The grant answered another amount or duplicate flag",
             f"asked for $0.01; amount_granted {first.field('amount_granted')!r}, "
             f"duplicate {first.field('duplicate')!r} (expected '$0.01' and false)")
    if after is None:
        raise Skip("the grant's balance_after is not a money string (see money_strings_well_formed)")

    balance, read = read_balance(t, user)
    _require(t, "balance_read_shows_new_balance", balance == after, [first, read],
             "The balance read does not show the grant",
             f"balance_after was {first.field('balance_after')}; GET /v1/users/{{id}}/balance answered "
             f"{read.status} {read.field('balance')!r}")
    query = t.send("getBalance", query={"external_user_id": user})
    _require(t, "balance_query_returns_that_user",
             query.status == 200 and query.field("external_user_id") == user
             and parse_money(query.field("balance")) == after, [first, query],
             "/v1/balance?external_user_id= did not return that user's balance",
             f"expected external_user_id {user!r} with balance {first.field('balance_after')}; got {query.status} "
             f"external_user_id {query.field('external_user_id')!r}, balance {query.field('balance')!r}")

    _replay(t, user, key, first, after)
    _reused_key(t, user, key, first)
    _different_key(t, user, first)
    _concurrent(t, user)


def _replay(t: Target, user: str, key: str, first: Exchange, after: int) -> None:
    replay = grant(t, user, key)
    balance, read = read_balance(t, user)
    _require(t, "duplicate_grant_credited_once", balance == after, [first, replay, read],
             "A replayed grant credited the user again",
             f"after the replay the balance is {read.field('balance')!r}; the first grant left "
             f"{first.field('balance_after')}", t.provenance.at(IDEMPOTENCY))
    _require(t, "replay_marked_duplicate_true", replay.status == 200 and replay.field("duplicate") is True,
             [first, replay], "The replay is not marked duplicate: true",
             f"the replay answered {replay.status} with duplicate {replay.field('duplicate')!r}",
             t.provenance.at(ptr(*GRANT_RESPONSE, "duplicate")))
    _require(t, "replay_keeps_ledger_id", replay.field("ledger_id") == first.field("ledger_id"), [first, replay],
             "The replay answered another ledger_id",
             f"first ledger_id {first.field('ledger_id')!r}, replay {replay.field('ledger_id')!r}",
             t.provenance.at(ptr(*GRANT_RESPONSE, "ledger_id")))
    value = replay.header("Idempotent-Replayed")
    _require(t, "replay_sends_idempotent_replayed_header", value == "true", [first, replay],
             "The replay lacks Idempotent-Replayed: true", f"Idempotent-Replayed is {value!r}",
             t.provenance.at(ptr("components", "headers", "IdempotentReplayed")))


def _reused_key(t: Target, user: str, key: str, first: Exchange) -> None:
    check = "reused_key_with_other_body_rejected"
    op = t.operation(GRANT)
    reused = t.facts.error("IdempotencyKeyReused")
    code, status = reused.code, reused.status
    before, _ = read_balance(t, user)
    other = grant(t, user, key, description="quota-conformance: another body")
    after, read = read_balance(t, user)
    _require(t, check, other.status == status and other.error_code == code and after == before, [first, other, read],
             f"The same key with another body was not refused with {status} {code}",
             f"answered {other.status} {other.error_code!r}; balance {before} -> {after} cents",
             t.provenance.of_response(op, status))


def _different_key(t: Target, user: str, first: Exchange) -> None:
    before, _ = read_balance(t, user)
    second = grant(t, user, t.guard.new_idempotency_key())
    after, read = read_balance(t, user)
    ok = (second.status == 200 and second.field("duplicate") is False and before is not None
          and after == before + 1 and second.field("ledger_id") != first.field("ledger_id"))
    _require(t, "different_keys_credit_each_time", ok, [first, second, read],
             "A grant under a new key was not a new grant",
             f"answered {second.status}, duplicate {second.field('duplicate')!r}, ledger_id "
             f"{second.field('ledger_id')!r} (first {first.field('ledger_id')!r}); balance {before} -> {after} cents",
             t.provenance.at(IDEMPOTENCY))


def _concurrent(t: Target, user: str) -> None:
    check = "concurrent_same_key_credited_once"
    key = t.guard.new_idempotency_key()
    before, _ = read_balance(t, user)
    n = t.options.concurrent_requests
    barrier = threading.Barrier(n)
    answers: list[Exchange | BaseException] = [RuntimeError("not run")] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            answers[i] = grant(t, user, key)
        except BaseException as exc:  # reported below, never lost in a thread
            answers[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    _run_all(threads)
    sent = [a for a in answers if isinstance(a, Exchange)]
    if not sent:
        t.results.skip(check, f"the concurrent grants were not sent: {answers[0]}")
        return
    after, read = read_balance(t, user)
    ledger_ids = {a.field("ledger_id") for a in sent if a.status == 200}
    statuses = sorted(a.status for a in sent)
    ok = before is not None and after == before + 1 and len(ledger_ids) == 1
    _require(t, check, ok, [*sent, read], "Concurrent grants with one key were not credited once",
             f"{n} concurrent grants of $0.01 with one key answered {statuses} with {len(ledger_ids)} ledger "
             f"id(s); balance {before} -> {after} cents (expected +1)", t.provenance.at(IDEMPOTENCY))


def _run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


# -- chat: 402 insufficient_balance ------------------------------------------------------

@probe()
def insufficient_balance_on_chat(t: Target) -> None:
    """A chat the user's balance cannot cover answers 402 insufficient_balance."""
    checks = ("insufficient_balance_on_chat", NEVER_NEGATIVE)
    reason = None
    if t.options.read_only:
        reason = "read-only mode sends no chats; run without --read-only to enable"
    elif not t.options.chat:
        reason = "chats disabled by --no-chat; drop it to enable"
    if reason:
        for name in checks:
            t.results.skip(name, reason)
        return
    try:
        _chat_flow(t)
    except Skip as skip:
        for name in checks:
            t.results.skip(name, str(skip))


NEVER_NEGATIVE = shared("chat_balance_never_negative", description="A chat never takes a balance below $0.00.")


def chat(t: Target, user: str, prompt: str = "Say hello.", copies: int = 1) -> Exchange:
    messages = [{"role": "user", "content": prompt}] * copies
    body: dict[str, Any] = {"model": t.options.chat_model, "messages": messages, "max_tokens": 1}
    try:
        return t.send(USER_CHAT, path={"external_user_id": user}, body=body)
    except RequestRefused as refused:
        raise Skip(f"chat not sent: {refused}") from refused


def _chat_flow(t: Target) -> None:
    check = "insufficient_balance_on_chat"
    op = t.operation(USER_CHAT)
    insufficient = t.facts.error("InsufficientBalance")
    prov = t.provenance.of_response(op, insufficient.status)

    def _is_402(_t: Target, exchange: Exchange) -> bool:
        return exchange.status == insufficient.status

    # 1. A user that was never granted has nothing: the cheapest broke user there is.
    fresh = chat(t, t.guard.new_user())
    if _is_402(t, fresh):
        _require(t, check, fresh.error_code == insufficient.code, [fresh], "402 without insufficient_balance",
                 f"code {fresh.error_code!r}", prov)
        t.results.skip("chat_balance_never_negative", "a never-granted user was refused; no balance was drained")
        return
    if fresh.status == 200:
        t.violation(check, [fresh], "A user with no balance got a completion",
                    "a user this run never granted anything was served (expected 402 insufficient_balance)", prov)
        t.results.skip("chat_balance_never_negative",
                       "not drained: a user with no balance at all was served (see insufficient_balance_on_chat)")
        return
    # 2. Unknown users are 404 here: grant one cent and drain it with large prompts.
    user = t.guard.new_user()
    funded = grant(t, user, t.guard.new_idempotency_key())
    if funded.status != 200:
        raise Skip(f"could not fund a user to drain (grant answered {funded.status})")
    steps = [funded]
    for _ in range(t.options.max_drain_chats):
        exchange = chat(t, user, BIG_PROMPT, BIG_MESSAGES)
        steps.append(exchange)
        if _is_402(t, exchange):
            _require(t, check, exchange.error_code == insufficient.code, steps, "402 without insufficient_balance",
                     f"code {exchange.error_code!r}", prov)
            t.results.ran("chat_balance_never_negative")
            return
        if exchange.status != 200:
            raise Skip(f"the drain chat answered {exchange.status} {exchange.error_code or ''}; cannot reach a "
                       "balance too low")
        before = parse_money(exchange.field("quota", "balance_before"))
        after = parse_money(exchange.field("quota", "balance_after"))
        if after is None or (before is not None and after > before) or before == 0:
            t.violation("chat_balance_never_negative", steps, "A chat took the balance below zero",
                        f"quota.balance_before {exchange.field('quota', 'balance_before')!r}, balance_after "
                        f"{exchange.field('quota', 'balance_after')!r}: a balance never goes negative (402 at zero)",
                        t.provenance.of_operation(op.operation_id))
            t.violation(check, steps, "A chat the balance could not cover was served",
                        "the chat was answered 200 instead of 402 insufficient_balance", prov)
            return
        t.results.ran("chat_balance_never_negative")
    balance, _ = read_balance(t, user)
    raise Skip(f"the user still had {balance} cents after {t.options.max_drain_chats} chats; "
               "raise --max-drain-chats to drain it")

