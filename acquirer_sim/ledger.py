"""The acquirer's ledger in SQLite: card accounts, original requests, money movements, closures.

``entries`` is the book of record: every debit, credit, hold, release and capture is one
row. ``originals`` remembers each financial request by its idempotency key (terminal id,
STAN, transmission time) with the exact response bytes, so a duplicate gets the first
answer again. ``closures`` holds keys that must never be debited later: a reversal or a
"not found" status answer that arrived before its original. ``escalations`` holds the cases
handed to the acquirer's error handling (差错处理): a reversal the terminal gave up on, or a
merchant's request; the error-handling run (:mod:`acquirer_sim.errors_handling`) refunds
them with an entry of kind ``refund``. ``batch_uploads`` holds the sales a terminal uploaded
at settlement (0320), keyed by the sale's key; ``captured`` ones are completions the host got
only then (what settlement recovered). ``lives`` holds each signed-on terminal id's current
life (``docs/architecture.md``, "Terminal lives") and ``key_lives`` the life each original
was booked under, so a key an earlier life used is never answered for a later one; ``sign_ons``
every sign-on taken, so a copy of an ended life's sign-on never makes that life current again.
``deliveries`` holds, per original, whether the transport took its answer (a TCP connection
still open to write it on, a publish to the terminal's topic): the fact ``possim check`` needs
to tell a sale whose journal was lost after the till saw its approval from one whose customer
was charged while the till never heard (a key with no row was never handed over).
``sale_batches`` holds the CUP batch number (60.2) each original carried: the batch it settles
in, and ``batch_checks`` when the last 0500 of each batch was compared: what its batch end settles
(new tables, so a ledger file from before them opens as it is, its sales settled as before).

An original's ``state`` is an :class:`OriginalState` (its text is what the column holds, so a ledger
file reads as before) and changes only through ``ORIGINAL_MOVES``: ``record`` checks the state it
begins in, ``settle_in_progress``, ``transition`` and ``resolve_escalation`` check the move against
the state the row holds inside their transaction, so an illegal one (a reversed original debited
again) raises and changes nothing.

A ledger file gets the durable settings of :mod:`protocol.storage` (write-ahead log,
fsync at every commit, busy timeout, directory fsync when created) and is recovered on
open if a killed acquirer left it mid-commit. Every write to a file is one ``BEGIN
IMMEDIATE`` transaction: it takes the write lock first, so SQLite's busy timeout covers
the whole wait and a transaction never fails half-way for a lock. If the database is
still busy after the timeout (another process held it longer), the whole transaction is
retried with a bounded backoff (:data:`RETRY_DELAYS_S`), and the time spent waiting is
reported to ``on_wait`` so the acquirer can log it; only when every retry fails does
:class:`LedgerBusyError` reach the caller. An in-memory ledger (the simulator and the fuzzer)
skips all of this: nothing else can hold its lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from possim.acquirer_sim.ledger_states import ORIGINAL_MOVES, TAKEN, OriginalState
from possim.acquirer_sim.wallet_ledger import SCHEMA as WALLET_SCHEMA
from possim.protocol.storage import (
    BUSY_TIMEOUT_S,
    empty_image,
    is_busy,
    is_memory,
    open_file,
    open_for_reading,
    transaction,
)

Key = tuple[str, str, str]
_O = OriginalState

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    pan TEXT PRIMARY KEY, balance INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS originals (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, mti TEXT NOT NULL,
    pan TEXT NOT NULL, amount INTEGER NOT NULL, rrn TEXT, auth_code TEXT,
    response_code TEXT NOT NULL, state TEXT NOT NULL, response BLOB,
    received_at REAL NOT NULL, updated_at REAL NOT NULL, duplicates INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, tid TEXT NOT NULL, stan TEXT NOT NULL,
    transmission TEXT NOT NULL, pan TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL,
    rrn TEXT);
CREATE TABLE IF NOT EXISTS closures (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, reason TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS reversals (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, outcome TEXT NOT NULL,
    response_code TEXT NOT NULL, received_at REAL NOT NULL, repeats INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS advices (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, amount INTEGER NOT NULL,
    response_code TEXT NOT NULL, received_at REAL NOT NULL, repeats INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS escalations (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, reason TEXT NOT NULL,
    source TEXT NOT NULL, reported_at REAL NOT NULL, outcome TEXT NOT NULL DEFAULT 'open',
    amount INTEGER NOT NULL DEFAULT 0, resolved_at REAL,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS batch_uploads (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, amount INTEGER NOT NULL,
    outcome TEXT NOT NULL, response_code TEXT NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS lives (
    tid TEXT PRIMARY KEY, life TEXT NOT NULL, earlier INTEGER NOT NULL, stan TEXT NOT NULL,
    transmission TEXT NOT NULL, since REAL NOT NULL, count INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS key_lives (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, life TEXT NOT NULL,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS deliveries (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, delivered INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1, at REAL NOT NULL, PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS settled (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, batch TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS sale_batches (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, batch TEXT NOT NULL,
    PRIMARY KEY (tid, stan, transmission));
CREATE TABLE IF NOT EXISTS batch_checks (
    tid TEXT NOT NULL, batch TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (tid, batch));
CREATE TABLE IF NOT EXISTS sign_ons (
    tid TEXT NOT NULL, stan TEXT NOT NULL, transmission TEXT NOT NULL, life TEXT NOT NULL,
    PRIMARY KEY (tid, stan, transmission, life));
"""


