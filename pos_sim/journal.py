"""The terminal journal in SQLite: one row per transaction, rewritten on every state change.

The journal is the only state a terminal keeps across a power loss or a SIGKILL, so a
journal file gets the durable settings of :mod:`protocol.storage` (write-ahead log, fsync
at every commit, directory fsync when created) and commits every write on its own: a row
written before a message leaves is on disk before it leaves. Opening an existing file
resumes it (a killed terminal's committed rows are all there, its torn last write is not).

Besides the rows, ``terminals`` keeps, per terminal id, the last STAN the terminal used:
a restarted terminal continues after it instead of repeating idempotency keys, and the
checker learns which terminals a journal speaks for even before its first row. ``lives``
keeps the life number a terminal process signs on with (``TerminalConfig.life``): written
before its first sign-on, with whether the journal was new then, and confirmed once the host
let it sell; a restart on the journal resumes that life. ``batches`` keeps, under the CUP
profile, the open batch's number (field 60.2), and ``batch_sales`` which transactions each closed
batch held: a restarted terminal settles the next batch, not the same sales again, and a sale
approved only after its batch closed (a status answer, a late answer) is in the next one. Journals
written before ``batch_sales`` existed kept the highest transaction of the closed batches
(``batches.settled_through``); opening one adds the table, and that boundary is still honoured for
the transactions it covers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from operator import attrgetter
from pathlib import Path

from possim.pos_sim.halting import JournalWrites
from possim.pos_sim.records import TxnRecord
from possim.pos_sim.wallet_journal import SCHEMA as WALLET_SCHEMA
from possim.protocol.storage import empty_image, is_memory, open_file, open_for_reading

COLUMNS = tuple(f.name for f in fields(TxnRecord))
SCHEMA = f"""CREATE TABLE IF NOT EXISTS journal (
    tid TEXT NOT NULL, {', '.join(c + (' INTEGER PRIMARY KEY' if c == 'txn_id' else '') for c in COLUMNS)});
