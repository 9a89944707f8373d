"""Ledger arithmetic shared by every store: ids, and the conservation check."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

from .records import ADJUSTMENT, CHARGE, DEPOSIT, GRANT, Conservation, LedgerEntry


def new_ledger_id() -> str:
    """A fresh ledger id in the seed's ``ledg_`` style, unique across restarts."""
    return "ledg_" + secrets.token_hex(10)


def check_conservation(entries: Iterable[LedgerEntry], pool: int, users: Mapping[str, int]) -> Conservation:
    """Replay the ledger from empty and compare with the stored balances.

    Money only enters through deposits and adjustments, moves through grants and leaves
    through charges, so ``external_in == pool + users + spent`` must hold exactly, and the
    replayed balance of every account must equal its stored balance.
    """
    replayed_pool = 0
    replayed_users: dict[str, int] = {}
    external_in = 0
    spent = 0
    for entry in entries:
        if entry.kind in (DEPOSIT, ADJUSTMENT):
            external_in += entry.amount
            if entry.user_id is None:
                replayed_pool += entry.amount
            else:
                replayed_users[entry.user_id] = replayed_users.get(entry.user_id, 0) + entry.amount
        elif entry.kind == GRANT:
            replayed_pool -= entry.amount
            replayed_users[entry.user_id] = replayed_users.get(entry.user_id, 0) + entry.amount
        elif entry.kind == CHARGE:
            spent += entry.amount
            if entry.user_id is None:
                replayed_pool -= entry.amount
            else:
                replayed_users[entry.user_id] = replayed_users.get(entry.user_id, 0) - entry.amount
    replay_matches = replayed_pool == pool and replayed_users == dict(users)
    return Conservation(
        external_in=external_in,
        pool=pool,
        users=sum(users.values()),
        spent=spent,
        replay_matches=replay_matches,
    )