@dataclass(frozen=True, slots=True)
class Original:
    """A financial request the host has answered (or committed before crashing)."""

    key: Key
    mti: str
    pan: str
    amount: int
    rrn: str | None
    auth_code: str | None
    response_code: str
    state: OriginalState
    response: bytes | None

    def __post_init__(self) -> None:
        """A row read back carries the state's text: make it the state again."""
        if type(self.state) is not OriginalState:
            object.__setattr__(self, "state", OriginalState(self.state))


@dataclass(frozen=True, slots=True)
class Life:
    """A terminal id's current life: the number it signed on with, whether the id had sales or
    another life before it, and the key (STAN, field 7) of the sign-on that began it."""

    tid: str
    life: str
    earlier: bool
    stan: str
    transmission: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """A case for the acquirer's error handling: a key whose money the terminal could not return."""

    key: Key
    reason: str
    source: str
    reported_at: float
    outcome: str
    amount: int
    resolved_at: float | None


#: Pauses between retries of a transaction that found the ledger busy past the busy timeout.
RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
#: A wait for the write lock at least this long is reported (an uncontended lock takes microseconds).
REPORT_WAIT_S = 0.05


@dataclass(frozen=True, slots=True)
class LedgerWait:
    """A ledger write that had to wait for another connection's lock before it committed."""

    operation: str
    seconds: float
    attempts: int


class LedgerBusyError(Exception):
    """The ledger stayed locked through every retry: the write did not happen."""

    def __init__(self, operation: str, seconds: float, attempts: int) -> None:
        super().__init__(f"ledger busy: {operation} not written after {attempts} attempts over {seconds:.1f} s")
        self.wait = LedgerWait(operation, seconds, attempts)


#: An empty ledger, deserialized by every in-memory one (fuzzing opens thousands).
_EMPTY = empty_image(SCHEMA)


def read_ledger(path: str | Path) -> sqlite3.Connection:
    """A query-only connection to a ledger file, recovered first if a killed acquirer left it.

    Raises :class:`protocol.storage.StoreError` (one line) for a missing file or a file
    that is not a ledger.
    """
    return open_for_reading(path, "entries", "ledger")


