"""The terminal journal in SQLite: one row per transaction, rewritten on every state change."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

from pos_sim.records import TxnRecord

COLUMNS = tuple(f.name for f in fields(TxnRecord))
SCHEMA = f"""CREATE TABLE IF NOT EXISTS journal (
    tid TEXT NOT NULL, {', '.join(c + (' INTEGER PRIMARY KEY' if c == 'txn_id' else '') for c in COLUMNS)})"""


class Journal:
    """Write-through store of the terminal's records; ``tid`` names the terminal it belongs to."""

    def __init__(self, path: str | Path = ":memory:", tid: str = "") -> None:
        # A journal file commits every write (it must survive the terminal losing power);
        # an in-memory journal commits at the end of the run.
        self.conn = sqlite3.connect(str(path), isolation_level=None if str(path) != ":memory:" else "DEFERRED")
        self.conn.execute(SCHEMA)
        self.tid = tid
        self._sql = (f"INSERT OR REPLACE INTO journal (tid, {', '.join(COLUMNS)}) "
                     f"VALUES (?, {', '.join('?' * len(COLUMNS))})")

    def write(self, record: TxnRecord) -> None:
        self.conn.execute(self._sql, (self.tid, *(getattr(record, c) for c in COLUMNS)))

    def load(self) -> list[TxnRecord]:
        """Every record as last written: what a terminal finds in its journal after a power loss."""
        rows = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM journal ORDER BY txn_id").fetchall()
        return [TxnRecord(**dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()
