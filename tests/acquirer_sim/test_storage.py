"""Ledger and journal files against real processes: SIGKILL mid-commit, locks held by others, restarts.

Every child process says when it has reached the moment that matters (a line on stdout)
and holds there until the parent kills it or tells it to go on (a line on stdin): no test
here waits for a time to pass.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from possim.acquirer_sim.ledger import Ledger, LedgerBusyError, LedgerWait, read_ledger
from possim.pos_sim.journal import Journal, read_journal
from possim.pos_sim.records import TxnRecord
from possim.protocol.storage import StoreError

ROOT = Path(__file__).resolve().parent.parent.parent
PAN = "4000000000000002"


@contextmanager
def child(script: str, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A python process running ``script``; yields once it printed ``ready``; never leaks it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == ready, f"child said {line!r} (exit {proc.poll()})"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def tell(proc: subprocess.Popen[str], expect: str) -> None:
    """Send the child its go-ahead line and wait for its answer."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == expect


def key(n: int) -> tuple[str, str, str]:
    return ("POS00001", f"{n:06d}", "1125100000")


def record(txn_id: int, status: str = "approved") -> TxnRecord:
    return TxnRecord(txn_id=txn_id, intent=f"b{txn_id}", kind="purchase", mti="0200", stan=f"{txn_id:06d}",
                     transmission="1125100000", pan=PAN, amount=2500, completion_amount=2500, started_at=0.0,
                     status=status)


# A child that commits three sales, then starts a big transaction, says "writing" and waits to be killed.
LEDGER_WRITER = """
import sys
from possim.acquirer_sim.ledger import Ledger
ledger = Ledger(sys.argv[1], default_balance=100_000)
for n in range(1, 4):
    ledger.record(1.0, ("POS00001", f"{n:06d}", "1125100000"), "0200", "4000000000000002", 2500, "r", "a",
                  "00", "debited", "debit", b"answer")
ledger.conn.execute("PRAGMA cache_size = 5")  # spill to disk before the commit
ledger.conn.execute("BEGIN IMMEDIATE")
for n in range(4, 20_000):
    ledger.conn.execute("INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount) "
                        "VALUES (1, 'POS00001', ?, '1125100000', '4000000000000002', 'debit', 2500)", (f"{n:06d}",))
ledger.conn.execute("UPDATE accounts SET balance = 0")
print("writing", flush=True)
sys.stdin.readline()
"""


def assert_three_sales(conn: sqlite3.Connection) -> None:
    assert conn.execute("SELECT COUNT(*), SUM(amount) FROM entries").fetchone() == (3, 7500)
    assert conn.execute("SELECT COUNT(*) FROM originals").fetchone() == (3,)
    assert conn.execute("SELECT balance FROM accounts").fetchone() == (100_000 - 7500,)


def test_ledger_killed_mid_commit_is_recovered_by_readers_and_by_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with child(LEDGER_WRITER.replace("sys.argv[1]", repr(str(path))), "writing") as proc:
        kill(proc)
    assert (tmp_path / "ledger.db-wal").exists()
    conn = read_ledger(path)
    assert_three_sales(conn)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM entries")
    conn.close()
    restarted = Ledger(path)
    assert_three_sales(restarted.conn)
    assert restarted.find(key(2)) is not None
    restarted.close()


