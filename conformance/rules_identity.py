"""Rules of identity: a user id of any shape the contract allows round-trips through the grant
body, the path and the query; ids that differ only in case, spacing or accents are different
users; a user never granted is 404 user_not_found."""

from __future__ import annotations

import unicodedata

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import chat_body, code_text, grant, query_balance, shown, user_balance, user_chat
from .checks import parse_money
from .engine import Exchange
from .properties import Probe, Skip
from .registry import Cost, Needs, probe
from .strategies import user_suffixes

CENT = MICROS_PER_CENT
USER_ID = "#/components/schemas/ExternalUserId"
SOURCES = ("seed: external_user_id string Your unique identifier for the user",)
# One id with every awkward class at once: a space (also at the end), '%' (and an escape that
# a second decoding would read), '@', '/', '+' (a space to form decoding), ',' (a list to a
# query parser that splits values), a capital letter,
# non-ASCII, an emoji, a letter in decomposed form (a deployment that normalises some reads but
# not others loses it).
# "e\u0301": an accent as a combining mark; ".io": a dot inside a segment (a router that strips a
# path's "extension" reads "d" instead).
AWKWARD = "-Zoë a%41b%2Fc@d.io/e+f,g 中😀 e\u0301 "
MAX_LENGTH = 255


def _long_pair(p: Probe) -> tuple[str, str]:
    """Two ids of the contract's full length that share all but their last characters."""
    base = p.t.guard.new_user() + "-long-"
    body = base + "x" * (MAX_LENGTH - len(base) - 1)
    return body + "A", body + "B"


def refused_cleanly(p: Probe, exchange: Exchange) -> bool:
    """A 400 in the error envelope: how a server refuses an id the docs do not promise."""
    return p.t.facts.error("BadRequest").answered(exchange)


def _roundtrip(p: Probe, user: str, cents: int, steps: list[Exchange]) -> list[tuple[str, str]]:
    """Grant ``cents`` to ``user`` and read it back both ways; what went wrong, each with its
    mark (an id unlike the docs' examples refused cleanly is the contract's call)."""
    granted = grant(p, user, cents, description="quota-conformance identity")
    steps.append(granted)
    if not granted.ok:
        mark = CONTRACT if refused_cleanly(p, granted) and not p.t.facts.user_id_is_plain(user) else DOCUMENTED
        return [(f"a grant to {user!r} answered {granted.status} {code_text(granted)}", mark)]
    problems = []
    echoed = granted.field("external_user_id")
    if echoed != user:
        problems.append((f"the grant to {user!r} answered external_user_id {shown(echoed)}", _echo_mark(echoed, user)))
    for read, how in ((user_balance(p, user), "the path"), (query_balance(p, user), "the query")):
        steps.append(read.exchange)
        echoed = read.exchange.field("external_user_id")
        if not read.exchange.ok:
            problems.append((f"{user!r} read through {how} answered {read.exchange.status} "
                             f"{code_text(read.exchange)}", DOCUMENTED))
        elif read.cents != cents or echoed not in (user, None):
            # An answer that does not echo the id at all is judged by its balance (the docs show
            # no echo on the query form); one that echoes another id read another user.
            mark = _echo_mark(echoed, user) if read.cents == cents else DOCUMENTED
            problems.append((f"{user!r} read through {how} answered external_user_id {shown(echoed)} with balance "
                             f"{read.shown}", mark))
    return problems


def _chats_as(p: Probe, user: str, steps: list[Exchange]) -> list[tuple[str, str]]:
    """A user the deployment granted and reads back also chats on the path form: its id is the
    same id there (a chat route that does not decode the path finds no such user)."""
    try:
        chat = user_chat(p, user, chat_body(p))
    except Skip:  # the account's billing mode refuses user chats, or the provider failed
        return []
    steps.append(chat)
    if chat.ok:
        return []
    return [(f"{user!r}, granted and read back, chatting on the path form answered {chat.status} "
             f"{code_text(chat)}", DOCUMENTED)]


def _echo_mark(echoed: object, user: str) -> str:
    """An id answered in another Unicode normalisation form (NFC) is the contract's reading of
    "the same id" (see LOOK_ALIKES); any other difference is a documented failure."""
    same = isinstance(echoed, str) and unicodedata.normalize("NFC", echoed) == unicodedata.normalize("NFC", user)
    return CONTRACT if same else DOCUMENTED


