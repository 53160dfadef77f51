"""The acquirer's error handling (差错处理): cases the terminal could not settle, refunded.

A CUP terminal tries a reversal a few times (3 by default), then gives up with "冲正不成功
请与客服联系" (reversal failed, contact the acquirer). From then on nothing on the terminal
will return the customer's money: the case belongs to the acquirer. The same happens when a
merchant finds a charge without a sale on the T+1 statement and asks the acquirer, or when
settlement (0500/0320) finds a debit the terminal's batch does not have.

The acquirer keeps those cases in the ledger's ``escalations`` table (:func:`escalate`) and
handles them in a run (:func:`run_error_handling`) that returns the money still taken for
each key: a ``refund`` entry for a debit or a capture, a ``release`` for an open hold. The
refund is booked when the run happens, so it appears as an adjustment on the statement of
that day (the sale's T+2 statement when the run follows the T+1 statement). A case whose
money was already returned (a late reversal got through) or never taken closes with nothing
to refund: the run never returns money twice.

Pure: the ledger is passed in (imported for types only); ``now`` is a parameter, as in the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from possim.acquirer_sim.ledger import Escalation, Key, Ledger

#: Why a case reached error handling.
REVERSAL_FAILED = "reversal_failed"    # the terminal escalated after its last reversal try
MERCHANT_REQUEST = "merchant_request"  # the merchant asked after reading the statement
SETTLEMENT = "settlement"              # settlement found a debit the terminal's batch lacks
#: The sources that fill the table.
SOURCES = ("terminal", "merchant", "settlement")


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What the run did for one case; ``amount`` in minor units (0 when nothing was returned)."""

    key: Key
    outcome: str  # refunded | released | nothing_to_refund
    amount: int
    rrn: str | None
    reason: str

    @property
    def tid(self) -> str:
        return self.key[0]

    @property
    def stan(self) -> str:
        return self.key[1]


def escalate(ledger: Ledger, now: float, key: Key, reason: str = REVERSAL_FAILED, source: str = "terminal") -> bool:
    """Hand the money of ``key`` (terminal id, STAN, field 7 of the original) to error handling.

    The CUP host calls this when a terminal reports that its reversal failed for good (the
    reason may carry the reversal's field 39, e.g. ``"reversal_failed:98"``); settlement calls
    it with ``SETTLEMENT``; the merchant's request with ``MERCHANT_REQUEST``. Idempotent: a
    key already escalated keeps its first case (returns False).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown escalation source {source!r} (one of {', '.join(SOURCES)})")
    return ledger.record_escalation(now, key, reason, source)


def key_for_rrn(ledger: Ledger, rrn: str, tid: str | None = None) -> Key | None:
    """The original a merchant names by RRN (and terminal), as on the statement; None if unknown."""
    rows = ledger.conn.execute("SELECT tid, stan, transmission FROM originals WHERE rrn = ? AND tid = COALESCE(?, tid)",
                               (rrn, tid)).fetchall()
    return (rows[0][0], rows[0][1], rows[0][2]) if len(rows) == 1 else None


def run_error_handling(ledger: Ledger, now: float) -> list[CaseResult]:
    """Handle every open case at ``now``: refund the money still taken, release a hold still open."""
    return [_handle(ledger, now, case) for case in ledger.escalations("open")]


def _handle(ledger: Ledger, now: float, case: Escalation) -> CaseResult:
    net, held = _money(ledger, case.key)
    if net > 0:
        outcome, movements = "refunded", [("refund", net)]
    elif held > 0:
        outcome, movements = "released", [("release", held)]
    else:
        outcome, movements = "nothing_to_refund", []
    ledger.resolve_escalation(now, case.key, outcome, movements)
    orig = ledger.find(case.key)
    return CaseResult(case.key, outcome, net if net > 0 else max(held, 0), orig.rrn if orig else None, case.reason)


def _money(ledger: Ledger, key: Key) -> tuple[int, int]:
    """(money taken and not returned, hold still open) for one key, from the book of record."""
    row = ledger.conn.execute(
        "SELECT COALESCE(SUM(CASE kind WHEN 'debit' THEN amount WHEN 'capture' THEN amount "
        "WHEN 'credit' THEN -amount WHEN 'refund' THEN -amount ELSE 0 END), 0), "
        "COALESCE(SUM(CASE kind WHEN 'hold' THEN amount WHEN 'release' THEN -amount ELSE 0 END), 0) "
        "FROM entries WHERE tid = ? AND stan = ? AND transmission = ?", key).fetchone()
    return int(row[0]), int(row[1])
