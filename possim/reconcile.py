"""End-of-day reconciliation: the terminal's batch against the host's settlement, with fees.

Like the checker it reads recorded facts only: the terminal journal (what the terminal
will claim in its batch: approved sales) and the host ledger (what actually settles: net
debits and captures per transaction key, reversals, holds), summed by the checker's
:func:`possim.checker.ledger_money`, the one place the money of a key is computed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from possim.checker import QR, Key, ledger_money, wallet_money
from possim.fees import FeeSchedule


def _money(minor: int) -> Decimal:
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Line:
    """One settled transaction and its fee."""

    stan: str
    txn: int | None
    instrument: str
    amount: Decimal
    fee: Decimal
    rule: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str  # orphaned_debit | phantom_approval | amount_differs | reversal_without_original | hold_never_completed
    stan: str
    txn: int | None
    terminal_amount: Decimal
    host_amount: Decimal
    note: str


@dataclass
class Reconciliation:
    batch_count: int
    batch_total: Decimal
    settled_count: int
    settled_total: Decimal
    fees_total: Decimal
    lines: list[Line] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    customer_charged_without_sale: Decimal = Decimal("0.00")
    merchant_goods_given_away: Decimal = Decimal("0.00")
    fees_on_orphaned_debits: Decimal = Decimal("0.00")

    @property
    def balanced(self) -> bool:
        """Money agrees; a reversal without original is listed but moves no money."""
        return not [m for m in self.mismatches if m.kind != "reversal_without_original"]

    @property
    def merchant_net(self) -> Decimal:
        return self.settled_total - self.fees_total

    def as_dict(self) -> dict[str, Any]:
        s = str
        return {
            "balanced": self.balanced,
            "terminal_batch": {"count": self.batch_count, "total": s(self.batch_total)},
            "host_settlement": {"count": self.settled_count, "total": s(self.settled_total)},
            "difference": s(self.settled_total - self.batch_total),
            "fees_total": s(self.fees_total),
            "merchant_net": s(self.merchant_net),
            "timeout_cost": {"customer_charged_without_sale": s(self.customer_charged_without_sale),
                             "merchant_goods_given_away": s(self.merchant_goods_given_away),
                             "fees_on_orphaned_debits": s(self.fees_on_orphaned_debits)},
            "mismatches": [{"kind": m.kind, "stan": m.stan, "txn": m.txn, "terminal": s(m.terminal_amount),
                            "host": s(m.host_amount), "note": m.note} for m in self.mismatches],
            "lines": [{"stan": line.stan, "txn": line.txn, "instrument": line.instrument, "amount": s(line.amount),
                       "fee": s(line.fee), "rule": line.rule} for line in self.lines],
        }


def reconcile(journal: sqlite3.Connection, ledger: sqlite3.Connection, fees: FeeSchedule) -> Reconciliation:
    terminal = {(tid, stan, tx): (txn, status, kind, amount, completion, instrument)
                for tid, stan, tx, txn, status, kind, amount, completion, instrument in journal.execute(
                    "SELECT tid, stan, transmission, txn_id, status, kind, amount, completion_amount, instrument "
                    "FROM journal ORDER BY txn_id")}
    host = ledger_money(ledger)
    _add_wallet(terminal, host, journal, ledger)
    claimed = {k: (v[4] if v[2] == "auth" else v[3]) for k, v in terminal.items() if v[1] == "approved"}
    settled = {k: net for k, (net, _) in host.items() if net > 0}
    rec = Reconciliation(len(claimed), _money(sum(claimed.values())), len(settled), _money(sum(settled.values())),
                         Decimal("0.00"))
    for key in sorted(settled, key=lambda k: k[1]):
        txn = terminal.get(key)
        instrument = txn[5] if txn else "credit"
        fee, rule = fees.fee(_money(settled[key]), instrument)
        rec.lines.append(Line(key[1], txn[0] if txn else None, instrument, _money(settled[key]), fee, rule))
        rec.fees_total += fee
        if key not in claimed:
            rec.fees_on_orphaned_debits += fee
    _mismatches(rec, terminal, claimed, settled, host, ledger)
    return rec


def _mismatches(rec: Reconciliation, terminal: dict[Key, Any], claimed: dict[Key, int], settled: dict[Key, int],
                host: dict[Key, tuple[int, int]], ledger: sqlite3.Connection) -> None:
    for key in sorted(set(claimed) | set(settled), key=lambda k: k[1]):
        txn = terminal[key][0] if key in terminal else None
        mine, theirs = claimed.get(key, 0), settled.get(key, 0)
        if mine and not theirs:
            held = host.get(key, (0, 0))[1]
            if held:
                continue  # reported below as a hold never completed
            rec.merchant_goods_given_away += _money(mine)
            rec.mismatches.append(Mismatch("phantom_approval", key[1], txn, _money(mine), Decimal("0.00"),
                                           "terminal approved, host settles nothing: goods given away"))
        elif theirs and not mine:
            status = terminal[key][1] if key in terminal else "never journaled"
            rec.customer_charged_without_sale += _money(theirs)
            rec.mismatches.append(Mismatch("orphaned_debit", key[1], txn, Decimal("0.00"), _money(theirs),
                                           f"host settles a debit the terminal shows as {status}"))
        elif mine != theirs:
            rec.mismatches.append(Mismatch("amount_differs", key[1], txn, _money(mine), _money(theirs),
                                           "terminal and host disagree on the amount"))
    for key, (_, held) in sorted(host.items(), key=lambda kv: kv[0][1]):
        if held:
            txn = terminal[key][0] if key in terminal else None
            rec.mismatches.append(Mismatch("hold_never_completed", key[1], txn,
                                           _money(claimed.get(key, 0)), _money(held),
                                           "authorization hold still open: never captured nor released"))
    for tid, stan, tx in ledger.execute(
            "SELECT tid, stan, transmission FROM reversals WHERE outcome = 'before_original' ORDER BY received_at"):
        original = ledger.execute("SELECT state FROM originals WHERE tid=? AND stan=? AND transmission=?",
                                  (tid, stan, tx)).fetchone()
        txn = terminal.get((tid, stan, tx), (None,))[0]
        note = ("reversal arrived before its original, which was then refused" if original
                else "reversal for an original the host never received")
        rec.mismatches.append(Mismatch("reversal_without_original", stan, txn, Decimal("0.00"), Decimal("0.00"),
                                       note))


def _add_wallet(terminal: dict[Key, Any], host: dict[Key, tuple[int, int]], journal: sqlite3.Connection,
                ledger: sqlite3.Connection) -> None:
    """Wallet payments join the batch and the settlement: the terminal's approved QR sales, the
    wallet's net charges per order, keyed (terminal id, order number, "QR"), priced at the QR rate."""
    tables = {name for (name,) in journal.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "wallet_journal" in tables:
        for tid, order, txn, status, amount in journal.execute(
                "SELECT tid, out_trade_no, txn_id, status, amount FROM wallet_journal ORDER BY txn_id"):
            terminal[(tid, order, QR)] = (txn, status, "purchase", amount, amount, "qr_wallet")
    for (tid, order), net in wallet_money(ledger).items():
        host[(tid, order, QR)] = (net, 0)