@probe("identity.roundtrip", sources=SOURCES, elements=(USER_ID, "#/components/parameters/ExternalUserIdPath"),
       choices=("#/components/schemas/ExternalUserId/allOf/0",),
       cost=Cost(3 * CENT, 4), needs=(Needs.WRITES,), stage=8)
def identity_roundtrip(p: Probe) -> None:
    """A user id of any shape the contract allows (spaces, '%', '@', '/' escaped, non-ASCII, up
    to 255 characters) is granted, echoed and read back exactly, through the path and the query."""
    if p.first:
        users = [p.t.guard.new_user() + AWKWARD, *_long_pair(p)]
    else:
        users = [p.t.guard.new_user() + "-" + p.draw(user_suffixes())]
    problems: list[tuple[str, str]] = []
    steps: list[Exchange] = []
    for user in users:
        found = _roundtrip(p, user, 1, steps)
        problems += found
        if p.first and user is users[0] and not found and p.t.options.chat and not p.t.options.read_only:
            problems += _chats_as(p, user, steps)
    mark = DOCUMENTED if any(mark == DOCUMENTED for _, mark in problems) else CONTRACT
    p.require(not problems, steps, "A user id did not round-trip", "; ".join(text for text, _ in problems), mark)


# Pairs of ids that are different strings, so different users, though some storage folds them
# together: (label, first suffix, second suffix, mark). Case and trailing spaces are told
# apart by the documented "your unique identifier"; Unicode normalisation (a composed and a
# decomposed letter, which render alike) is the contract's reading.
LOOK_ALIKES = (
    ("differ only in case", "-Alice", "-alice", DOCUMENTED),
    ("differ by a trailing space", "-bob", "-bob ", DOCUMENTED),
    ("differ by an accent", "-zoë", "-zoe", DOCUMENTED),
    ("differ in the case of a non-ASCII letter", "-Ölaf", "-ölaf", DOCUMENTED),
    # Characters outside the BMP: a collation or a UCS-2 store can weigh them all the same.
    ("differ in a character outside the BMP", "-ann\U0001F600", "-ann\U0001F389", DOCUMENTED),
    # NFKC (Django's normalize_username) folds these; NFC, the contract's reading, does not.
    ("differ as a fullwidth and an ASCII letter", "-\uff21nn", "-Ann", DOCUMENTED),
    ("are one letter composed and decomposed", "-zo\u00eb", "-zoe\u0308", CONTRACT),
)


@probe("identity.case_sensitive", sources=SOURCES, elements=(USER_ID,),
       cost=Cost(2 * CENT, 1, sharp=CENT * len(LOOK_ALIKES), most=2 * CENT * len(LOOK_ALIKES)),
       needs=(Needs.WRITES,), stage=9)
def identity_case_sensitive(p: Probe) -> None:
    """Ids that differ only in case, by a trailing space, by an accent, in the case of a
    non-ASCII letter, in a character outside the BMP (an emoji), or as a fullwidth and an ASCII
    letter are different users: each keeps its own balance, and a chat as one bills that one
    only (and, the contract's reading, so are a letter composed and decomposed)."""
    # First a cent to one id of every pair, and a read of the other: an id folded into its
    # look-alike reads the first one's money (a cent a pair). Then, while the budget lasts, a
    # cent to the other too: each must hold its own, and its first grant start from nothing.
    granted = []
    for label, first_suffix, second_suffix, mark in LOOK_ALIKES:
        if not p.affordable(0.01):
            break
        base = p.t.guard.new_user()
        first_user, second_user = base + first_suffix, base + second_suffix
        first = grant(p, first_user, 1)
        if not first.ok:
            # An id refused outright is identity.roundtrip's to judge; two ids cannot be one user here.
            p.t.results.note(p.rule.name, f"ids that {label}: the grant answered {first.status}")
            continue
        other = user_balance(p, second_user)
        if p.require(not (other.ok and other.cents), [first, other.exchange], f"Ids that {label} are one user",
                     f"after a grant of $0.01 to {first_user!r} only, {second_user!r} reads {other.shown}", mark):
            granted.append((label, first_user, second_user, mark, first))
            if label == LOOK_ALIKES[0][0] and p.t.options.chat and not p.t.options.read_only:
                _chat_bills_its_own_id(p, second_user, first_user, label, mark)
    for label, first_user, second_user, mark, first in granted:
        if not p.affordable(0.01):
            break
        second = grant(p, second_user, 1)
        if not second.ok:
            p.t.results.note(p.rule.name, f"ids that {label}: the second grant answered {second.status}")
            continue
        reads = [(user_balance(p, first_user), first_user), (user_balance(p, second_user), second_user)]
        problems = [f"{user!r} reads {read.shown}, expected its own $0.01" for read, user in reads if read.cents != 1]
        if parse_money(second.field("balance_before")) not in (0, None):
            problems.insert(0, f"the first grant to {second_user!r} answered balance_before "
                               f"{shown(second.field('balance_before'))}")
        p.require(not problems, [first, second, *(r.exchange for r, _ in reads)],
                  f"Ids that {label} are one user", "; ".join(problems), mark)


