from mockserver.domain.ledger_columns import LedgerColumns
from mockserver.domain.records import CHARGE, DEPOSIT, GRANT


def test_entries_read_back_exactly_what_was_appended():
    ledger = LedgerColumns()
    ledger.append(DEPOSIT, 1_000, None, 1.0, 1_000, "seed")
    ledger.append(GRANT, 250, "alice", 2.0, 250, "welcome")
    charge = ledger[ledger.append(CHARGE, 40, "alice", 3.0, 210, model="m", prompt_tokens=7, completion_tokens=9)]
    assert charge.balance_before == 250
    entries = ledger.entries()
    assert [e.kind for e in entries] == [DEPOSIT, GRANT, CHARGE]
    assert entries[1].description == "welcome" and entries[1].balance_before == 0
    assert (entries[2].model, entries[2].prompt_tokens, entries[2].completion_tokens) == ("m", 7, 9)
    assert entries[2] == charge


def test_ids_are_unique_within_and_across_ledgers():
    first, second = LedgerColumns(), LedgerColumns()
    ids = [first.entry_id(first.append(GRANT, 1, "u", float(i), i + 1)) for i in range(1000)]
    ids.append(second.entry_id(second.append(GRANT, 1, "u", 0.0, 1)))
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("ledg_") and len(i) == 25 for i in ids)


def test_windows_work_in_and_out_of_time_order():
    ledger = LedgerColumns()
    for at in (1.0, 5.0, 9.0):
        ledger.append(GRANT, 1, "u", at, 1)
    assert [e.at for e in ledger.entries(since=5.0)] == [5.0, 9.0]
    ledger.append(GRANT, 1, "u", 2.0, 1)  # the clock was moved back
    assert not ledger.in_time_order
    assert sorted(e.at for e in ledger.entries(since=5.0)) == [5.0, 9.0]
