"""The checker: judges a finished run from recorded facts only.

It reads two SQLite databases, the terminal journal and the host ledger, and nothing
else: no terminal object, no host object, no recovery code. Money is judged from the
ledger's ``entries`` (the book of record), what the customer was told from the journal.

Definitions (per transaction key = terminal id, STAN, transmission time):
- orphaned debit: the host holds money (net debit or capture) but the terminal did not
  approve; also ledger money for a key the terminal never journaled.
- double debit: one purchase intent (the basket the customer pays for, kept across a
  customer's retry) charged under more than one key, or one key charged more than once.
- phantom approval: the terminal approved, the host holds neither money nor a hold.
- pending reversal: a reversal the terminal still owes the host.
- open hold: an authorization hold neither captured nor released.
- customer loss: per intent, what was charged beyond what the customer agreed to pay.
- merchant loss: goods handed over on phantom approvals.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from possim.money import format_amount

Key = tuple[str, str, str]

#: Counts of damage: any of them above zero is a finding.
DAMAGE = ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds")
#: Every measure of the summary, in the order views show them.
MEASURES = ("transactions", "approved", "declined", "failed", "unknown", "reversed", *DAMAGE, "late_responses",
            "customer_loss", "merchant_loss")


def harmful(measure: str, value: object) -> bool:
    """Whether a summary value means someone was hurt: any damage count, any money lost."""
    if measure.endswith("_loss"):
        return value != "0.00"
    return measure in DAMAGE and bool(value)


@dataclass(frozen=True, slots=True)
class Finding:
    finding: str
    txn: int | None
    key: Key
    amount: int

    def as_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "txn": self.txn, "tid": self.key[0], "stan": self.key[1],
                "amount": format_amount(self.amount)}


@dataclass(slots=True)
class Verdict:
    counts: dict[str, int]
    customer_loss: int
    merchant_loss: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(self.counts[k] for k in ("orphaned_debits", "double_debits", "phantom_approvals"))

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "customer_loss": format_amount(self.customer_loss),
                "merchant_loss": format_amount(self.merchant_loss)}


def check(journal: sqlite3.Connection, ledger: sqlite3.Connection) -> Verdict:
    """Compare the terminal journal with the host ledger after the run reached quiescence."""
    txns = journal.execute(
        "SELECT tid, stan, transmission, txn_id, intent, kind, amount, completion_amount, status, "
        "reversal, late_responses FROM journal ORDER BY txn_id").fetchall()
    money = _money(ledger)
    counts = dict.fromkeys(("transactions", "approved", "declined", "failed", "unknown", "reversed",
                            "orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals",
                            "open_holds", "late_responses"), 0)
    findings: list[Finding] = []
    charged_by_intent: dict[str, list[int]] = defaultdict(list)
    agreed_by_intent: dict[str, int] = defaultdict(int)
    merchant_loss = 0
    journaled: set[Key] = set()
    for tid, stan, tx, txn_id, intent, kind, amount, completion, status, reversal, late in txns:
        key = (tid, stan, tx)
        journaled.add(key)
        charged, held = money.get(key, (0, 0))
        counts["transactions"] += 1
        counts[status if status in counts else "unknown"] += 1
        counts["late_responses"] += late
        agreed = (completion if kind == "auth" else amount) if status == "approved" else 0
        agreed_by_intent[intent] += agreed
        if charged:
            charged_by_intent[intent].append(charged)
        if reversal == "pending":
            counts["pending_reversals"] += 1
            findings.append(Finding("pending_reversal", txn_id, key, amount))
        if charged and status != "approved":
            counts["orphaned_debits"] += 1
            findings.append(Finding("orphaned_debit", txn_id, key, charged))
        if status == "approved" and not charged and not held:
            counts["phantom_approvals"] += 1
            merchant_loss += amount
            findings.append(Finding("phantom_approval", txn_id, key, amount))
        if charged > (completion if kind == "auth" else amount):
            counts["double_debits"] += 1
            findings.append(Finding("double_debit", txn_id, key, charged))
    for key, (charged, held) in money.items():
        if key not in journaled and charged:
            counts["orphaned_debits"] += 1
            charged_by_intent[f"unjournaled:{key}"].append(charged)
            findings.append(Finding("orphaned_debit", None, key, charged))
        if held:
            counts["open_holds"] += 1
            findings.append(Finding("open_hold", None, key, held))
    for charges in charged_by_intent.values():
        if len(charges) > 1:
            counts["double_debits"] += len(charges) - 1
    customer_loss = sum(max(0, sum(c) - agreed_by_intent.get(i, 0)) for i, c in charged_by_intent.items())
    return Verdict(counts, customer_loss, merchant_loss, findings)


def _money(ledger: sqlite3.Connection) -> dict[Key, tuple[int, int]]:
    """Per key: (net money taken from the customer, hold still open), from ledger entries."""
    rows = ledger.execute(
        "SELECT tid, stan, transmission, "
        "SUM(CASE kind WHEN 'debit' THEN amount WHEN 'capture' THEN amount WHEN 'credit' THEN -amount ELSE 0 END), "
        "SUM(CASE kind WHEN 'hold' THEN amount WHEN 'release' THEN -amount ELSE 0 END) "
        "FROM entries GROUP BY tid, stan, transmission")
    return {(tid, stan, tx): (int(net), int(held)) for tid, stan, tx, net, held in rows}