CREATE TABLE IF NOT EXISTS terminals (tid TEXT PRIMARY KEY, last_stan TEXT);
CREATE TABLE IF NOT EXISTS lives (tid TEXT PRIMARY KEY, life TEXT NOT NULL, new_journal INTEGER NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batches (tid TEXT PRIMARY KEY, batch INTEGER NOT NULL, settled_through INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batch_sales (tid TEXT NOT NULL, txn_id INTEGER NOT NULL, batch INTEGER NOT NULL,
    PRIMARY KEY (tid, txn_id))"""
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


#: A journal row as written: the terminal id, then the record's values in column order.
Row = tuple[object, ...]

#: How many rows an in-memory journal holds back at most before writing them (see ``Journal.write``).
UNWRITTEN_MAX = 1024


def write_rows(conn: sqlite3.Connection, unwritten: dict[int, Row]) -> None:
    """Write the rows held back, in one ``executemany``, and forget them."""
    if unwritten:
        conn.executemany(_INSERT, unwritten.values())
        unwritten.clear()


class Journal(JournalWrites):
    """The terminal's store of its records; ``tid`` names the terminal it belongs to.

    A journal file writes every record at once (it must survive the terminal losing power).
    An in-memory journal, which nothing outside this process can read, holds the latest row of
    each transaction back until the database is read (``conn``, ``load``, ``commit``) or
    :data:`UNWRITTEN_MAX` rows wait: a sale's two writes (before the request leaves, after the
    answer) then cost one row, written with many others in one statement. Every read sees
    every record written, as before.
    """

    #: Whether other terminals' rows share this database (a fleet in memory): reads filter by ``tid``.
    shared_db = False

    def __init__(self, path: str | Path = ":memory:", tid: str = "") -> None:
        # A journal file commits every write (it must survive the terminal losing power);
        # an in-memory journal commits at the end of the run.
        self.durable = not is_memory(path)
        if not self.durable:
            self._conn = sqlite3.connect(":memory:", isolation_level="DEFERRED")
            self._conn.deserialize(_EMPTY)
        else:
            # the wallet table too, so a file that cannot hold both (a full disk) is never left behind
            self._conn = open_file(path, f"{SCHEMA};\n{WALLET_SCHEMA}", "journal", "journal")
        self.tid = tid
        self.path = str(path)
        self._unwritten: dict[int, Row] = {}
        if tid:
            self._execute("INSERT OR IGNORE INTO terminals (tid) VALUES (?)", (tid,))

    @classmethod
    def shared(cls, conn: sqlite3.Connection, tid: str, unwritten: dict[int, Row] | None = None) -> Journal:
        """Terminal ``tid``'s journal inside a fleet's database from :func:`fleet_database` (in memory).

        ``unwritten``: the rows held back, shared by every journal of the fleet, so the fleet
        writes them all (:func:`write_rows`) before it reads its database.
        """
        journal = cls.__new__(cls)
        journal.durable, journal._conn, journal.tid, journal.shared_db = False, conn, tid, True
        journal.path = ":memory:"
        journal._unwritten = {} if unwritten is None else unwritten
        conn.execute("INSERT OR IGNORE INTO terminals (tid) VALUES (?)", (tid,))
        return journal

    @property
    def conn(self) -> sqlite3.Connection:
        """The journal's database, every record written so far in it."""
        self.flush()
        return self._conn

    def write(self, record: TxnRecord) -> None:
        row = (self.tid, *_VALUES(record))
        if self.durable:
            self._execute(_INSERT, row)
            return
        self._unwritten[record.txn_id] = row
        if len(self._unwritten) >= UNWRITTEN_MAX:
            self.flush()

    def flush(self) -> None:
        """Write the rows held back (an in-memory journal's; a file's are never held)."""
        write_rows(self._conn, self._unwritten)

    def load(self) -> list[TxnRecord]:
        """Every record as last written: what a terminal finds in its journal after a power loss."""
        conn = self.conn
        cursor = conn.execute(_SELECT_TID, (self.tid,)) if self.shared_db else conn.execute(_SELECT)
        rows = cursor.fetchall()
        return [TxnRecord(**dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def save_stan(self, stan: str) -> None:
        """Remember ``stan`` as this terminal's last used STAN: call it before the message leaves."""
        self._execute("INSERT INTO terminals (tid, last_stan) VALUES (?, ?) "
                      "ON CONFLICT (tid) DO UPDATE SET last_stan = excluded.last_stan", (self.tid, stan))

    def _db(self) -> sqlite3.Connection:
        return self._conn

    def _file(self, conn: sqlite3.Connection) -> str:
        return self.path

    def last_stan(self) -> str | None:
        """The last STAN this terminal id saved, or None for a terminal that never sent."""
        row = self._conn.execute("SELECT last_stan FROM terminals WHERE tid = ?", (self.tid,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def is_empty(self) -> bool:
        """No record, no STAN ever sent and no wallet order: a journal that has seen nothing yet."""
        conn = self.conn
        if self.load() or self.last_stan() is not None:
            return False
        wallet = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wallet_journal'").fetchone()
        return wallet is None or conn.execute("SELECT 1 FROM wallet_journal LIMIT 1").fetchone() is None

    def life(self) -> tuple[str, bool] | None:
        """This terminal's life number and whether it began on a new journal not yet allowed to sell; None: none yet."""
        row = self.conn.execute("SELECT life, new_journal, confirmed FROM lives WHERE tid = ?", (self.tid,)).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]) and not row[2])

    def begin_life(self, life: str, new_journal: bool) -> None:
        """Keep ``life`` as this terminal's life (before its sign-on leaves); an existing one is kept."""
        self.conn.execute("INSERT OR IGNORE INTO lives (tid, life, new_journal) VALUES (?, ?, ?)",
                          (self.tid, life, int(new_journal)))

    def confirm_life(self, life: str) -> None:
        """The host let the terminal sell under ``life``: a restart on this journal resumes it."""
        self.conn.execute("UPDATE lives SET confirmed = 1 WHERE tid = ? AND life = ?", (self.tid, life))

    def batch(self) -> tuple[int, int]:
        """The open batch's number and the last transaction of the closed batches; (1, 0) before any settlement."""
        row = self.conn.execute("SELECT batch, settled_through FROM batches WHERE tid = ?", (self.tid,)).fetchone()
        return (1, 0) if row is None else (int(row[0]), int(row[1]))

    def close_batch(self, batch: int, settled_through: int, settled: tuple[int, ...] = (), closed: int = 0) -> None:
        """A settlement closed batch ``closed`` holding the transactions ``settled``: ``batch`` is open now.
        ``settled_through``: an older journal's boundary, kept as it was."""
        self._execute("INSERT OR REPLACE INTO batches (tid, batch, settled_through) VALUES (?, ?, ?)",
                      (self.tid, batch, settled_through))
        for txn_id in settled:
            self._execute("INSERT OR REPLACE INTO batch_sales (tid, txn_id, batch) VALUES (?, ?, ?)",
                          (self.tid, txn_id, closed))

    def settled(self) -> dict[int, int]:
        """The transactions of the closed batches and the batch each was settled in."""
        rows = self.conn.execute("SELECT txn_id, batch FROM batch_sales WHERE tid = ?", (self.tid,)).fetchall()
        return {int(txn_id): int(batch) for txn_id, batch in rows}

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        conn = self.conn
        conn.commit()
        conn.close()
