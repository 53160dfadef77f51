"""The checker against hand-written journals and ledgers (real SQLite, no simulator involved)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from possim.acquirer_sim.ledger import SCHEMA as LEDGER_SCHEMA
from possim.judging.checker import check, open_journals
from possim.pos_sim.journal import Journal
from possim.pos_sim.records import TxnRecord
from possim.protocol.storage import StoreError


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


def entry(conn: sqlite3.Connection, tid: str, stan: str, kind: str = "debit", amount: int = 2500,
          pan: str = "4000000000000002", book: bool = True) -> None:
    """Money under a key of any terminal, with the original the host booked for it."""
    conn.execute("INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount) VALUES (0,?,?,?,?,?,?)",
                 (tid, stan, "1125100000", pan, kind, amount))
    if book:
        conn.execute("INSERT INTO originals (tid, stan, transmission, mti, pan, amount, response_code, state, "
                     "received_at, updated_at) VALUES (?,?,?,'0200',?,?,'00','approved',0,0)",
                     (tid, stan, "1125100000", pan, amount))


def terminal_journal(tid: str, *rows: tuple[int, str, str], path: str | Path = ":memory:",
                     amount: int = 2500) -> Journal:
    j = Journal(path, tid=tid)
    for txn_id, stan, status in rows:
        j.write(TxnRecord(txn_id=txn_id, intent=f"{tid}-{txn_id}", kind="purchase", mti="0200", stan=stan,
                          transmission="1125100000", pan="4000000000000002", amount=amount, completion_amount=amount,
                          started_at=0.0, status=status))
    return j


def test_other_terminals_sharing_the_ledger_are_not_judged_against_this_journal() -> None:
    shared = ledger()
    entry(shared, "POS00001", "000001")
    for n in range(2, 21):
        entry(shared, f"POS{n:05d}", "000001")
    v = check(terminal_journal("POS00001", (1, "000001", "approved")).conn, shared)
    assert v.settled and v.counts["orphaned_debits"] == 0 and v.unjournaled == []
    whole = check(terminal_journal("POS00001", (1, "000001", "approved")).conn, shared, whole_ledger=True)
    assert whole.counts == v.counts
    assert sorted(f.key[0] for f in whole.unjournaled) == [f"POS{n:05d}" for n in range(2, 21)]
    assert {f.finding for f in whole.unjournaled} == {"unjournaled_debit"}


def test_several_journals_are_judged_together_against_one_ledger() -> None:
    shared = ledger()
    entry(shared, "POS00001", "000001")
    entry(shared, "POS00002", "000001")
    entry(shared, "POS00003", "000001")
    journals = [terminal_journal("POS00001", (1, "000001", "approved")).conn,
                terminal_journal("POS00002", (1, "000001", "unknown")).conn]
    v = check(journals, shared)
    assert v.counts["transactions"] == 2 and v.counts["orphaned_debits"] == 1
    assert [(f.finding, f.key[0]) for f in v.findings] == [("orphaned_debit", "POS00002")]


def test_a_terminal_without_rows_is_still_known_by_its_journal() -> None:
    shared = ledger()
    entry(shared, "POS00001", "000009")
    entry(shared, "POS00002", "000001")
    v = check(terminal_journal("POS00001").conn, shared)
    assert v.counts["orphaned_debits"] == 1 and v.findings[0].key[0] == "POS00001"


def test_an_approval_answered_from_another_sale_booked_under_its_key_is_a_phantom() -> None:
    shared = ledger()
    entry(shared, "POS00001", "000001", amount=9900)  # the ledger booked 99.00 under this key
    v = check(terminal_journal("POS00001", (1, "000001", "approved")).conn, shared)
    assert v.counts["phantom_approvals"] == 1 and v.merchant_loss == 2500
    assert v.counts["orphaned_debits"] == 1  # the 99.00 belongs to no sale this terminal journaled
    other_card = ledger()
    entry(other_card, "POS00001", "000001", pan="4000000000000010")
    assert check(terminal_journal("POS00001", (1, "000001", "approved")).conn, other_card).counts[
        "phantom_approvals"] == 1


def test_a_key_repeated_by_a_second_run_of_the_same_terminal_gives_one_debit_for_two_sales() -> None:
    shared = ledger()
    entry(shared, "POS00001", "000001")
    first = terminal_journal("POS00001", (1, "000001", "approved")).conn
    second = terminal_journal("POS00001", (1, "000001", "approved")).conn
    v = check([first, second], shared)
    assert v.counts["approved"] == 2 and v.counts["phantom_approvals"] == 1
    assert v.counts["orphaned_debits"] == 0 and v.counts["double_debits"] == 0 and not v.clean


def test_a_pending_reversal_leaves_the_run_unsettled() -> None:
    j = Journal(":memory:", tid="POS00001")
    j.write(TxnRecord(txn_id=1, intent="b1", kind="purchase", mti="0200", stan="000001", transmission="1125100000",
                      pan="4000000000000002", amount=2500, completion_amount=2500, started_at=0.0, status="failed",
                      reversal="pending"))
    v = check(j.conn, ledger())
    assert v.clean and not v.settled and v.counts["pending_reversals"] == 1


def test_a_folder_of_journal_files_is_read_as_one_fleet(tmp_path: Path) -> None:
    for n in (1, 2):
        terminal_journal(f"POS0000{n}", (1, "000001", "approved"), path=tmp_path / f"t{n}.db").close()
    (tmp_path / "t1.db-wal").write_bytes(b"")
    shared = ledger()
    entry(shared, "POS00001", "000001")
    entry(shared, "POS00002", "000001")
    conns = open_journals(tmp_path)
    try:
        v = check(conns, shared)
    finally:
        for conn in conns:
            conn.close()
    assert len(conns) == 2 and v.counts["approved"] == 2 and v.settled
    (tmp_path / "notes.txt").write_text("not a journal")
    with pytest.raises(StoreError, match=r"notes\.txt: not a possim journal"):
        open_journals(tmp_path)


def test_terminals_numbering_their_baskets_alike_are_not_double_debits() -> None:
    """Every terminal calls its first sale basket-1; the same name at two tills is two baskets."""
    shared = ledger()
    journals = []
    for tid in ("POS00001", "POS00002"):
        entry(shared, tid, "000001")
        j = Journal(":memory:", tid=tid)
        j.write(TxnRecord(txn_id=1, intent="basket-1", kind="purchase", mti="0200", stan="000001",
                          transmission="1125100000", pan="4000000000000002", amount=2500, completion_amount=2500,
                          started_at=0.0, status="approved"))
        journals.append(j.conn)
    v = check(journals, shared)
    assert v.counts["double_debits"] == 0 and v.customer_loss == 0 and v.settled


def _life(path: Path, tid: str, transmission: str) -> Path:
    """One life of a terminal on its own journal file: baskets 1-3, STANs from 000001, all approved."""
    j = Journal(path, tid=tid)
    for n in (1, 2, 3):
        j.write(TxnRecord(txn_id=n, intent=f"basket-{n}", kind="purchase", mti="0200", stan=f"{n:06d}",
                          transmission=transmission, pan="4000000000000002", amount=2500, completion_amount=2500,
                          started_at=0.0, status="approved"))
    j.close()
    return path


def test_two_lives_of_one_terminal_are_judged_apart_on_their_baskets(tmp_path: Path) -> None:
    """A terminal restarted on a fresh journal numbers its baskets (and STANs) from 1 again: six
    sales, each debited once under its own key (field 7 tells the lives apart), are no double debit."""
    from possim.acquirer_sim.ledger import read_ledger
    from possim.pos_sim.journal import read_journal

    first = _life(tmp_path / "first.db", "POS00001", "1125100000")
    second = _life(tmp_path / "second.db", "POS00001", "1125110000")
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as shared:
        shared.executescript(LEDGER_SCHEMA)
        for tx in ("1125100000", "1125110000"):
            for n in (1, 2, 3):
                shared.execute("INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount) "
                               "VALUES (0,'POS00001',?,?,'4000000000000002','debit',2500)", (f"{n:06d}", tx))
    shared.close()
    ledger_conn = read_ledger(path)
    conns = [read_journal(first), read_journal(second)]
    try:
        v = check(conns, ledger_conn)
    finally:
        for conn in [*conns, ledger_conn]:
            conn.close()
    assert v.counts["approved"] == 6 and v.counts["double_debits"] == 0 and v.customer_loss == 0 and v.settled


def test_a_second_debit_within_one_life_is_still_a_double_debit() -> None:
    """Judging per life keeps the real finding: one basket charged under two keys of the same journal."""
    j = Journal(":memory:", tid="POS00001")
    for n in (1, 2):
        j.write(TxnRecord(txn_id=n, intent="basket-1", kind="purchase", mti="0200", stan=f"{n:06d}",
                          transmission="1125100000", pan="4000000000000002", amount=2500, completion_amount=2500,
                          started_at=0.0, status="approved" if n == 2 else "unknown"))
    v = check(j.conn, ledger(("000001", "debit", 2500), ("000002", "debit", 2500)))
    assert v.counts["double_debits"] == 1 and v.customer_loss == 2500 and not v.settled


def test_an_open_hold_is_money_at_risk_and_unsettled() -> None:
    v = check(journal((1, "000001", "approved", "b1")), ledger(("000001", "hold", 2500)))
    assert v.on_hold == 2500 and v.merchant_loss == 0 and not v.settled
    assert v.summary()["money_on_hold"] == "25.00"
    assert "money_on_hold" not in check(journal(), ledger()).summary()  # shown only when something is held


def test_an_escalated_case_not_yet_refunded_leaves_the_run_unsettled() -> None:
    j = Journal(":memory:", tid="POS00001")
    j.write(TxnRecord(txn_id=1, intent="b1", kind="purchase", mti="0200", stan="000001", transmission="1125100000",
                      pan="4000000000000002", amount=2500, completion_amount=2500, started_at=0.0, status="failed",
                      reversal="escalated"))
    owed = check(j.conn, ledger(("000001", "debit", 2500)))
    assert owed.counts["escalated"] == 1 and owed.customer_loss == 2500 and not owed.settled
    refunded = check(j.conn, ledger(("000001", "debit", 2500), ("000001", "refund", 2500)))
    assert refunded.counts["escalated"] == 1 and refunded.customer_loss == 0 and refunded.settled


def test_a_terminal_reports_its_own_outcomes_from_its_journal_alone() -> None:
    from possim.judging.checker import outcomes

    j = Journal(":memory:", tid="POS00001")
    for n, status, reversal in ((1, "approved", "none"), (2, "unknown", "pending"), (3, "reversed", "acked")):
        j.write(TxnRecord(txn_id=n, intent=f"b{n}", kind="purchase", mti="0200", stan=f"{n:06d}",
                          transmission="1125100000", pan="4000000000000002", amount=2500, completion_amount=2500,
                          started_at=0.0, status=status, reversal=reversal))
    assert outcomes(j.conn) == {"transactions": 3, "approved": 1, "declined": 0, "failed": 0, "unknown": 1,
                                "reversed": 1, "pending_reversals": 1, "late_responses": 0}
