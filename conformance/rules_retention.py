"""idem.retention: an Idempotency-Key is still replayed after time has passed.

Two ways to let time pass: ``--retention-check SECONDS`` makes a grant first thing, lets the
other rules run (their keys come after it), waits out the rest of SECONDS and replays it;
``--state-file PATH`` saves this run's grant to PATH for the next run (a nightly job, say),
which replays it first. A replay must answer the original (duplicate: true, the same
ledger_id) and credit nothing.

Provenance: the docs promise that the key "prevents duplicates", which must cover a client's
retry; a replay within :data:`RETRY_WINDOW_SECONDS` is held to that. Keeping keys 24 hours is
the contract's choice (``x-quota-retention-seconds``), so a later replay is held to the
contract.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import grant, shown, user_balance
from .checks import parse_money
from .engine import Exchange
from .properties import Probe
from .registry import Cost, Needs, probe
from .rules_idempotency import IDEMPOTENCY, SOURCE

CENT = MICROS_PER_CENT
# A client retries within minutes: the docs' "prevent duplicates" must hold that long.
RETRY_WINDOW_SECONDS = 600
STATE_VERSION = 1
MAX_SAVED_REPLAYS = 3


def key_fingerprint(api_key: str) -> str:
    """Which API key made a saved grant (Idempotency-Keys are scoped per key), never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def read_state(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    grants = document.get("grants") if isinstance(document, dict) else None
    return [g for g in grants if isinstance(g, dict)] if isinstance(grants, list) else []


def write_state(path: Path, grants: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"version": STATE_VERSION, "grants": grants}, indent=2), encoding="utf-8")


def _replay(p: Probe, saved: dict[str, Any], waited: float, steps: list[Exchange]) -> None:
    body = saved["body"]
    again = grant(p, body["external_user_id"], amount=body["amount"], key=saved["key"],
                  description=body.get("description", "quota-conformance retention"))
    read = user_balance(p, body["external_user_id"])
    steps = [*steps, again, read.exchange]
    ok = (again.ok and again.field("duplicate") is True and again.field("ledger_id") == saved["ledger_id"]
          and read.cents == parse_money(saved["balance_after"]))
    mark = DOCUMENTED if waited <= RETRY_WINDOW_SECONDS else CONTRACT
    p.require(ok, steps, "An Idempotency-Key was forgotten",
              f"replayed {waited:.0f} s after the grant, the key answered {again.status} with duplicate "
              f"{shown(again.field('duplicate'))} and ledger_id {shown(again.field('ledger_id'))} (the original: "
              f"{saved['ledger_id']}); the balance is {read.shown}, the grant left {saved['balance_after']}", mark)


@probe("idem.retention", sources=SOURCE, elements=(IDEMPOTENCY,), cost=Cost(2 * CENT + MAX_SAVED_REPLAYS * CENT, 1),
       needs=(Needs.WRITES, Needs.RETENTION), stage=-1)
def idem_retention(p: Probe) -> None:
    """A key is still replayed after time has passed: SECONDS later in the run
    (--retention-check), or in the next run (--state-file), within the contract's 24 hours."""
    options, t = p.t.options, p.t
    fingerprint = key_fingerprint(options.api_key)
    retention = t.facts.retention_seconds
    state = Path(options.state_file) if options.state_file else None
    if state is not None:
        now = time.time()
        saved = [g for g in read_state(state) if g.get("api_key") == fingerprint and g.get("target") == t.base_url]
        fresh = [g for g in saved if 0 <= now - float(g.get("made_at", 0)) <= retention][:MAX_SAVED_REPLAYS]
        for entry in fresh:
            _replay(p, entry, now - float(entry["made_at"]), [])
        if saved and not fresh:
            t.results.note(p.rule.name, f"the saved grants in {state} are older than the contract's "
                                        f"{retention / 3600:g} hours: not replayed")
    user, key = t.guard.new_user(), t.guard.new_idempotency_key()
    body = {"external_user_id": user, "amount": 0.01, "description": "quota-conformance retention"}
    first = grant(p, user, 1, key=key, description=body["description"])
    if not first.ok:
        p.skip(f"the grant to replay later answered {first.status} (see grant.arithmetic)")
    made = {"key": key, "body": body, "ledger_id": first.field("ledger_id"),
            "balance_after": first.field("balance_after"), "made_at": time.time(), "api_key": fingerprint,
            "target": t.base_url}
    if state is not None:
        write_state(state, [made])
        t.results.note(p.rule.name, f"saved a grant in {state} for the next run to replay")
        t.results.skip(p.rule.name, f"nothing to replay yet: {state} held no grant of this key and target from "
                                    "the last 24 hours; this run saved one for the next run")
    seconds = options.retention_check_seconds
    if seconds:
        started = time.monotonic()

        def replay_later() -> None:
            t.sleep(max(0.0, seconds - (time.monotonic() - started)))
            _replay(p, made, seconds, [first])

        t.defer(p.rule.name, replay_later)
