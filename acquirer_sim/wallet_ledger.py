"""The wallet gateway's ledger: customers' wallet balances, trades and money movements, in SQLite.

It lives in the acquirer's ledger database, beside the card tables, so the checker and the
reconciliation read one book of record for both kinds of payment. Tables:

- ``wallet_accounts``: one row per customer wallet (balance in minor units).
- ``wallet_trades``: one row per merchant order, keyed by terminal id and ``out_trade_no``
  (the merchant order number, the idempotency key), with its trade state. An order the
  gateway closed before any pay arrived (a cancel or a not-found query came first) is a row
  with no payment code: a tombstone, so the late pay is refused.
- ``wallet_entries``: every charge and refund, one row each: the money of an order is their
  sum, never the state column.

Every change of money is one SQL transaction (the connection runs in autocommit mode). A trade's
``state`` is a :class:`WalletTradeState` (its text is the column's, the providers' words) and changes
only through ``TRADE_MOVES``, checked against the state the row holds: an illegal move (a revoked
order charged again) raises and changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from possim.protocol.storage import transaction
from possim.protocol.transitions import Transitions

#: A wallet order's key: terminal id, merchant order number.
OrderKey = tuple[str, str]

SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet_accounts (wallet TEXT PRIMARY KEY, balance INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wallet_trades (
    tid TEXT NOT NULL, out_trade_no TEXT NOT NULL, provider TEXT NOT NULL, auth_code TEXT, wallet TEXT,
    amount INTEGER NOT NULL, state TEXT NOT NULL, trade_no TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, close_reason TEXT, duplicates INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tid, out_trade_no));
CREATE INDEX IF NOT EXISTS wallet_trades_order ON wallet_trades (out_trade_no);
CREATE TABLE IF NOT EXISTS wallet_entries (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, tid TEXT NOT NULL, out_trade_no TEXT NOT NULL,
    wallet TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL);
"""


class WalletTradeState(StrEnum):
    """Where a merchant order stands at the gateway (``wallet_trades.state``): the providers' trade states."""

    #: Opened; the customer has not confirmed (or the gateway waits for the password).
    USERPAYING = "USERPAYING"
    #: Not paid (WeChat Pay's word for an order still waiting).
    NOTPAY = "NOTPAY"
    #: Paid: the customer's wallet was charged.
    SUCCESS = "SUCCESS"
    #: Refused: the wallet could not pay.
    PAYERROR = "PAYERROR"
    #: Closed unpaid (cancelled, expired), or a tombstone for an order closed before its pay came.
    CLOSED = "CLOSED"
    #: Paid, then refunded (a cancel after payment, a refund).
    REVOKED = "REVOKED"


_T = WalletTradeState
#: An order opens waiting for the customer, refused at once (no funds) or as a closed tombstone; a
#: waiting order is paid, refused or closed; a paid one is refunded once. Closed, refused and revoked
#: are final: a revoked order is never charged again.
TRADE_MOVES: Transitions[WalletTradeState] = Transitions("wallet trade", [_T.USERPAYING, _T.PAYERROR, _T.CLOSED], {
    _T.USERPAYING: [_T.SUCCESS, _T.PAYERROR, _T.CLOSED],
    _T.NOTPAY: [_T.CLOSED],
    _T.SUCCESS: [_T.REVOKED],
})
#: Orders still waiting for the customer (a confirm or the order's expiry may end them).
WAITING = frozenset({_T.USERPAYING, _T.NOTPAY})


@dataclass(frozen=True, slots=True)
class Trade:
    """One merchant order as the gateway knows it."""

    key: OrderKey
    provider: str
    auth_code: str | None
    wallet: str | None
    amount: int
    state: WalletTradeState
    trade_no: str | None
    created_at: float
    close_reason: str | None

    def __post_init__(self) -> None:
        """A row read back carries the state's text: make it the state again."""
        if type(self.state) is not WalletTradeState:
            object.__setattr__(self, "state", WalletTradeState(self.state))


