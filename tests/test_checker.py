"""The checker against hand-written journals and ledgers (real SQLite, no simulator involved)."""

from __future__ import annotations

import sqlite3

from acquirer_sim.ledger import SCHEMA as LEDGER_SCHEMA
from pos_sim.journal import Journal
from pos_sim.records import TxnRecord
from possim.checker import check


def ledger(*entries: tuple[str, str, int]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(LEDGER_SCHEMA)
    for stan, kind, amount in entries:
        conn.execute("INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount) VALUES (0,?,?,?,?,?,?)",
                     ("POS00001", stan, "1125100000", "4000000000000002", kind, amount))
    return conn


def journal(*rows: tuple[int, str, str, str]) -> sqlite3.Connection:
    j = Journal(":memory:", tid="POS00001")
    for txn_id, stan, status, intent in rows:
        j.write(TxnRecord(txn_id=txn_id, intent=intent, kind="purchase", mti="0200", stan=stan,
                          transmission="1125100000", pan="4000000000000002", amount=2500, completion_amount=2500,
                          started_at=0.0, status=status))
    return j.conn


def test_debit_behind_a_failed_screen_is_an_orphan() -> None:
    v = check(journal((1, "000001", "unknown", "b1")), ledger(("000001", "debit", 2500)))
    assert v.counts["orphaned_debits"] == 1 and v.customer_loss == 2500


def test_reversed_debit_is_not_an_orphan() -> None:
    v = check(journal((1, "000001", "reversed", "b1")), ledger(("000001", "debit", 2500), ("000001", "credit", 2500)))
    assert v.clean and v.customer_loss == 0


def test_approval_without_money_is_a_phantom() -> None:
    v = check(journal((1, "000001", "approved", "b1")), ledger())
    assert v.counts["phantom_approvals"] == 1 and v.merchant_loss == 2500


def test_same_basket_charged_twice_is_a_double_debit() -> None:
    v = check(journal((1, "000001", "unknown", "b1"), (2, "000002", "approved", "b1")),
              ledger(("000001", "debit", 2500), ("000002", "debit", 2500)))
    assert v.counts["double_debits"] == 1 and v.counts["orphaned_debits"] == 1 and v.customer_loss == 2500


def test_one_key_debited_twice_is_a_double_debit() -> None:
    v = check(journal((1, "000001", "approved", "b1")), ledger(("000001", "debit", 2500), ("000001", "debit", 2500)))
    assert v.counts["double_debits"] >= 1 and v.customer_loss == 2500


def test_ledger_money_the_terminal_never_journaled_is_an_orphan() -> None:
    v = check(journal(), ledger(("000009", "debit", 2500)))
    assert v.counts["orphaned_debits"] == 1


def test_open_hold_is_counted() -> None:
    v = check(journal((1, "000001", "approved", "b1")), ledger(("000001", "hold", 2500)))
    assert v.counts["open_holds"] == 1 and v.counts["phantom_approvals"] == 0
