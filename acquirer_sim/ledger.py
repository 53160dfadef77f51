"""The acquirer's ledger in SQLite: card accounts, original requests, money movements, closures.

``entries`` is the book of record: every debit, credit, hold, release and capture is one
row. ``originals`` remembers each financial request by its idempotency key (terminal id,
STAN, transmission time) with the exact response bytes, so a duplicate gets the first
answer again. ``closures`` holds keys that must never be debited later: a reversal or a
"not found" status answer that arrived before its original.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

Key = tuple[str, str, str]

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
    state: str
    response: bytes | None


def _empty_image() -> bytes:
    """An empty ledger database as bytes: in-memory ledgers start from it (fuzzing opens thousands)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    image = conn.serialize()
    conn.close()
    return image


_EMPTY = _empty_image()


class Ledger:
    """SQLite-backed ledger; every method that changes money runs in one SQL transaction."""

    def __init__(self, path: str | Path = ":memory:", default_balance: int = 10**9) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        if str(path) == ":memory:":
            self.conn.deserialize(_EMPTY)
        else:
            self.conn.executescript(SCHEMA)
        self.default_balance = default_balance

    def close(self) -> None:
        self.conn.close()

    # -- accounts -------------------------------------------------------------------------

    def open_account(self, pan: str, balance: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO accounts (pan, balance, held) VALUES (?, ?, 0)", (pan, balance))

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

    def count_duplicate(self, key: Key) -> None:
        self.conn.execute("UPDATE originals SET duplicates = duplicates + 1 WHERE tid=? AND stan=? AND transmission=?", key)

    def record(self, now: float, key: Key, mti: str, pan: str, amount: int, rrn: str | None,
               auth_code: str | None, response_code: str, state: str, movement: str | None,
               response: bytes | None = None) -> None:
        """Store an answered original (with the response it gets) and, if approved, its money
        movement: atomically. ``response`` is None when the host crashed before replying."""
        with self._tx():
            self.conn.execute(
                "INSERT INTO originals (tid, stan, transmission, mti, pan, amount, rrn, auth_code, "
                "response_code, state, response, received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*key, mti, pan, amount, rrn, auth_code, response_code, state, response, now, now))
            if movement is not None:
                self._move(now, key, pan, movement, amount, rrn)

    def attach_response(self, key: Key, response: bytes) -> None:
        self.conn.execute("UPDATE originals SET response = ? WHERE tid=? AND stan=? AND transmission=?",
                          (response, *key))

    def transition(self, now: float, orig: Original, state: str, movements: list[tuple[str, int]]) -> None:
        """Move an original to ``state`` with its money movements (credit; release + capture)."""
        with self._tx():
            self.conn.execute("UPDATE originals SET state = ?, updated_at = ? WHERE tid=? AND stan=? AND transmission=?",
                              (state, now, *orig.key))
            for kind, amount in movements:
                self._move(now, orig.key, orig.pan, kind, amount, orig.rrn)

    # -- closures, reversals, advices -----------------------------------------------------

    def close_key(self, now: float, key: Key, reason: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO closures VALUES (?, ?, ?, ?, ?)", (*key, reason, now))

    def closure(self, key: Key) -> str | None:
        row = self.conn.execute("SELECT reason FROM closures WHERE tid=? AND stan=? AND transmission=?", key).fetchone()
        return None if row is None else str(row[0])

    def reversal_seen(self, key: Key) -> str | None:
        """The response code given to an earlier reversal of ``key``, counting this repeat."""
        row = self.conn.execute("SELECT response_code FROM reversals WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE reversals SET repeats = repeats + 1 WHERE tid=? AND stan=? AND transmission=?", key)
        return str(row[0])

    def record_reversal(self, now: float, key: Key, outcome: str, response_code: str) -> None:
        self.conn.execute("INSERT INTO reversals VALUES (?, ?, ?, ?, ?, ?, 0)", (*key, outcome, response_code, now))

    def advice_seen(self, key: Key) -> str | None:
        row = self.conn.execute("SELECT response_code FROM advices WHERE tid=? AND stan=? AND transmission=?",
                                key).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE advices SET repeats = repeats + 1 WHERE tid=? AND stan=? AND transmission=?", key)
        return str(row[0])

    def record_advice(self, now: float, key: Key, amount: int, response_code: str) -> None:
        self.conn.execute("INSERT INTO advices VALUES (?, ?, ?, ?, ?, ?, 0)", (*key, amount, response_code, now))

    # -- internals ------------------------------------------------------------------------

    def _move(self, now: float, key: Key, pan: str, kind: str, amount: int, rrn: str | None) -> None:
        delta_balance, delta_held = _EFFECT[kind](amount)
        self.conn.execute("INSERT OR IGNORE INTO accounts (pan, balance, held) VALUES (?, ?, 0)",
                          (pan, self.default_balance))
        self.conn.execute("UPDATE accounts SET balance = balance + ?, held = held + ? WHERE pan = ?",
                          (delta_balance, delta_held, pan))
        self.conn.execute("INSERT INTO entries (at, tid, stan, transmission, pan, kind, amount, rrn) "
                          "VALUES (?,?,?,?,?,?,?,?)", (now, *key, pan, kind, amount, rrn))

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK on error (the connection itself runs in autocommit mode)."""
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


#: kind -> (balance change, held change) for an amount.
_EFFECT = {
    "debit": lambda a: (-a, 0),
    "credit": lambda a: (a, 0),
    "hold": lambda a: (0, a),
    "release": lambda a: (0, -a),
    "capture": lambda a: (-a, 0),
}