def test_a_hot_rollback_journal_left_by_an_older_ledger_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    legacy = LEDGER_WRITER.replace("ledger = Ledger(sys.argv[1], default_balance=100_000)",
                                   "ledger = Ledger(sys.argv[1], default_balance=100_000)\n"
                                   "ledger.conn.execute('PRAGMA journal_mode=DELETE')")
    with child(legacy.replace("sys.argv[1]", repr(str(path))), "writing") as proc:
        kill(proc)
    assert (tmp_path / "ledger.db-journal").exists()  # hot: a read-only open would fail on it
    naive = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        naive.execute("SELECT COUNT(*) FROM entries").fetchone()
    naive.close()
    conn = read_ledger(path)
    assert_three_sales(conn)
    conn.close()
    assert not (tmp_path / "ledger.db-journal").exists()
    restarted = Ledger(path)
    assert restarted.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert_three_sales(restarted.conn)
    restarted.close()


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE" if sys.argv[2] == "write" else "BEGIN")
before = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
print("locked", flush=True)
sys.stdin.readline()
after = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
conn.execute("COMMIT")
print(f"released {before} {after}", flush=True)
sys.stdin.readline()
"""


def holder(path: Path, lock: str) -> str:
    return LOCK_HOLDER.replace("sys.argv[1]", repr(str(path))).replace("sys.argv[2]", repr(lock))


def test_a_write_locked_ledger_is_waited_for_retried_and_the_wait_reported(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    waits: list[LedgerWait] = []
    ledger = Ledger(path, on_wait=waits.append, busy_timeout=0.2)
    with child(holder(path, "write"), "locked") as proc:
        pauses: list[float] = []

        def pause(seconds: float) -> None:  # the first retry pause: the other process lets go now
            pauses.append(seconds)
            if len(pauses) == 1:
                tell(proc, "released 0 0")

        ledger.sleep = pause
        ledger.record(1.0, key(1), "0200", PAN, 2500, "r", "a", "00", "debited", "debit", b"answer")
    assert ledger.find(key(1)) is not None
    assert len(pauses) == 1
    assert len(waits) == 1 and waits[0].operation == "record" and waits[0].attempts == 2
    assert waits[0].seconds >= 0.2
    ledger.close()


def test_a_ledger_busy_through_every_retry_raises_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, sleep=lambda _: None, busy_timeout=0.01)
    with child(holder(path, "write"), "locked"):
        with pytest.raises(LedgerBusyError) as caught:
            ledger.record(1.0, key(1), "0200", PAN, 2500, "r", "a", "00", "debited", "debit", b"answer")
        assert caught.value.wait.attempts > 1
    assert ledger.find(key(1)) is None and not ledger.conn.in_transaction
    ledger.close()


def test_a_reader_holding_its_snapshot_does_not_block_a_ledger_write(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    with child(holder(path, "read"), "locked") as proc:
        ledger = Ledger(path, busy_timeout=0.2, sleep=lambda _: pytest.fail("the write was refused"))
        ledger.record(1.0, key(1), "0200", PAN, 2500, "r", "a", "00", "debited", "debit", b"answer")
        tell(proc, "released 0 0")  # the reader kept its snapshot while the write committed
    ledger.close()
    reader = read_ledger(path)
    assert reader.execute("SELECT COUNT(*) FROM entries").fetchone() == (1,)
    reader.close()


def test_reopening_a_ledger_keeps_the_balances_of_existing_accounts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(path)
    ledger.open_account(PAN, 10_000)
    ledger.record(1.0, key(1), "0200", PAN, 3000, "r", "a", "00", "debited", "debit", b"answer")
    ledger.close()
    restarted = Ledger(path)
    restarted.open_account(PAN, 10_000)  # the scenario's accounts, opened again on restart
    restarted.open_account("4000000000000010", 500)
    assert restarted.balances() == {PAN: (7000, 0), "4000000000000010": (500, 0)}
    restarted.close()


def test_bad_files_are_refused_in_one_line_and_left_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    before = other.read_bytes()
    for opener in (Ledger, Journal, read_ledger, read_journal):
        for bad in (text, other):
            with pytest.raises(StoreError, match=f"^{re.escape(str(bad))}: not a possim"):
                opener(bad)
    assert other.read_bytes() == before and text.read_text().startswith("not a database")
    with pytest.raises(StoreError, match="no such file"):
        read_ledger(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(StoreError, match="not a possim journal"):
        read_journal(_ledger_file(tmp_path))


def _ledger_file(folder: Path) -> Path:
    path = folder / "a-ledger.db"
    Ledger(path).close()
    return path


# A terminal that journals three sales and a STAN, then dies in the middle of a transaction.
JOURNAL_WRITER = """
import sys
from possim.pos_sim.journal import Journal
from possim.pos_sim.records import TxnRecord
journal = Journal(sys.argv[1], tid="POS00001")
def record(n, status):
    return TxnRecord(txn_id=n, intent=f"b{n}", kind="purchase", mti="0200", stan=f"{n:06d}",
                     transmission="1125100000", pan="4000000000000002", amount=2500, completion_amount=2500,
                     started_at=0.0, status=status)
for n in range(1, 4):
    journal.save_stan(f"{n:06d}")
    journal.write(record(n, "approved"))
journal.conn.execute("PRAGMA cache_size = 5")
journal.conn.execute("BEGIN")
for n in range(1, 20_000):
    journal.write(record(n, "unknown"))
journal.save_stan("999999")
print("writing", flush=True)
sys.stdin.readline()
"""


def test_a_killed_terminal_journal_reopens_with_what_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with child(JOURNAL_WRITER.replace("sys.argv[1]", repr(str(path))), "writing") as proc:
        kill(proc)
    reader = read_journal(path)
    assert reader.execute("SELECT COUNT(*) FROM journal").fetchone() == (3,)
    reader.close()
    journal = Journal(path, tid="POS00001")
    assert [(r.txn_id, r.status) for r in journal.load()] == [(1, "approved"), (2, "approved"), (3, "approved")]
    assert journal.last_stan() == "000003"
    journal.close()


def test_the_last_stan_is_kept_per_terminal_across_reopens(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path, tid="POS00001")
    assert journal.last_stan() is None
    journal.save_stan("000041")
    journal.save_stan("000042")
    journal.write(record(1))
    journal.close()
    again = Journal(path, tid="POS00001")
    other = Journal(path, tid="POS00002")
    assert again.last_stan() == "000042" and other.last_stan() is None
    assert [r.txn_id for r in again.load()] == [1]
    again.close()
    other.close()


def test_in_memory_journals_start_empty_and_keep_their_stan() -> None:
    journal = Journal(tid="POS00001")
    assert journal.load() == [] and journal.last_stan() is None
    journal.save_stan("000007")
    assert journal.last_stan() == "000007"
    journal.close()
