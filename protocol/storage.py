"""SQLite files that survive a killed process: the settings the ledger and the journal share.

Both sides keep their state in SQLite, and both must come back from a SIGKILL or a power
loss at any instant with every committed transaction and nothing half-written. The
settings, chosen for that (docs/storage.md says why):

- ``journal_mode=WAL``: a commit appends to the write-ahead log; readers (``possim check``
  while the acquirer runs) never block the writer and the writer never blocks them. After
  a crash the next connection replays the committed frames and ignores the torn tail.
- ``synchronous=FULL``: the log is fsynced at every commit, so a commit the acquirer has
  acknowledged (or a journal row the terminal wrote before sending) survives a power loss,
  not only a killed process. It costs about 0.3 ms per commit on the reference machine.
- a busy timeout of :data:`BUSY_TIMEOUT_S`: a connection that finds the database locked
  waits for the lock instead of failing at once (the ledger then retries on its own).
- the directory is fsynced once after a new database file is created, so the file's name
  survives a power loss too (SQLite syncs the directory for its own log files, not for the
  database file it creates).

In-memory databases (``":memory:"``, thousands per second under the fuzzer) get none of
this: there is nothing to recover and nothing to wait for.

A file left by a killed process may hold a hot rollback journal (a ledger written by an
older possim in rollback mode) or an unreplayed log. Only a read-write connection can
recover it; a ``mode=ro`` connection fails with "attempt to write a readonly database".
:func:`open_for_reading` therefore opens read-write, lets SQLite recover, and then makes
the connection query-only.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

MEMORY = ":memory:"
#: How long one statement waits for a lock held by another connection before SQLite gives up.
BUSY_TIMEOUT_S = 5.0
#: The pragmas applied to every database file (never to an in-memory database).
FILE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")
#: Files SQLite keeps beside a database: never databases of their own.
SIDECARS = ("-wal", "-shm", "-journal")


class StoreError(Exception):
    """A database file that cannot be used: the message is one line naming the file."""


class WriteError(StoreError):
    """An open file refused a write (a full disk): whatever was to follow the write must not happen."""


def is_memory(path: str | Path) -> bool:
    return str(path) == MEMORY


def open_file(path: str | Path, schema: str, table: str, what: str,
              busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (or create) a database file for writing, recovered, with the durable settings.

    An existing non-empty file must already hold ``table`` and pass ``PRAGMA quick_check``:
    a file of another kind, or a damaged one, is refused with :class:`StoreError` and left
    untouched. A file this call created and then could not set up (a full disk) is removed
    again. The connection runs in autocommit mode; callers open their own transactions.
    """
    file = Path(path)
    created = not file.exists()
    try:
        conn = sqlite3.connect(str(file), timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open: {exc}") from None
    try:
        if not created and file.stat().st_size:
            _require_table(conn, table, path, what)
            _require_intact(conn, path, what)
        for pragma in FILE_PRAGMAS:
            conn.execute(pragma)
        conn.executescript(schema)  # CREATE ... IF NOT EXISTS: takes no lock when the tables exist
    except sqlite3.Error as exc:
        conn.close()
        if created:
            _remove(file)
        if is_busy(exc):
            raise StoreError(f"{path}: locked by another process for more than {busy_timeout:g} s") from None
        raise failure(exc, path, what) from None
    except StoreError:
        conn.close()
        raise
    if created:
        sync_directory(file)
    return conn


def open_for_reading(path: str | Path, table: str, what: str) -> sqlite3.Connection:
    """A query-only connection to a database file, recovered first if a killed process left it.

    The read-write open lets SQLite roll back a hot journal or replay the log; then
    ``PRAGMA query_only`` makes every write through this connection fail, so judging a
    ledger can never change it. A missing file is refused, never created.
    """
    file = Path(path)
    if not file.is_file():
        raise StoreError(f"{path}: no such file")
    try:
        conn = _connect_uri(file, "rw")
    except StoreError:
        conn = _connect_uri(file, "ro")  # SQLite refused read-write: reading may still work
    try:
        _require_table(conn, table, path, what)
        _require_intact(conn, path, what)
    except StoreError:
        conn.close()
        raise
    conn.execute("PRAGMA query_only=ON")
    return conn


def sync_directory(file: Path) -> None:
    """fsync the folder holding ``file``, so a newly created name survives a power loss."""
    fd = os.open(file.resolve().parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds a lock (worth retrying)."""
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) \
        or "locked" in str(exc)


def transaction(conn: sqlite3.Connection, begin: str, work: Callable[[], object]) -> None:
    """``begin`` (BEGIN or BEGIN IMMEDIATE), ``work``, COMMIT; ROLLBACK if anything fails.

    The connections here run in autocommit mode, so a state change that takes several
    statements is one transaction only when it is wrapped in this.
    """
    conn.execute(begin)
    try:
        work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect_uri(file: Path, mode: str) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"{file.resolve().as_uri()}?mode={mode}", uri=True, timeout=BUSY_TIMEOUT_S,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{file}: cannot open: {exc}") from None


def _require_table(conn: sqlite3.Connection, table: str, path: str | Path, what: str) -> None:
    """The first read: recovers the file if needed, then proves it is the kind we expect."""
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    except sqlite3.Error as exc:
        if "readonly" in str(exc):
            raise StoreError(f"{path}: left mid-commit by a killed process, and not writable here, "
                             "so it cannot be recovered") from None
        raise failure(exc, path, what) from None
    if found is None:
        raise StoreError(f"{path}: not a possim {what}: it has no {table} table")


def _require_intact(conn: sqlite3.Connection, path: str | Path, what: str) -> None:
    """``PRAGMA quick_check``: a damaged page is found before the file is served or judged.

    The quick check reads every page once but skips the index cross-checks of
    ``integrity_check``: it costs one pass over the file, on open only.
    """
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.Error as exc:
        raise failure(exc, path, what) from None
    if rows != [("ok",)]:
        detail = " ".join(str(rows[0][0]).split()) if rows else "no answer"
        raise StoreError(f"{path}: corrupted {what} ({detail}); possim will not use it")


#: SQLite's primary result codes for the failures named to the user (the extended codes add high bits).
_FULL, _CORRUPT, _NOTADB = sqlite3.SQLITE_FULL, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB


def failure(exc: sqlite3.Error, path: str | Path, what: str) -> StoreError:
    """One line naming ``path`` and what went wrong: a full disk, a damaged file, not a database at all."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _NOTADB:
        return StoreError(f"{path}: not a possim {what}: not a SQLite database")
    if code == _CORRUPT:
        return StoreError(f"{path}: corrupted {what} ({exc}); possim will not use it")
    if code == _FULL or disk_full(path):
        return StoreError(f"{path}: cannot write the {what}: the disk is full")
    return StoreError(f"{path}: not a possim {what}: {exc}")


def write_failure(exc: sqlite3.Error, path: str | Path, what: str) -> WriteError:
    """One line for a write that failed on an open file: a full disk said as such."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _FULL or disk_full(path):
        return WriteError(f"{path}: cannot write the {what}: the disk is full")
    return WriteError(f"{path}: cannot write the {what}: {exc}")


def disk_full(path: str | Path) -> bool:
    """Whether the file system holding ``path`` has no block left (SQLite may say "disk I/O error" then)."""
    try:
        return os.statvfs(Path(path).resolve().parent).f_bavail == 0
    except OSError:
        return False


def _remove(file: Path) -> None:
    """Remove a database file this process just created, and SQLite's files beside it."""
    for name in (file, *(file.with_name(file.name + s) for s in SIDECARS)):
        name.unlink(missing_ok=True)


def empty_image(schema: str) -> bytes:
    """An empty database with ``schema``, as bytes: in-memory stores start from it.

    Deserializing an image is several times faster than running the schema again, which
    matters when the fuzzer opens thousands of journals and ledgers a minute.
    """
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema)
    image = conn.serialize()
    conn.close()
    return image
