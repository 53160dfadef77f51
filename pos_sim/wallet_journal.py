"""The QR terminal's journal of wallet payments: one row per order, rewritten on every change.

The rows live in the terminal's journal database (table ``wallet_journal``, beside the card
``journal``), so a power loss keeps both and the checker reads both from the same file. As
for cards, the row is written before its request leaves: a cancel armed before the pay is
sent survives a power loss, and the order number a restarted terminal must query or cancel
is on disk before the gateway can know it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields

from possim.pos_sim.halting import JournalWrites
from possim.pos_sim.records import ReversalState, SaleStatus


@dataclass(slots=True)
class WalletRecord:
    """One wallet payment: mutated by the QR terminal, snapshotted into the journal.

    ``status`` uses the card words: approved, declined (the wallet refused: no funds),
    unknown, failed (nothing was charged: the order closed), reversed (the cancel refunded a
    paid order). ``cancel`` is where the cancel (撤销) stands: armed before the pay leaves,
    pending while owed, acked once answered. ``trade_state`` is the last state the gateway told.
    """

    txn_id: int
    intent: str
    out_trade_no: str
    auth_code: str
    provider: str
    amount: int
    started_at: float
    status: SaleStatus = SaleStatus.PENDING
    trade_state: str | None = None
    cancel: ReversalState = ReversalState.NONE
    cancel_action: str | None = None
    requests: int = 0
    queries: int = 0
    cancels: int = 0
    late_answers: int = 0
    finished_at: float | None = None
    display: str = ""

    def __post_init__(self) -> None:
        """A row read back from the journal carries plain strings: make them states again."""
        self.status = SaleStatus(self.status)
        self.cancel = ReversalState(self.cancel)

    def snapshot(self) -> WalletRecord:
        twin = object.__new__(WalletRecord)
        for name in self.__slots__:
            object.__setattr__(twin, name, getattr(self, name))
        return twin


COLUMNS = tuple(f.name for f in fields(WalletRecord))
SCHEMA = (f"CREATE TABLE IF NOT EXISTS wallet_journal (tid TEXT NOT NULL, "
          f"{', '.join(c + (' INTEGER PRIMARY KEY' if c == 'txn_id' else '') for c in COLUMNS)})")
# The column names come from WalletRecord's fields, never from input.
_INSERT = (f"INSERT OR REPLACE INTO wallet_journal (tid, {', '.join(COLUMNS)}) "  # noqa: S608
           f"VALUES (?, {', '.join('?' * len(COLUMNS))})")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM wallet_journal ORDER BY txn_id"  # noqa: S608


class WalletJournal(JournalWrites):
    """Write-through store of wallet records in a journal connection (the card journal's)."""

    def __init__(self, conn: sqlite3.Connection, tid: str, durable: bool = False) -> None:
        self.conn = conn
        self.tid = tid
        self.durable = durable
        self._execute(SCHEMA, ())

    def write(self, record: WalletRecord) -> None:
        self._execute(_INSERT, (self.tid, *(getattr(record, c) for c in COLUMNS)))

    def _db(self) -> sqlite3.Connection:
        return self.conn

    def _written(self, conn: sqlite3.Connection) -> None:
        """Committed at once in a journal file: it must survive a power loss."""
        if self.durable:
            conn.commit()

    def _file(self, conn: sqlite3.Connection) -> str:
        return next((file for _, name, file in conn.execute("PRAGMA database_list") if name == "main"), "journal")

    def load(self) -> list[WalletRecord]:
        rows = self.conn.execute(_SELECT).fetchall()
        return [WalletRecord(**dict(zip(COLUMNS, row, strict=True))) for row in rows]


def wallet_rows(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """The wallet rows of a journal database (tid first), or none when it has no wallet table."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "wallet_journal" not in tables:
        return []
    return conn.execute(f"SELECT tid, {', '.join(COLUMNS)} FROM wallet_journal ORDER BY txn_id").fetchall()  # noqa: S608
