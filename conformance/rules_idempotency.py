"""Rules of idempotency, in depth: a replay is the original in every field and credits
nothing; a key reused with any field changed moves no money; concurrent grants with one key
credit once and with distinct keys all land; keys are scoped per API key and kept over time.

Documented: "Provide an Idempotency-Key header to prevent duplicates". The statuses a
deployment answers for a reused or in-flight key, the Idempotent-Replayed header, the scope
and the retention are the contract's choices, and are marked so on each finding.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import ABSENT, code_text, grant, shown, skip_if_the_pool_refused, user_balance
from .checks import parse_money
from .engine import Exchange
from .facts import GRANT
from .properties import Probe, usd
from .registry import Cost, Needs, probe, shared
from .rule_helpers import DESCRIPTIONS, concurrently, watch_pool
from .strategies import amount_json

CENT = MICROS_PER_CENT
IDEMPOTENCY = "#/components/parameters/IdempotencyKey"
SOURCE = ("seed: Provide an Idempotency-Key header to prevent duplicates.",)
# The fields a replay answers as the original did (duplicate aside).
REPLAYED_FIELDS = ("external_user_id", "amount_granted", "balance_before", "balance_after")

REPLAY_HEADER = shared("idem.replay_header", provenance=CONTRACT,
                       description="A replay carries the Idempotent-Replayed: true header.",
                       elements=("#/components/headers/IdempotentReplayed",))


def _cents(p: Probe, most: int) -> int:
    return 1 if p.first else p.draw_cents(min(most, p.wallet.left))


@probe("idem.replay", sources=SOURCE, elements=(IDEMPOTENCY, "#/components/schemas/GrantResponse/properties/duplicate"),
       choices=("#/components/headers/IdempotentReplayed",),
       cost=Cost(2 * CENT, 3, sharp=4 * CENT), needs=(Needs.WRITES,), records=(REPLAY_HEADER,), stage=2)
def idem_replay(p: Probe) -> None:
    """The same key and the same body again: 200, duplicate: true, the original's ledger_id,
    and the user credited once (the contract's choice: every other field as the original's)."""
    cents = _cents(p, p.wallet.left // 2)
    user, key = p.t.guard.new_user(), p.t.guard.new_idempotency_key()
    description = "quota-conformance replay" if p.first else p.draw(DESCRIPTIONS)
    first = grant(p, user, cents, key=key, description=description)
    if not first.ok:
        p.skip(f"the first grant answered {first.status} (see grant.arithmetic)")
    replay = grant(p, user, cents, key=key, description=description)
    read = user_balance(p, user)
    steps = [first, replay, read.exchange]
    problems = []
    if not replay.ok or replay.field("duplicate") is not True:
        problems.append(f"the replay answered {replay.status} with duplicate {shown(replay.field('duplicate'))} "
                        "(expected 200 and true)")
    if replay.ok and replay.field("ledger_id") != first.field("ledger_id"):
        problems.append(f"the replay answered ledger_id {shown(replay.field('ledger_id'))}, the original "
                        f"{shown(first.field('ledger_id'))}")
    if read.cents != parse_money(first.field("balance_after")):
        problems.append(f"after the replay the balance is {read.shown}; the first grant left "
                        f"{shown(first.field('balance_after'))}")
    p.require(not problems, steps, "A replay is not the original grant", "; ".join(problems))
    # What a replay answers beyond duplicate and its ledger_id is the contract's choice: the
    # original answer again (IETF draft, Stripe).
    changed = [f for f in REPLAYED_FIELDS if replay.ok and replay.field(f) != first.field(f)]
    if changed:
        p.fail(steps, "A replay answered other fields than the original", "the replay changed " + ", ".join(
            f"{f} ({shown(first.field(f))} -> {shown(replay.field(f))})" for f in changed), CONTRACT)
    # Whatever a replay reports, the balance it names is one the user held: the original's
    # balance_after, or the balance now; any other is money that does not exist.
    claimed = parse_money(replay.field("balance_after")) if replay.ok else None
    if claimed is not None and claimed not in (parse_money(first.field("balance_after")), read.cents):
        p.fail(steps, "A replay reports a balance the user never held",
               f"the replay answered balance_after {shown(replay.field('balance_after'))}; the original left "
               f"{shown(first.field('balance_after'))} and the balance reads {read.shown}", DOCUMENTED)
    if replay.ok:
        value = replay.header("Idempotent-Replayed")
        p.require(value == "true", [first, replay], "The replay lacks Idempotent-Replayed: true",
                  f"Idempotent-Replayed is {shown(value)}", rule=REPLAY_HEADER)
    if p.first and replay.ok and not problems and p.affordable((cents + 1) / 100):
        _replay_after_the_balance_moved(p, user, cents, key, description, first)


def _replay_after_the_balance_moved(p: Probe, user: str, cents: int, key: str, description: Any,
                                    first: Exchange) -> None:
    """A replay changes no balance, also once another grant has moved it since the original (a
    deployment that writes the stored answer's balance_after back undoes that grant)."""
    later = grant(p, user, 1, description="quota-conformance after a replay")
    if not later.ok:
        return
    again = grant(p, user, cents, key=key, description=description)
    read = user_balance(p, user)
    left = parse_money(later.field("balance_after"))
    p.require(read.cents == left, [first, later, again, read.exchange], "A replay moved the balance",
              f"a later grant left balance_after {shown(later.field('balance_after'))}; replaying the first key "
              f"then left the balance at {read.shown}")


def _original_still_replays(p: Probe, user: str, key: str, before: Any, steps: list[Exchange]) -> None:
    """A refused reuse leaves the key's record as it was: the first request, sent again, is
    still a replay (a deployment that deleted the record on refusing credited it again)."""
    def resend() -> Exchange:
        return grant(p, user, 1, key=key, description="quota-conformance first")

    moved, still, reads, again = watch_pool(p, resend)
    after = user_balance(p, user)
    if after.cents != before.cents or (moved and still):
        p.fail([*steps, again, after.exchange, *reads], "A refused reuse made the key forget its grant",
               f"the first request, sent again after its key's reuse was refused, answered {again.status} "
               f"(duplicate: {shown(again.field('duplicate'))}) and the user's balance went "
               f"{before.shown} -> {after.shown}", DOCUMENTED)


# The ways a reused key's body can differ from the first request's.
CHANGES = ("amount", "user", "description", "description removed")


@probe("idem.reuse_changed", sources=SOURCE, elements=(IDEMPOTENCY,),
       cost=Cost(3 * CENT, 4, most=16 * CENT, sharp=12 * CENT),
       choices=("#/components/responses/IdempotencyKeyReused",),
       needs=(Needs.WRITES,), stage=9)
def idem_reuse_changed(p: Probe) -> None:
    """The same key with any field of the body changed (the amount included) moves no money:
    neither user nor the grant pool, and the first request sent again after it is still a replay.
    The contract's choice is to refuse it with 422 idempotency_key_reused; another refusal is a
    warning, money moved is a failure."""
    reused = p.t.facts.error("IdempotencyKeyReused")
    # Each example changes the next field in turn (the first, the amount): every kind is tried.
    change = CHANGES[0] if p.first else CHANGES[(p.index % (len(CHANGES) - 1)) + 1]
    more = p.draw_int(1, min(5, p.wallet.left // CENT - 1))
    user, key = p.t.guard.new_user(), p.t.guard.new_idempotency_key()
    first = grant(p, user, 1, key=key, description="quota-conformance first")
    if not first.ok:
        p.skip(f"the first grant answered {first.status} (see grant.arithmetic)")
    other_user = p.t.guard.new_user()
    kwargs: dict[str, Any] = {"key": key, "description": "quota-conformance first"}
    target, cents = user, 1
    if change == "amount":
        cents = 1 + more
    elif change == "description":
        kwargs["description"] = "quota-conformance changed"
    elif change == "description removed":
        kwargs["description"] = ABSENT
    else:
        target = other_user
    before = user_balance(p, user)
    moved, still, reads, again = watch_pool(p, lambda: grant(p, target, cents, **kwargs))
    after, other = user_balance(p, user), user_balance(p, other_user)
    steps = [first, again, after.exchange]
    what = f"the same key with the {change} changed"
    money_moved = []
    if after.cents != before.cents:
        money_moved.append(f"the user's balance went {before.shown} -> {after.shown}")
    if other.ok and other.cents:
        money_moved.append(f"the other user now holds {other.shown}")
    if moved and still:
        money_moved.append(f"the grant pool moved by {usd(moved)}")
    elif moved and not still:
        p.undecided("the developer balance moved for other reasons meanwhile")
    if money_moved:
        p.fail([*steps, *reads], "Money moved under a reused Idempotency-Key",
               f"{what} answered {again.status} {shown(again.error_code or again.field('duplicate'))}; "
               + "; ".join(money_moved), DOCUMENTED)
        return
    if p.wallet.left >= CENT:
        _original_still_replays(p, user, key, after, steps)
    p.require(reused.answered(again), steps,
              f"A reused key was not refused with {reused.status} {reused.code}",
              f"{what} answered {again.status} {code_text(again)}", reused.provenance)


@probe("idem.new_key_new_grant", sources=SOURCE, elements=(IDEMPOTENCY,), cost=Cost(2 * CENT, 2, sharp=4 * CENT),
       needs=(Needs.WRITES,), stage=8)
def idem_new_key_new_grant(p: Probe) -> None:
    """The same body under a new key (or with no key at all) is a new grant: 200,
    duplicate: false, a new ledger_id, credited again. The first example tries both forms (a
    deployment that deduplicates keyless grants by body shows only without a key). A ledger_id
    another user's grant in the run was answered with breaks the contract's choice."""
    cents = _cents(p, p.wallet.left // 2)
    for keyless in (False, True) if p.first else (p.draw(st.booleans()),):
        if not p.affordable(2 * cents / 100):
            return  # what the budget allowed has run
        _same_body_twice(p, cents, keyless)


def _same_body_twice(p: Probe, cents: int, keyless: bool) -> None:
    user = p.t.guard.new_user()
    first = grant(p, user, cents, key=None if keyless else p.t.guard.new_idempotency_key())
    if not first.ok:
        p.skip(f"the first grant answered {first.status} (see grant.arithmetic)")
    second = grant(p, user, cents, key=None if keyless else p.t.guard.new_idempotency_key())
    read = user_balance(p, user)
    how = "without a key" if keyless else "under a new key"
    ok = (second.ok and second.field("duplicate") is False
          and second.field("ledger_id") != first.field("ledger_id") and read.cents == 2 * cents)
    if not p.require(ok, [first, second, read.exchange], f"The same body {how} was not a new grant",
                     f"the second grant answered {second.status}, duplicate {shown(second.field('duplicate'))}, "
                     f"ledger_id {shown(second.field('ledger_id'))} (first {shown(first.field('ledger_id'))}); the "
                     f"balance is {read.shown}, expected {usd(2 * cents * CENT)}"):
        return
    # A ledger_id names one entry: no other user's grant in this run was answered with it.
    shared = [(e.field("ledger_id"), p.t.ledger_owners.get(e.field("ledger_id"))) for e in (first, second)]
    shared = [(ledger_id, owner) for ledger_id, owner in shared if owner is not None and owner != user]
    # The docs show a ledger_id inside an answer that names its user: ids numbered per user
    # are a reading they allow, so sharing one across users breaks the contract's choice.
    p.require(not shared, [first, second], "Two users' grants share a ledger_id",
              "; ".join(f"ledger_id {ledger_id!r} of a grant to {user!r} was answered earlier in this run for a "
                        f"grant to {owner!r}" for ledger_id, owner in shared), CONTRACT)


@probe("idem.concurrent_same", sources=SOURCE, elements=(IDEMPOTENCY,), cost=Cost(3 * CENT, 2),
       choices=("#/components/responses/IdempotencyKeyInFlight",),
       needs=(Needs.WRITES,), stage=9)
def idem_concurrent_same(p: Probe) -> None:
    """Grants with one key sent at the same moment credit the user once (the others are
    replays, or refused as in flight)."""
    n = p.t.options.concurrent_requests
    cents = max(1, min(5, p.wallet.left // (n * CENT))) if not p.first else 1
    user, key = p.t.guard.new_user(), p.t.guard.new_idempotency_key()
    for _ in range(n):
        p.spend(amount_json(cents))
    moved, still, reads, sent = watch_pool(p, lambda: concurrently(n, lambda i: p.t.send(
        GRANT, headers={"Idempotency-Key": key},
        body={"external_user_id": user, "amount": amount_json(cents), "description": "quota-conformance"})))
    for answer in sent:
        skip_if_the_pool_refused(p, answer, amount_json(cents))
    read = user_balance(p, user)
    ledger_ids = {a.field("ledger_id") for a in sent if a.ok}
    statuses = sorted(a.status for a in sent)
    problems = []
    if read.cents != cents or len(ledger_ids) != 1:
        problems.append(f"{n} concurrent grants of {usd(cents * CENT)} with one key answered {statuses} with "
                        f"{len(ledger_ids)} ledger id(s); the balance is {read.shown}, expected {usd(cents * CENT)}")
    # The grant pool pays the one grant made, not the requests refused or replayed meanwhile.
    if moved is not None and moved != -cents * CENT:  # only then is the pool's stillness asked (it waits)
        if still:
            problems.append(f"the developer balance moved by {usd(moved)}, expected {usd(-cents * CENT)}")
        elif not problems:
            p.undecided("the developer balance moved for other reasons meanwhile")
            return
    p.require(not problems, [*sent, read.exchange, *reads], "Concurrent grants with one key were not credited once",
              "; ".join(problems))


# Grants the first example sends at once when the budget allows: a store that loses updates only
# past a few in flight (a small lock table, a pool of connections) shows there.
MANY_AT_ONCE = 4


@probe("idem.concurrent_distinct", sources=SOURCE, elements=(IDEMPOTENCY,),
       cost=Cost(3 * CENT, 3, sharp=MANY_AT_ONCE * CENT), needs=(Needs.WRITES,), stage=8)
def idem_concurrent_distinct(p: Probe) -> None:
    """Grants with different keys sent to one user at the same moment all land: each answers
    200 with its own ledger_id, and the balance is their sum (no lost update)."""
    n = p.t.options.concurrent_requests if p.first else p.draw(st.integers(2, 6))
    if p.first and p.affordable(MANY_AT_ONCE / 100):
        n = max(n, MANY_AT_ONCE)
    cents = [1] * n if p.first else [p.draw_cents(min(5 * CENT, p.wallet.left // n)) for _ in range(n)]
    user = p.t.guard.new_user()
    for c in cents:
        p.spend(amount_json(c))
    keys = [p.t.guard.new_idempotency_key() for _ in range(n)]
    sent = concurrently(n, lambda i: p.t.send(GRANT, headers={"Idempotency-Key": keys[i]}, body={
        "external_user_id": user, "amount": amount_json(cents[i]), "description": "quota-conformance"}))
    for answer in sent:  # a pool too low for some of them is the account's state
        skip_if_the_pool_refused(p, answer, amount_json(max(cents)))
    read = user_balance(p, user)
    ledger_ids = {a.field("ledger_id") for a in sent if a.ok}
    statuses = sorted(a.status for a in sent)
    total = sum(cents)
    p.require(read.cents == total and len(ledger_ids) == n and all(a.ok for a in sent), [*sent, read.exchange],
              "Concurrent grants with different keys did not all land",
              f"{n} concurrent grants ({', '.join(usd(c * CENT) for c in cents)}) with different keys answered "
              f"{statuses} with {len(ledger_ids)} distinct ledger id(s); the balance is {read.shown}, "
              f"expected {usd(total * CENT)}")


@probe("idem.scope_per_key", provenance=CONTRACT, elements=(f"{IDEMPOTENCY}/schema",), cost=Cost(2 * CENT, 2),
       needs=(Needs.WRITES, Needs.SECOND_KEY), stage=9)
def idem_scope_per_key(p: Probe) -> None:
    """Idempotency-Keys are scoped per API key: the second key (--second-api-key) using a key
    the first key used, for another user, makes a new grant for that user. The docs say
    nothing of a key's scope: an answer that replays the first key's grant (it names the other
    user, and moves no money) breaks the contract's choice, as any other refusal does."""
    second = p.t.options.second_api_key
    assert second is not None
    key = p.t.guard.new_idempotency_key()
    first_user, second_user = p.t.guard.new_user(), p.t.guard.new_user()
    first = grant(p, first_user, 1, key=key)
    if not first.ok:
        p.skip(f"the first key's grant answered {first.status} (see grant.arithmetic)")
    other = grant(p, second_user, 1, key=key, api_key=second)
    read = user_balance(p, second_user)
    steps = [first, other, read.exchange]
    if other.ok and other.field("external_user_id") != second_user:
        p.fail(steps, "Another API key's grant was answered with the first key's",
               f"the second key's grant for a new user answered external_user_id "
               f"{shown(other.field('external_user_id'))} and ledger_id {shown(other.field('ledger_id'))} "
               "(the first key's grant): its own grant was not made")
        return
    p.require(other.ok and other.field("duplicate") is False and read.cents == 1, steps,
              "Idempotency-Keys are not scoped per API key",
              f"the second key's grant with a key the first key used answered {other.status} "
              f"{shown(other.error_code or other.field('duplicate'))}; the user's balance is {read.shown}")


def _longest_keys(p: Probe) -> None:
    longest = p.t.facts.longest_idempotency_key
    for length, accepted in ((longest, True), (longest + 1, False)):
        key = p.t.guard.new_idempotency_key() + "-"
        key += "k" * (length - len(key))
        answer = grant(p, p.t.guard.new_user(), 1, key=key)  # a 5xx is errors.no_server_error's
        p.require(answer.ok if accepted else answer.status == 400, [answer],
                  f"A {length}-character Idempotency-Key was {'refused' if accepted else 'accepted'}",
                  f"a grant with a key of {length} characters (the contract's longest: {longest}) answered "
                  f"{answer.status} {code_text(answer)}")


# Keys that are different strings, so different keys, though some storage folds them together
# (a case-insensitive column, a VARCHAR(64)): how they differ, and the second key made from the
# first. The contract's choices (1 to 255 characters, compared as sent): the docs say only
# "prevent duplicates".
KEY_LENGTH = 100
LOOK_ALIKE_KEYS = (
    ("differ only in case", str.upper),
    (f"share their first {KEY_LENGTH - 1} characters", lambda key: key[:-1] + ("B" if key[-1] != "B" else "C")),
)


@probe("idem.distinct_keys", provenance=CONTRACT, elements=(f"{IDEMPOTENCY}/schema",),
       cost=Cost(2 * CENT * (len(LOOK_ALIKE_KEYS) + 1), 1), needs=(Needs.WRITES,), stage=9)
def idem_distinct_keys(p: Probe) -> None:
    """Keys that differ only in case, or only in their last character (both 100 characters
    long, within the contract's 255), are different keys: the same body under the second is a
    new grant, credited again. A key of the longest length is a key; one a character longer is
    refused (400), never a server error (a column a character too short overflows)."""
    if p.first and p.affordable(0.02):
        _longest_keys(p)
    for label, second_of in LOOK_ALIKE_KEYS:
        first_key = p.t.guard.new_idempotency_key() + "-"
        first_key += "k" * (KEY_LENGTH - len(first_key))
        second_key = second_of(first_key)
        user = p.t.guard.new_user()
        first = grant(p, user, 1, key=first_key)
        if not first.ok:
            p.undecided(f"keys that {label}: the first grant answered {first.status} {code_text(first)} "
                        "(a key's length and characters are the contract's choice)")
            continue
        second = grant(p, user, 1, key=second_key)
        read = user_balance(p, user)
        p.require(second.ok and second.field("duplicate") is False and read.cents == 2,
                  [first, second, read.exchange], f"Idempotency-Keys that {label} are one key",
                  f"the same body under a second key that differs from the first ({label}) answered "
                  f"{second.status} {shown(second.error_code or second.field('duplicate'))}; the user's balance "
                  f"is {read.shown}, expected $0.02 (two grants)")