class WalletLedger:
    """Wallet balances and trades over an SQLite connection (the acquirer's ledger database)."""

    def __init__(self, conn: sqlite3.Connection, default_balance: int = 100_000_000) -> None:
        self.conn = conn
        self.default_balance = default_balance
        conn.executescript(SCHEMA)
        #: The card ledger's ``lives`` table is in this database (it is, beside an acquirer's card tables).
        self._lives = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lives'"
                                   ).fetchone() is not None

    # -- terminal lives -------------------------------------------------------------------

    def current_life(self, tid: str) -> str | None:
        """Terminal ``tid``'s current life as the card host keeps it (its last sign-on); None for an
        id that never signed on. Read at every request: the card host signs terminals on meanwhile."""
        if not self._lives:
            return None
        row = self.conn.execute("SELECT life FROM lives WHERE tid = ?", (tid,)).fetchone()
        return None if row is None else str(row[0])

    # -- accounts -------------------------------------------------------------------------

    def open_wallet(self, wallet: str, balance: int) -> None:
        """Create the wallet with ``balance`` unless it exists: a restarted gateway keeps balances."""
        self.conn.execute("INSERT OR IGNORE INTO wallet_accounts VALUES (?, ?)", (wallet, balance))

    def balance(self, wallet: str) -> int:
        row = self.conn.execute("SELECT balance FROM wallet_accounts WHERE wallet = ?", (wallet,)).fetchone()
        if row is None:
            self.open_wallet(wallet, self.default_balance)
            return self.default_balance
        return int(row[0])

    def balances(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT wallet, balance FROM wallet_accounts ORDER BY wallet").fetchall())

    # -- trades ---------------------------------------------------------------------------

    def find(self, key: OrderKey) -> Trade | None:
        row = self.conn.execute(
            "SELECT provider, auth_code, wallet, amount, state, trade_no, created_at, close_reason "
            "FROM wallet_trades WHERE tid = ? AND out_trade_no = ?", key).fetchone()
        return None if row is None else Trade(key, *row)

    def used_by_another(self, key: OrderKey) -> bool:
        """Whether another terminal than ``key``'s has an order with this order number (a paid or unpaid
        one; its tombstones do not count, so nobody can block another's cancel by closing numbers first)."""
        row = self.conn.execute("SELECT 1 FROM wallet_trades WHERE out_trade_no = ? AND tid <> ? "
                                "AND auth_code IS NOT NULL LIMIT 1",
                                (key[1], key[0])).fetchone()
        return row is not None

    def create(self, now: float, key: OrderKey, provider: str, auth_code: str | None, wallet: str | None,
               amount: int, state: WalletTradeState, trade_no: str | None, close_reason: str | None = None) -> None:
        """A new order (or a tombstone: no payment code, state CLOSED)."""
        TRADE_MOVES.begin(state)
        self.conn.execute(
            "INSERT INTO wallet_trades (tid, out_trade_no, provider, auth_code, wallet, amount, state, trade_no, "
            "created_at, updated_at, close_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (*key, provider, auth_code, wallet, amount, state, trade_no, now, now, close_reason))

    def count_duplicate(self, key: OrderKey) -> None:
        self.conn.execute("UPDATE wallet_trades SET duplicates = duplicates + 1 WHERE tid = ? AND out_trade_no = ?",
                          key)

    def transition(self, now: float, trade: Trade, state: WalletTradeState, movement: str | None = None,
                   close_reason: str | None = None) -> None:
        """Move an order to ``state``, charging or refunding its amount with it: atomically; the move is
        checked against the state the row holds (``TRADE_MOVES``)."""
        def work() -> None:
            row = self.conn.execute("SELECT state FROM wallet_trades WHERE tid = ? AND out_trade_no = ?",
                                    trade.key).fetchone()
            TRADE_MOVES.move(WalletTradeState(row[0]), state)
            self.conn.execute("UPDATE wallet_trades SET state = ?, updated_at = ?, "
                              "close_reason = COALESCE(?, close_reason) WHERE tid = ? AND out_trade_no = ?",
                              (state, now, close_reason, *trade.key))
            if movement is not None:
                self._move(now, trade, movement)
        self._atomic(work)

    def money(self) -> dict[OrderKey, int]:
        """Per order: the net money taken from the customer (charges minus refunds)."""
        return net_wallet_money(self.conn)

    # -- internals ------------------------------------------------------------------------

    def _move(self, now: float, trade: Trade, kind: str) -> None:
        assert trade.wallet is not None, "money moves only for an order with a wallet"
        sign = -1 if kind == "charge" else 1
        self.balance(trade.wallet)  # opens the wallet with the default balance if new
        self.conn.execute("UPDATE wallet_accounts SET balance = balance + ? WHERE wallet = ?",
                          (sign * trade.amount, trade.wallet))
        self.conn.execute("INSERT INTO wallet_entries (at, tid, out_trade_no, wallet, kind, amount) "
                          "VALUES (?,?,?,?,?,?)", (now, *trade.key, trade.wallet, kind, trade.amount))

    def _atomic(self, work: Callable[[], None]) -> None:
        transaction(self.conn, "BEGIN IMMEDIATE", work)


def net_wallet_money(conn: sqlite3.Connection) -> dict[OrderKey, int]:
    """Per order in a ledger database: charges minus refunds; empty when it holds no wallet tables."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "wallet_entries" not in tables:
        return {}
    rows = conn.execute("SELECT tid, out_trade_no, SUM(CASE kind WHEN 'charge' THEN amount ELSE -amount END) "
                        "FROM wallet_entries GROUP BY tid, out_trade_no")
    return {(tid, order): int(net) for tid, order, net in rows}