def _chat_bills_its_own_id(p: Probe, chatter: str, other: str, label: str, mark: str) -> None:
    """A chat as one id of a look-alike pair never bills the other, which keeps its money to the
    micro-dollar (a chat route that looks its user up case-insensitively bills the first of the
    two it finds). The id never granted chats: 404 user_not_found, or 402, is its right answer."""
    other_before = user_balance(p, other)
    try:
        chat = user_chat(p, chatter, chat_body(p))
    except Skip:  # the account's billing mode refuses user chats, or the provider failed
        return
    after = user_balance(p, other)
    moved = after.cents != other_before.cents or (
        after.micros is not None and other_before.micros is not None and after.micros != other_before.micros)
    p.require(not moved, [chat, after.exchange], f"Ids that {label} are one user",
              f"a chat as {chatter!r} changed {other!r}'s balance: {other_before.shown} "
              f"({other_before.micros} micro-dollars) -> {after.shown} ({after.micros})", mark)


@probe("user.not_found", sources=("seed: 404 user_not_found GET /v1/users/:id/balance User not found",),
       elements=("#/components/responses/UserNotFound",), choices=("#/components/responses/UnknownUser",),
       cost=Cost(0, 4), stage=0)
def user_not_found(p: Probe) -> None:
    """A user never granted answers 404 user_not_found, on GET /v1/users/{id}/balance and
    GET /v1/balance?external_user_id= alike (never the developer's balance)."""
    not_found = p.t.facts.error("UserNotFound")
    nobody = p.t.guard.new_user() + ("" if p.first else "-" + p.draw(st.one_of(st.just("x"), user_suffixes())))
    for read, how, operation_id in (
        (user_balance(p, nobody), "GET /v1/users/{never granted}/balance", "getUserBalance"),
        (query_balance(p, nobody), "GET /v1/balance?external_user_id={never granted}", "getBalance"),
    ):
        _judge_unknown(p, read.exchange, how, nobody, not_found.status, not_found.code, operation_id)


def _judge_unknown(p: Probe, exchange: Exchange, how: str, nobody: str, status: int, code: str,
                   operation_id: str) -> None:
    """The seed documents 404 user_not_found on the path form only: what the query form answers
    is openapi.yaml's choice there (its 404's mark says so)."""
    if exchange.status == status and exchange.error_code == code:
        p.passed()
        return
    title = f"{how}: expected {status} {code}"
    message = f"{how} answered {exchange.status} {code_text(exchange)}"
    if exchange.ok and exchange.field("external_user_id") == nobody:
        # Knowing every user, at $0.00, is a choice the docs leave open.
        p.fail([exchange], title, message + " (the user, known before any grant)", CONTRACT)
    elif exchange.ok:
        p.fail([exchange], title, message + ": not that user's balance (the developer's?)", DOCUMENTED)
    elif ((refused_cleanly(p, exchange) or p.t.facts.error("RouteNotFound").answered(exchange))
          and not p.t.facts.user_id_is_plain(nobody)):
        p.fail([exchange], title, message + " (an id unlike the docs' examples: refusing it is the contract's call)",
               CONTRACT)
    else:
        p.fail([exchange], title, message, p.t.provenance.of_response(p.t.operation(operation_id), status))
