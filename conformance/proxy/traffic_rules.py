"""The suite's stateful rules, judged from traffic alone: what a sequence of exchanges the
proxy relayed proves about a deployment, without sending anything of its own.

- **Replays.** The first answer seen for an (API key, Idempotency-Key) is the original. The
  same key and body again, once the original had completed, must answer 200 with
  ``duplicate: true``, the original's ``ledger_id`` and ``Idempotent-Replayed: true``; with
  another body, the contract's ``idempotency_key_reused`` refusal. A new key never answers
  another key's grant.
- **Grants.** A first grant credits the amount asked for.
- **Balances.** A balance read right after a grant (or a chat) shows what that answer said
  the balance became, and a replay or a refused reuse in between credits nothing.

Each verdict is recorded under the suite's own rule (the same name, description and
provenance as the active suite's) through the run's :class:`~conformance.engine.Target`.

Traffic from elsewhere is invisible here, so a verdict is only given where the proxy saw the
whole story: nothing else touching the same user overlapped it, the original had completed
before its replay began. What remains undecided is not judged; what is judged names "as far
as the traffic through this proxy shows".
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from mockserver.contract import CONTRACT, DOCUMENTED

from ..checks import parse_money
from ..engine import Exchange, Target
from ..facts import BALANCE, CHAT, GRANT, USER_BALANCE, USER_CHAT
from ..registry import REGISTRY
from .observed import ObservedExchange

# Replays are judged within the contract's 24 hours of retention, with a margin.
RETENTION_ORDER_SECONDS = 23 * 3600
# Keys, ledger ids and users remembered, each.
MEMORY_LIMIT = 100_000


# The suite's rules these verdicts are recorded under (ids of the registry).
AMOUNT = "grant.arithmetic"  # a first grant credits the amount asked for
REPLAY = "idem.replay"  # duplicate: true, the original's ledger_id, and credited once
REPLAY_HEADER = "idem.replay_header"
REUSE = "idem.reuse_changed"
NEW_KEY = "idem.new_key_new_grant"
READBACK = "grant.readback"  # both balance reads, after a grant
CHAT_DEBIT = "chat.user_debit"  # a balance read after a chat
RULES = (AMOUNT, REPLAY, REPLAY_HEADER, REUSE, NEW_KEY, READBACK, CHAT_DEBIT)


@dataclass
class Seen:
    """One judged exchange: what the proxy saw, and the suite's view of it."""

    observed: ObservedExchange
    exchange: Exchange
    operation_id: str
    path_parameters: dict[str, str]
    at: float  # monotonic seconds when it completed

    @property
    def user(self) -> str | None:
        return user_of(self.operation_id, self.path_parameters, self.observed)


def user_of(operation_id: str, path_parameters: dict[str, str], observed: ObservedExchange) -> str | None:
    """The user whose balance an exchange reads or moves, if any."""
    if operation_id in (USER_BALANCE, USER_CHAT):
        return path_parameters.get("external_user_id")
    if operation_id == BALANCE:
        return observed.query.get("external_user_id")
    if operation_id == GRANT:
        body = observed.request_json
        user = body.get("external_user_id") if isinstance(body, dict) else None
        return user if isinstance(user, str) else None
    if operation_id == CHAT:
        return observed.request_header("X-External-User-ID")
    return None


K = TypeVar("K")
V = TypeVar("V")


class Bounded(OrderedDict[K, V]):
    """A dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int = MEMORY_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class _Original:
    body: Any
    seen: Seen


@dataclass
class _Known:
    """A user's balance as the last answer that showed it said (cents), and what came since."""

    cents: int
    source: Seen
    from_change: bool  # shown by a grant or a chat (not a read)
    replays: list[Seen] = field(default_factory=list)
    refused_reuses: list[Seen] = field(default_factory=list)


