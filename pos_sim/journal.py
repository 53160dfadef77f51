"""The terminal journal in SQLite: one row per transaction, rewritten on every state change.

The journal is the only state a terminal keeps across a power loss or a SIGKILL, so a
journal file gets the durable settings of :mod:`protocol.storage` (write-ahead log, fsync
at every commit, directory fsync when created) and commits every write on its own: a row
written before a message leaves is on disk before it leaves. Opening an existing file
resumes it (a killed terminal's committed rows are all there, its torn last write is not).

Besides the rows, ``terminals`` keeps, per terminal id, the last STAN the terminal used:
a restarted terminal continues after it instead of repeating idempotency keys, and the
checker learns which terminals a journal speaks for even before its first row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from operator import attrgetter
from pathlib import Path

from pos_sim.records import TxnRecord
from protocol.storage import empty_image, is_memory, open_file, open_for_reading

COLUMNS = tuple(f.name for f in fields(TxnRecord))
SCHEMA = f"""CREATE TABLE IF NOT EXISTS journal (
    tid TEXT NOT NULL, {', '.join(c + (' INTEGER PRIMARY KEY' if c == 'txn_id' else '') for c in COLUMNS)});
CREATE TABLE IF NOT EXISTS terminals (tid TEXT PRIMARY KEY, last_stan TEXT)"""
# The column names come from TxnRecord's fields, never from input.
_INSERT = f"INSERT OR REPLACE INTO journal (tid, {', '.join(COLUMNS)}) VALUES (?, {', '.join('?' * len(COLUMNS))})"  # noqa: S608
#: A record's values in column order, read in one call (the journal is written twice per sale).
_VALUES = attrgetter(*COLUMNS)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM journal ORDER BY txn_id"  # noqa: S608
_SELECT_TID = f"SELECT {', '.join(COLUMNS)} FROM journal WHERE tid = ? ORDER BY txn_id"  # noqa: S608


#: An empty journal, deserialized by every in-memory one (fuzzing opens thousands).
_EMPTY = empty_image(SCHEMA)


def read_journal(path: str | Path) -> sqlite3.Connection:
    """A query-only connection to a journal file, recovered first if a killed terminal left it.

    Raises :class:`protocol.storage.StoreError` (one line) for a missing file or a file
    that is not a journal.
    """
    return open_for_reading(path, "journal", "journal")


def fleet_database() -> sqlite3.Connection:
    """One in-memory database for the journals of a whole fleet of terminals (see :meth:`Journal.shared`).

    A SQLite connection per terminal costs about 130 KiB and half a millisecond to open, too
    much for ten thousand terminals in one process; rows of many terminals in one table cost
    nothing extra. Transaction ids must then be unique across the fleet (they are the key).
    """
    conn = sqlite3.connect(":memory:", isolation_level="DEFERRED")
    conn.deserialize(_EMPTY)
    conn.execute("CREATE INDEX IF NOT EXISTS journal_tid ON journal (tid)")
    return conn


class Journal:
    """Write-through store of the terminal's records; ``tid`` names the terminal it belongs to."""

    #: Whether other terminals' rows share this database (a fleet in memory): reads filter by ``tid``.
    shared_db = False

    def __init__(self, path: str | Path = ":memory:", tid: str = "") -> None:
        # A journal file commits every write (it must survive the terminal losing power);
        # an in-memory journal commits at the end of the run.
        self.durable = not is_memory(path)
        if not self.durable:
            self.conn = sqlite3.connect(":memory:", isolation_level="DEFERRED")
            self.conn.deserialize(_EMPTY)
        else:
            self.conn = open_file(path, SCHEMA, "journal", "journal")
        self.tid = tid
        if tid:
            self.conn.execute("INSERT OR IGNORE INTO terminals (tid) VALUES (?)", (tid,))

    @classmethod
    def shared(cls, conn: sqlite3.Connection, tid: str) -> Journal:
        """Terminal ``tid``'s journal inside a fleet's database from :func:`fleet_database` (in memory)."""
        journal = cls.__new__(cls)
        journal.durable, journal.conn, journal.tid, journal.shared_db = False, conn, tid, True
        conn.execute("INSERT OR IGNORE INTO terminals (tid) VALUES (?)", (tid,))
        return journal

    def write(self, record: TxnRecord) -> None:
        self.conn.execute(_INSERT, (self.tid, *_VALUES(record)))

    def load(self) -> list[TxnRecord]:
        """Every record as last written: what a terminal finds in its journal after a power loss."""
        cursor = self.conn.execute(_SELECT_TID, (self.tid,)) if self.shared_db else self.conn.execute(_SELECT)
        rows = cursor.fetchall()
        return [TxnRecord(**dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def save_stan(self, stan: str) -> None:
        """Remember ``stan`` as this terminal's last used STAN: call it before the message leaves."""
        self.conn.execute("INSERT INTO terminals (tid, last_stan) VALUES (?, ?) "
                          "ON CONFLICT (tid) DO UPDATE SET last_stan = excluded.last_stan", (self.tid, stan))

    def last_stan(self) -> str | None:
        """The last STAN this terminal id saved, or None for a terminal that never sent."""
        row = self.conn.execute("SELECT last_stan FROM terminals WHERE tid = ?", (self.tid,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()
