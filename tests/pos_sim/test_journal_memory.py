"""In-memory journals hold rows back until read; journal files write every record at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from possim.acquirer_sim.ledger import Ledger
from possim.pos_sim.journal import UNWRITTEN_MAX, Journal, fleet_database, write_rows
from possim.pos_sim.records import SaleStatus, TxnRecord


def record(txn_id: int, status: SaleStatus = SaleStatus.PENDING) -> TxnRecord:
    return TxnRecord(txn_id=txn_id, intent=f"basket-{txn_id}", kind="purchase", mti="0200",
                     stan=f"{txn_id:06d}", transmission="1125100000", pan="4111111111111111", amount=1000,
                     completion_amount=1000, started_at=0.0, status=status)


def test_every_read_of_an_in_memory_journal_sees_the_last_write_of_each_record() -> None:
    journal = Journal(tid="T1")
    journal.write(record(1))
    journal.write(record(2))
    journal.write(record(1, SaleStatus.APPROVED))  # the same transaction, rewritten
    assert [(r.txn_id, r.status) for r in journal.load()] == [(1, "approved"), (2, "pending")]
    journal.write(record(2, SaleStatus.DECLINED))
    rows = journal.conn.execute("SELECT txn_id, status FROM journal ORDER BY txn_id").fetchall()
    assert rows == [(1, "approved"), (2, "declined")]
    journal.close()


def test_an_in_memory_journal_holds_back_at_most_its_limit() -> None:
    journal = Journal(tid="T1")
    for txn_id in range(1, UNWRITTEN_MAX + 1):
        journal.write(record(txn_id))
    assert journal._conn.execute("SELECT COUNT(*) FROM journal").fetchone() == (UNWRITTEN_MAX,)
    journal.close()


def test_a_journal_file_writes_each_record_before_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path, tid="T1")
    journal.write(record(1))
    other = sqlite3.connect(path)  # another process's view: what survives a kill now
    try:
        assert other.execute("SELECT txn_id, status FROM journal").fetchall() == [(1, "pending")]
    finally:
        other.close()
        journal.close()


def test_a_fleet_database_is_read_with_the_rows_of_every_terminal() -> None:
    conn = fleet_database()
    unwritten: dict[int, tuple[object, ...]] = {}
    one, two = Journal.shared(conn, "T1", unwritten), Journal.shared(conn, "T2", unwritten)
    one.write(record(1))
    two.write(record(2, SaleStatus.APPROVED))
    assert [r.txn_id for r in two.load()] == [2]  # a load writes the fleet's held rows first
    assert conn.execute("SELECT tid, txn_id FROM journal ORDER BY txn_id").fetchall() == [("T1", 1), ("T2", 2)]
    one.write(record(1, SaleStatus.APPROVED))
    write_rows(conn, unwritten)
    assert conn.execute("SELECT status FROM journal WHERE txn_id = 1").fetchone() == ("approved",)
    conn.close()


def test_the_checker_judges_a_journal_with_rows_still_held_back() -> None:
    from possim.judging.checker import check

    journal, ledger = Journal(tid="T1"), Ledger()
    journal.write(record(1, SaleStatus.APPROVED))  # approved, but the ledger holds no money for it
    verdict = check(journal.conn, ledger.conn)
    assert verdict.counts["transactions"] == 1 and verdict.counts["phantom_approvals"] == 1
    journal.close()
    ledger.close()