class TrafficRules:
    """Judges exchanges one by one, in the order they completed."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.reused = target.facts.error("IdempotencyKeyReused")
        # Bounded, oldest forgotten first: a proxy may run for days in front of staging.
        self._originals: Bounded[tuple[str, str], _Original] = Bounded()
        # Each new grant's ledger_id: under which key (None: keyless) and in which exchange.
        self._ledger_owner: Bounded[str, tuple[tuple[str, str] | None, Exchange]] = Bounded()
        self._known: Bounded[str, _Known] = Bounded()

    def observe(self, seen: Seen, overlapping: bool) -> None:
        """Judge ``seen``; ``overlapping``: another exchange touching the same user overlapped it."""
        if seen.operation_id == GRANT:
            self._grant(seen)
        user = seen.user
        if user is not None:
            self._balance(seen, user, alone=not overlapping)

    # -- grants and replays --------------------------------------------------------------

    def _grant(self, seen: Seen) -> None:
        observed, exchange = seen.observed, seen.exchange
        body = observed.request_json
        key = observed.request_header("Idempotency-Key")
        slot = None if key is None else (observed.scope, key)
        original = None if slot is None else self._originals.get(slot)
        if exchange.ok:
            if original is None:  # a new grant, as far as this proxy knows
                self._new_grant(seen, slot)
            if exchange.field("duplicate") is False:
                self._amount(seen, body)
        if slot is None:
            return
        if original is None:
            if exchange.ok:
                self._originals[slot] = _Original(body, seen)
            return
        before = original.seen
        if before.observed.ended > observed.started or seen.at - before.at > RETENTION_ORDER_SECONDS:
            return  # concurrent with its original, or past retention: not judged
        if body == original.body:
            self._replay(before, seen)
        else:
            self._reuse(before, seen)

    def _new_grant(self, seen: Seen, slot: tuple[str, str] | None) -> None:
        """A keyless grant, or a key's first: it must not answer a grant seen under another key."""
        exchange = seen.exchange
        ledger_id = exchange.field("ledger_id")
        if not isinstance(ledger_id, str):
            return
        owner = self._ledger_owner.get(ledger_id)
        if owner is None:
            self._ledger_owner[ledger_id] = (slot, exchange)
            self.t.results.ran(NEW_KEY)
            return
        # The same user's: a new grant answered as an old one (documented). Another user's: ids
        # numbered per user, which the docs allow (rules_idempotency says why), the contract's.
        same_user = owner[1].field("external_user_id") == exchange.field("external_user_id")
        self.t.violation(
            NEW_KEY,
            [owner[1], exchange],
            "A new grant answered another grant's ledger_id",
            f"{'a grant without Idempotency-Key' if slot is None else 'a grant under a key never used before'} "
            f"answered {exchange.status} with duplicate {exchange.field('duplicate')!r} and ledger_id "
            f"{ledger_id}, which an earlier grant under {'no key' if owner[0] is None else 'another key'} "
            "answered: each of them is a new grant",
            DOCUMENTED if same_user else CONTRACT,
        )

    def _amount(self, seen: Seen, body: Any) -> None:
        """A first grant credits the amount asked for."""
        exchange = seen.exchange
        asked = _cents(body.get("amount")) if isinstance(body, dict) else None
        granted = parse_money(exchange.field("amount_granted"))
        if asked is None or granted is None:
            return
        if asked == granted:
            self.t.results.ran(AMOUNT)
        else:
            self.t.violation(
                AMOUNT,
                [exchange],
                "The grant credited another amount than asked",
                f"asked for {body.get('amount')}; amount_granted {exchange.field('amount_granted')}",
            )

    def _replay(self, original: Seen, seen: Seen) -> None:
        first, replay = original.exchange, seen.exchange
        steps = [first, replay]
        if replay.status >= 500 or replay.status == 429:
            return  # a transient refusal: the key stays usable, nothing to hold it to
        if not replay.ok or replay.field("duplicate") is not True:
            self.t.violation(
                REPLAY,
                steps,
                "A replay is not the original grant",
                f"the same Idempotency-Key and body, after the original had completed, answered "
                f"{replay.status} {replay.error_code or ''} with duplicate "
                f"{replay.field('duplicate')!r} (expected 200 and true)",
            )
            return
        self.t.results.ran(REPLAY)
        if replay.field("ledger_id") == first.field("ledger_id"):
            self.t.results.ran(REPLAY)
        else:
            self.t.violation(
                REPLAY,
                steps,
                "The replay answered another ledger_id",
                f"original ledger_id {first.field('ledger_id')!r}, replay {replay.field('ledger_id')!r}",
            )
        header = replay.header("Idempotent-Replayed")
        if header == "true":
            self.t.results.ran(REPLAY_HEADER)
        else:
            self.t.violation(
                REPLAY_HEADER,
                steps,
                "The replay lacks Idempotent-Replayed: true",
                f"Idempotent-Replayed is {header!r}",
                REGISTRY[REPLAY_HEADER].provenance,
            )
        user = seen.user
        if user in self._known:
            self._known[user].replays.append(seen)

    def _reuse(self, original: Seen, seen: Seen) -> None:
        other = seen.exchange
        if other.status >= 500 or other.status == 429:
            return
        if other.status == self.reused.status and other.error_code == self.reused.code:
            self.t.results.ran(REUSE)
            if seen.user in self._known:
                self._known[seen.user].refused_reuses.append(seen)
            return
        self.t.violation(
            REUSE,
            [original.exchange, other],
            f"The same key with another body was not refused with {self.reused.status} {self.reused.code}",
            f"answered {other.status} {other.error_code or ''}".rstrip(),
            self.reused.provenance,
        )

    # -- balances ------------------------------------------------------------------------

    def _balance(self, seen: Seen, user: str, alone: bool) -> None:
        exchange = seen.exchange
        shown = self._shown_balance(seen)
        known = self._known.get(user)
        if (
            shown is not None
            and seen.operation_id in (USER_BALANCE, BALANCE)
            and alone
            and known is not None
            and known.from_change
            and known.source.observed.ended < seen.observed.started
        ):
            self._judge_read(known, seen, shown)
        if not alone:
            self._known.pop(user, None)  # overlapping traffic: what the user holds is unknown now
        elif shown is not None:
            self._known[user] = _Known(shown, seen, seen.operation_id in (GRANT, USER_CHAT, CHAT))
        elif exchange.ok and seen.operation_id in (USER_CHAT, CHAT):
            self._known.pop(user, None)  # a chat moved money by an amount the proxy could not read

    def _shown_balance(self, seen: Seen) -> int | None:
        """The user's balance as this answer says it is now (a replay's says what it was)."""
        exchange = seen.exchange
        if not exchange.ok:
            return None
        if seen.operation_id == GRANT:
            return None if exchange.field("duplicate") is not False else parse_money(exchange.field("balance_after"))
        if seen.operation_id in (USER_BALANCE, BALANCE):
            return parse_money(exchange.field("balance"))
        if seen.operation_id in (USER_CHAT, CHAT):
            return _last_quota_balance(seen.observed.response_body)
        return None

    def _judge_read(self, known: _Known, read: Seen, shown: int) -> None:
        rule = READBACK if known.source.operation_id == GRANT else CHAT_DEBIT
        steps = [known.source.exchange, *(s.exchange for s in known.replays + known.refused_reuses), read.exchange]
        if shown == known.cents:
            self.t.results.ran(rule)
            if known.replays:
                self.t.results.ran(REPLAY)
            return
        where = f"{read.observed.method} {read.observed.path}"
        said = f"the {known.source.operation_id} answer before it left {_usd(known.cents)}"
        replayed = sum(parse_money(s.exchange.field("amount_granted")) or 0 for s in known.replays)
        if known.replays and shown == known.cents + replayed:
            self.t.violation(
                REPLAY,
                steps,
                "A replayed grant credited the user again",
                f"{where} shows {_usd(shown)}; {said}, and {len(known.replays)} replay(s) since "
                "credited again (as far as the traffic through this proxy shows)",
            )
        elif known.refused_reuses:
            self.t.violation(
                REUSE,
                steps,
                "A refused reuse of an Idempotency-Key moved money",
                f"{where} shows {_usd(shown)}; {said}, and only refused grants came since "
                "(as far as the traffic through this proxy shows)",
                REGISTRY[REUSE].provenance,
            )
        else:
            self.t.violation(
                rule,
                steps,
                f"A balance read disagrees with the {'grant' if known.source.operation_id == GRANT else 'chat'} "
                "before it",
                f"{where} shows {_usd(shown)}; {said} (as far as the traffic through this proxy "
                "shows: nothing else touched this user in between)",
            )


def _cents(amount: Any) -> int | None:
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal | str):
        return None
    try:
        cents = Decimal(str(amount)) * 100
    except InvalidOperation:
        return None
    return int(cents) if cents == cents.to_integral_value() else None


def _usd(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100}.{abs(cents) % 100:02d}"


def _last_quota_balance(content: bytes) -> int | None:
    """``quota.balance_after`` of a chat answer, JSON or the last event of a stream."""
    text = content.decode("utf-8", "replace")
    documents = (
        [text]
        if not text.lstrip().startswith("data:")
        else [
            line[5:].strip() for line in text.splitlines() if line.startswith("data:") and line[5:].strip() != "[DONE]"
        ]
    )
    for document in reversed(documents):
        try:
            body = json.loads(document)
        except ValueError:
            continue
        quota = body.get("quota") if isinstance(body, dict) else None
        if isinstance(quota, dict) and "balance_after" in quota:
            return parse_money(quota["balance_after"])
    return None