class Ledger:
    """SQLite-backed ledger; every method that changes money runs in one SQL transaction.

    ``on_wait`` hears about every write that waited for a lock (see the module docstring);
    ``sleep`` is the pause between retries and ``busy_timeout`` how long one attempt waits
    for the lock (parameters so tests can drive the retry path without waiting).
    """

    def __init__(self, path: str | Path = ":memory:", default_balance: int = 10**9,
                 on_wait: Callable[[LedgerWait], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.durable = not is_memory(path)
        if self.durable:
            # the wallet tables too, so a file that cannot hold them all (a full disk) is never left behind
            self.conn = open_file(path, f"{SCHEMA};\n{WALLET_SCHEMA}", "entries", "ledger", busy_timeout)
        else:
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            self.conn.deserialize(_EMPTY)
        self.conn.executescript(_BOOKING)
        self.default_balance = default_balance
        self.on_wait = on_wait
        self.sleep = sleep

    def close(self) -> None:
        self.conn.close()

    # -- accounts -------------------------------------------------------------------------

    def open_account(self, pan: str, balance: int) -> None:
        """Create the account with ``balance`` unless it exists: a restarted acquirer keeps balances."""
        self._write("open_account", "INSERT OR IGNORE INTO accounts (pan, balance, held) VALUES (?, ?, 0)",
                    (pan, balance))

    def available(self, pan: str) -> int:
        row = self.conn.execute("SELECT balance - held FROM accounts WHERE pan = ?", (pan,)).fetchone()
        if row is None:
            self.open_account(pan, self.default_balance)
            return self.default_balance
        return int(row[0])

    def balances(self) -> dict[str, tuple[int, int]]:
        rows = self.conn.execute("SELECT pan, balance, held FROM accounts ORDER BY pan")
        return {pan: (balance, held) for pan, balance, held in rows}

    # -- originals ------------------------------------------------------------------------

    def find(self, key: Key) -> Original | None:
        row = self.conn.execute(
            "SELECT mti, pan, amount, rrn, auth_code, response_code, state, response FROM originals "
            "WHERE tid = ? AND stan = ? AND transmission = ?", key).fetchone()
        return None if row is None else Original(key, *row)

    def lookup(self, key: Key, pan: str) -> tuple[Original | None, str | None, int | None]:
        """What the host reads before booking a new original, in one query (a round trip per sale
        each saved): the original answered under ``key`` (:meth:`find`), why the key is closed
        (:meth:`closure`) and the money ``pan`` has available (None for an account not yet opened:
        :meth:`available` opens it)."""
        found: Original | None = None
        closure: str | None = None
        available: int | None = None
        for row in self.conn.execute(_LOOKUP, (*key, *key, pan)):
            if row[0] == 1:
                found = Original(key, *row[1:9])
            elif row[0] == 0:
                closure = str(row[9])
            else:
                available = int(row[9])
        return found, closure, available

    def card_usage(self, pan: str) -> tuple[int, int]:
        """How many sales (and holds) of card ``pan`` still have its money, and how much: what a
        per-card limit counts. Declined, refused, reversed and released ones took nothing."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM originals WHERE pan = ? "
            "AND state IN (?, ?, ?)", (pan, *TAKEN)).fetchone()
        return int(row[0]), int(row[1])

    def count_duplicate(self, key: Key) -> None:
        self._write("count_duplicate",
                    "UPDATE originals SET duplicates = duplicates + 1 WHERE tid=? AND stan=? AND transmission=?", key)

    def record(self, now: float, key: Key, mti: str, pan: str, amount: int, rrn: str | None,
               auth_code: str | None, response_code: str, state: OriginalState, movement: str | None,
               response: bytes | None = None, life: str | None = None, batch: str | None = None) -> None:
        """Store an answered original (with the response it gets) and, if approved, its money
        movement: atomically. ``response`` is None when the host crashed before replying;
        ``life``: the life of a signed-on terminal that sent it; ``batch``: the CUP batch number
        (60.2) it carried, the batch it settles in."""
        ORIGINAL_MOVES.begin(state)
        change_balance, change_held = _EFFECT[movement](amount) if movement is not None else (0, 0)
        # one statement (``_BOOKING``): atomic on its own in memory, one short transaction in a file
        self._write("record", _BOOK, (*key, mti, pan, amount, rrn, auth_code, response_code, state, response, now,
                                      life, batch, movement, self.default_balance, change_balance, change_held))

    def settle_in_progress(self, now: float, key: Key, response_code: str, state: OriginalState, movement: str | None,
                           rrn: str | None, auth_code: str | None, response: bytes | None) -> None:
        """CUP profile: the issuer answered an in-progress original; its state, answer and money
        movement are stored in one transaction (``response`` replaces the request kept meanwhile)."""
        def work() -> None:
            old, pan, amount = self._held_state(key)
            ORIGINAL_MOVES.move(old, state)
            self.conn.execute(
                "UPDATE originals SET response_code=?, state=?, rrn=?, auth_code=?, response=?, updated_at=? "
                "WHERE tid=? AND stan=? AND transmission=?",
                (response_code, state, rrn, auth_code, response, now, *key))
            if movement is not None:
                self._move(now, key, pan, movement, amount, rrn)
        self._atomic("settle_in_progress", work)

    def attach_response(self, key: Key, response: bytes) -> None:
        self._write("attach_response", "UPDATE originals SET response = ? WHERE tid=? AND stan=? AND transmission=?",
                    (response, *key))

    def transition(self, now: float, orig: Original, state: OriginalState, movements: list[tuple[str, int]]) -> None:
        """Move an original to ``state`` with its money movements (credit; release + capture); the move is
        checked against the state the row holds (``ORIGINAL_MOVES``)."""
        def work() -> None:
            ORIGINAL_MOVES.move(self._held_state(orig.key)[0], state)
            self.conn.execute("UPDATE originals SET state = ?, updated_at = ? "
                              "WHERE tid=? AND stan=? AND transmission=?", (state, now, *orig.key))
            for kind, amount in movements:
                self._move(now, orig.key, orig.pan, kind, amount, orig.rrn)
        self._atomic("transition", work)

    def record_delivery(self, now: float, key: Key, delivered: bool) -> None:
        """Whether the answer to the original under ``key`` was handed to the transport; once handed
        over it stays so (a repeat's answer may reach a terminal the first one did not).

        In a file this commit is not fsynced on its own (``synchronous=NORMAL`` for it): a killed
        acquirer keeps it (the write-ahead log is in the operating system's hands), and the next
        money commit fsyncs it with its own. Only a power cut could lose it, and a key without a
        row reads as "never handed over": the cautious side. A sale pays one fsync, as before.
        """
        sql = ("INSERT INTO deliveries (tid, stan, transmission, delivered, at) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (tid, stan, transmission) DO UPDATE SET attempts = attempts + 1, "
               "delivered = MAX(delivered, excluded.delivered), at = excluded.at")
        if not self.durable:
            self.conn.execute(sql, (*key, int(delivered), now))
            return
        self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self._write("record_delivery", sql, (*key, int(delivered), now))
        finally:
            self.conn.execute("PRAGMA synchronous=FULL")

    # -- terminal lives ---------------------------------------------------------------------

    def life(self, tid: str) -> Life | None:
        """Terminal ``tid``'s current life, or None for an id that never signed on."""
        row = self.conn.execute("SELECT life, earlier, stan, transmission FROM lives WHERE tid = ?",
                                (tid,)).fetchone()
        return None if row is None else Life(tid, str(row[0]), bool(row[1]), str(row[2]), str(row[3]))

    def has_sales(self, tid: str) -> bool:
        """Whether the ledger holds any original of ``tid`` (a terminal from before sign-ons existed)."""
        return self.conn.execute("SELECT 1 FROM originals WHERE tid = ? LIMIT 1", (tid,)).fetchone() is not None

    def sign_on(self, now: float, tid: str, life: str, earlier: bool, stan: str, transmission: str) -> None:
        """``life`` is ``tid``'s current life from now on, begun by the sign-on ``stan``, ``transmission``."""
        self._write("sign_on", "INSERT INTO lives (tid, life, earlier, stan, transmission, since) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tid) DO UPDATE SET count = count + "
                    "(life != excluded.life), life = excluded.life, earlier = excluded.earlier, "
                    "stan = excluded.stan, transmission = excluded.transmission, since = excluded.since",
                    (tid, life, int(earlier), stan, transmission, now))

    def note_sign_on(self, tid: str, stan: str, transmission: str, life: str) -> None:
        """Remember a sign-on the host took (its key and life), so a copy of it is known later."""
        self._write("note_sign_on", "INSERT OR IGNORE INTO sign_ons VALUES (?, ?, ?, ?)",
                    (tid, stan, transmission, life))

    def sign_on_seen(self, key: Key, life: str) -> bool:
        """Whether the host already took a sign-on of ``life`` under ``key``: this one is a copy of it."""
        return self.conn.execute("SELECT 1 FROM sign_ons WHERE tid=? AND stan=? AND transmission=? AND life=?",
                                 (*key, life)).fetchone() is not None

    def key_life(self, key: Key) -> str | None:
        """The life an original under ``key`` was booked by; None if booked without one."""
        row = self.conn.execute("SELECT life FROM key_lives WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        return None if row is None else str(row[0])

    # -- closures, reversals, advices -----------------------------------------------------

    def close_key(self, now: float, key: Key, reason: str) -> None:
        self._write("close_key", "INSERT OR IGNORE INTO closures VALUES (?, ?, ?, ?, ?)", (*key, reason, now))

    def closure(self, key: Key) -> str | None:
        row = self.conn.execute("SELECT reason FROM closures WHERE tid=? AND stan=? AND transmission=?", key).fetchone()
        return None if row is None else str(row[0])

    def reversal_seen(self, key: Key) -> str | None:
        """The response code given to an earlier reversal of ``key``, counting this repeat."""
        row = self.conn.execute("SELECT response_code FROM reversals WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        if row is None:
            return None
        self._write("reversal_repeat",
                    "UPDATE reversals SET repeats = repeats + 1 WHERE tid=? AND stan=? AND transmission=?", key)
        return str(row[0])

    def record_reversal(self, now: float, key: Key, outcome: str, response_code: str) -> None:
        self._write("record_reversal", "INSERT INTO reversals VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (*key, outcome, response_code, now))

    def advice_seen(self, key: Key) -> str | None:
        row = self.conn.execute("SELECT response_code FROM advices WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        if row is None:
            return None
        self._write("advice_repeat",
                    "UPDATE advices SET repeats = repeats + 1 WHERE tid=? AND stan=? AND transmission=?", key)
        return str(row[0])

    def record_advice(self, now: float, key: Key, amount: int, response_code: str) -> None:
        self._write("record_advice", "INSERT INTO advices VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (*key, amount, response_code, now))

    # -- settlement -------------------------------------------------------------------------

    def batch_totals(self, tid: str, closed_too: bool = False, batch: str | None = None) -> tuple[int, int]:
        """The money terminal ``tid``'s sales took, as the host's ledger has it: (amount, count of sales).
        Sales of batches a CUP batch end closed are left out unless ``closed_too``; with ``batch``
        (the 60.2 of a CUP 0500) so are sales that carried a later batch number: they wait for theirs."""
        up_to = (int(batch),) if batch is not None and batch.isdigit() else ()
        rows = self.conn.execute(
            "SELECT SUM(CASE kind WHEN 'debit' THEN amount WHEN 'capture' THEN amount "  # noqa: S608 - constant text
            "WHEN 'credit' THEN -amount WHEN 'refund' THEN -amount ELSE 0 END) AS net "
            f"FROM entries WHERE tid = ? {'' if closed_too else _OPEN}{_UP_TO if up_to else ''}"
            "GROUP BY stan, transmission HAVING net > 0", (tid, *up_to)).fetchall()
        return sum(int(r[0]) for r in rows), len(rows)

    def note_settlement(self, now: float, tid: str, batch: str) -> None:
        """A CUP 0500 of ``batch`` was compared now: its batch end settles what was debited by then."""
        self._write("note_settlement", "INSERT OR REPLACE INTO batch_checks VALUES (?, ?, ?)", (tid, batch, now))

    def close_batch(self, now: float, tid: str, batch: str) -> int:
        """CUP batch end of ``batch``: the open sales of ``tid`` the batch held are settled under it and
        leave the totals (the next settlement compares the next batch). Returns how many were settled.

        The batch held the sales that carried no batch number, this one or an earlier one (60.2), and
        were debited by the time its 0500 was compared, or that the terminal uploaded. A sale the issuer
        approved after the 0500 (a late answer the terminal did not have when it settled) stays open: the
        terminal puts it in the batch open when it learns of it, and the host settles it there too. A sale
        that carried a later number waits for its batch. Without a noted 0500, every open sale is settled."""
        number = int(batch) if batch.isdigit() else _ALL  # no number: every open sale, as before
        before = self.conn.total_changes
        self._write("close_batch",
                    "INSERT OR IGNORE INTO settled (tid, stan, transmission, batch, at) "  # noqa: S608 - constant text
                    f"SELECT tid, stan, transmission, ?, ? FROM entries WHERE tid = ? {_OPEN}{_UP_TO}"
                    "GROUP BY stan, transmission "
                    "HAVING SUM(CASE kind WHEN 'debit' THEN amount WHEN 'capture' THEN amount "
                    "WHEN 'credit' THEN -amount WHEN 'refund' THEN -amount ELSE 0 END) > 0 "
                    f"AND (MIN(at) <= COALESCE((SELECT c.at FROM batch_checks c WHERE c.tid = ? AND c.batch = ?), "
                    f"MIN(at)) OR {_UPLOADED})",
                    (batch, now, tid, number, tid, batch))
        return self.conn.total_changes - before

    def last_batch(self, tid: str) -> int:
        """The number of the last CUP batch of ``tid`` a batch end closed here; 0: none yet."""
        row = self.conn.execute("SELECT MAX(CAST(batch AS INTEGER)) FROM settled WHERE tid = ?", (tid,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def find_sale(self, tid: str, stan: str, pan: str) -> Original | None:
        """The latest original of ``tid`` with trace number ``stan`` on card ``pan``: how a CUP batch
        upload names a sale (field 48 carries no field 7)."""
        row = self.conn.execute(
            "SELECT tid, stan, transmission, mti, pan, amount, rrn, auth_code, response_code, state, response "
            "FROM originals WHERE tid = ? AND stan = ? AND pan = ? ORDER BY received_at DESC LIMIT 1",
            (tid, stan, pan)).fetchone()
        return None if row is None else Original((row[0], row[1], row[2]), *row[3:])

    def batch_upload_seen(self, key: Key) -> str | None:
        """The answer given to an earlier upload of this sale, or None."""
        row = self.conn.execute("SELECT response_code FROM batch_uploads WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        return None if row is None else str(row[0])

    def record_batch_upload(self, now: float, key: Key, amount: int, outcome: str, response_code: str) -> None:
        self._write("record_batch_upload", "INSERT OR IGNORE INTO batch_uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*key, amount, outcome, response_code, now))

    # -- error handling (差错处理) ------------------------------------------------------------

    def record_escalation(self, now: float, key: Key, reason: str, source: str) -> bool:
        """Open a case for ``key``; False when one is already open or resolved (a repeat changes nothing)."""
        before = self.conn.total_changes
        self._write("record_escalation", "INSERT OR IGNORE INTO escalations (tid, stan, transmission, reason, "
                    "source, reported_at) VALUES (?, ?, ?, ?, ?, ?)", (*key, reason, source, now))
        return self.conn.total_changes > before

    def escalations(self, outcome: str | None = None) -> list[Escalation]:
        """The cases, oldest first; only those with ``outcome`` ('open' for the ones still to handle)."""
        sql = ("SELECT tid, stan, transmission, reason, source, reported_at, outcome, amount, resolved_at "
               "FROM escalations")
        rows = self.conn.execute(sql + (" WHERE outcome = ?" if outcome else "") + " ORDER BY reported_at, tid, stan",
                                 (outcome,) if outcome else ()).fetchall()
        return [Escalation((r[0], r[1], r[2]), *r[3:]) for r in rows]

    def resolve_escalation(self, now: float, key: Key, outcome: str, movements: list[tuple[str, int]]) -> None:
        """Close a case with its money movements (``refund``, ``release``), atomically.

        A refunded original is marked ``reversed``: a reversal that still arrives later finds
        nothing to reverse and a status query answers REVERSED, so money goes back once.
        """
        def work() -> None:
            amount = sum(a for _, a in movements)
            self.conn.execute("UPDATE escalations SET outcome = ?, amount = ?, resolved_at = ? "
                              "WHERE tid=? AND stan=? AND transmission=?", (outcome, amount, now, *key))
            orig = self.find(key)
            if orig is None or not movements:
                return
            state = ORIGINAL_MOVES.move(orig.state, _O.RELEASED if orig.state is _O.HELD else _O.REVERSED)
            self.conn.execute("UPDATE originals SET state = ?, updated_at = ? "
                              "WHERE tid=? AND stan=? AND transmission=?", (state, now, *key))
            for kind, value in movements:
                self._move(now, key, orig.pan, kind, value, orig.rrn)
        self._atomic("resolve_escalation", work)

    def original_count(self) -> int:
        """How many originals the ledger holds (the host numbers its RRNs on from it)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM originals").fetchone()[0])

    def captured(self, key: Key) -> int:
        """The money the completions of ``key`` captured (what reversing a captured original gives back)."""
        row = self.conn.execute("SELECT COALESCE(SUM(amount), 0) FROM entries WHERE tid=? AND stan=? "
                                "AND transmission=? AND kind='capture'", key).fetchone()
        return int(row[0])

    # -- internals ------------------------------------------------------------------------

    def _held_state(self, key: Key) -> tuple[OriginalState, str, int]:
        """The state, card and amount the row of ``key`` holds now (inside the caller's transaction)."""
        row = self.conn.execute("SELECT state, pan, amount FROM originals WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        return OriginalState(row[0]), str(row[1]), int(row[2])

    def _move(self, now: float, key: Key, pan: str, kind: str, amount: int, rrn: str | None) -> None:
        delta_balance, delta_held = _EFFECT[kind](amount)
        # An account seen for the first time opens with the default balance, then moves: one upsert.
        self.conn.execute("INSERT INTO accounts (pan, balance, held) VALUES (?, ?, ?) ON CONFLICT (pan) "
                          "DO UPDATE SET balance = balance + ?, held = held + ?",
                          (pan, self.default_balance + delta_balance, delta_held, delta_balance, delta_held))
        self.conn.execute("INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount, rrn) "
                          "VALUES (?,?,?,?,?,?,?,?)", (now, *key, pan, kind, amount, rrn))

    def _write(self, operation: str, sql: str, params: tuple[object, ...]) -> None:
        """One statement that changes the ledger: as it is in memory, in a retried transaction in a file."""
        if self.durable:
            self._atomic(operation, lambda: self.conn.execute(sql, params))
        else:
            self.conn.execute(sql, params)

    def _atomic(self, operation: str, work: Callable[[], object]) -> None:
        """Run ``work`` in one transaction; in a file, wait for the lock and retry while busy."""
        if not self.durable:
            self._transaction("BEGIN", work)
            return
        started = time.monotonic()
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
            try:
                locked_at = self._transaction("BEGIN IMMEDIATE", work)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if delay is None:
                    raise LedgerBusyError(operation, time.monotonic() - started, attempt) from exc
                self.sleep(delay)
                continue
            self._report(LedgerWait(operation, locked_at - started, attempt))
            return

    def _transaction(self, begin: str, work: Callable[[], object]) -> float:
        """``storage.transaction``; returns the monotonic time at which BEGIN returned: in a
        file, when the lock was ours."""
        locked_at = 0.0

        def timed() -> None:
            nonlocal locked_at
            locked_at = time.monotonic() if self.durable else 0.0
            work()

        transaction(self.conn, begin, timed)
        return locked_at

    def _report(self, wait: LedgerWait) -> None:
        """Tell ``on_wait`` about a write that waited for the lock (retries and pauses included)."""
        if self.on_wait is not None and (wait.attempts > 1 or wait.seconds >= REPORT_WAIT_S):
            self.on_wait(wait)


#: The original, the closure and the account of one key (:meth:`Ledger.lookup`); the first column
#: tells them apart.

#: A batch number above any 60.2 (six digits): a batch end without one settles every open sale.
_ALL = 10**6
#: Entries of sales no CUP batch end has settled yet.
_OPEN = ("AND NOT EXISTS (SELECT 1 FROM settled s WHERE s.tid = entries.tid "
         "AND s.stan = entries.stan AND s.transmission = entries.transmission) ")
#: The batch number (60.2) an entry's original carried, or NULL for one that carried none.
_CARRIED = ("(SELECT CAST(b.batch AS INTEGER) FROM sale_batches b WHERE b.tid = entries.tid "
            "AND b.stan = entries.stan AND b.transmission = entries.transmission)")
#: Entries of sales that carried no batch number or one up to the batch settled (one parameter).
_UP_TO = f"AND COALESCE({_CARRIED}, 0) <= ? "
#: Whether the terminal uploaded the sale of the group (at its settlement).
_UPLOADED = ("EXISTS (SELECT 1 FROM batch_uploads u WHERE u.tid = entries.tid AND u.stan = entries.stan "
             "AND u.transmission = entries.transmission)")

_LOOKUP = ("SELECT 1, mti, pan, amount, rrn, auth_code, response_code, state, response, NULL FROM originals "
           "WHERE tid = ? AND stan = ? AND transmission = ? UNION ALL "
           "SELECT 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, reason FROM closures "
           "WHERE tid = ? AND stan = ? AND transmission = ? UNION ALL "
           "SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, balance - held FROM accounts WHERE pan = ?")

#: How :meth:`Ledger.record` books an original: one INSERT into a view of the connection's own
#: (``temp``: nothing of it is stored in the ledger file) whose trigger writes the ``originals`` row,
#: its life and batch when it has them and, with a movement (``kind``), the account and the entry,
#: exactly as :meth:`Ledger._move` does. One statement instead of up to five, and atomic by itself:
#: a failing part (a key already booked) undoes the others, so memory needs no BEGIN and COMMIT.
_BOOKING = """
CREATE TEMP VIEW booking (tid, stan, transmission, mti, pan, amount, rrn, auth_code, response_code, state, response,
    at, life, batch, kind, opening, change_balance, change_held)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    WHERE 0;
CREATE TEMP TRIGGER book INSTEAD OF INSERT ON booking BEGIN
    INSERT INTO originals (tid, stan, transmission, mti, pan, amount, rrn, auth_code, response_code, state,
        response, received_at, updated_at)
    VALUES (NEW.tid, NEW.stan, NEW.transmission, NEW.mti, NEW.pan, NEW.amount, NEW.rrn, NEW.auth_code,
        NEW.response_code, NEW.state, NEW.response, NEW.at, NEW.at);
    INSERT OR REPLACE INTO key_lives SELECT NEW.tid, NEW.stan, NEW.transmission, NEW.life WHERE NEW.life IS NOT NULL;
    INSERT OR REPLACE INTO sale_batches SELECT NEW.tid, NEW.stan, NEW.transmission, NEW.batch
        WHERE NEW.batch IS NOT NULL;
    INSERT INTO accounts (pan, balance, held) SELECT NEW.pan, NEW.opening + NEW.change_balance, NEW.change_held
        WHERE NEW.kind IS NOT NULL
        ON CONFLICT (pan) DO UPDATE SET balance = balance + NEW.change_balance, held = held + NEW.change_held;
    INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount, rrn)
        SELECT NEW.at, NEW.tid, NEW.stan, NEW.transmission, NEW.pan, NEW.kind, NEW.amount, NEW.rrn
        WHERE NEW.kind IS NOT NULL;
END;
"""
_BOOK = "INSERT INTO booking VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

#: kind -> (balance change, held change) for an amount.
_EFFECT: dict[str, Callable[[int], tuple[int, int]]] = {
    "debit": lambda a: (-a, 0),
    "credit": lambda a: (a, 0),
    "refund": lambda a: (a, 0),
    "hold": lambda a: (0, a),
    "release": lambda a: (0, -a),
    "capture": lambda a: (-a, 0),
}
