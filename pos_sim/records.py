"""The terminal's journal record of one transaction, and the values its fields take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["purchase", "auth"]

#: status: pending -> approved | declined | unknown -> reversed | failed | approved
STATUSES = ("pending", "approved", "declined", "unknown", "reversed", "failed")
#: reversal: none | armed (written before the original left) | pending | acked
#: completion (auth flows): none | pending | acked | rejected | lost


@dataclass(slots=True)
class TxnRecord:
    """One row of the terminal journal; mutated by the terminal, snapshotted into the journal."""

    txn_id: int
    intent: str
    kind: Kind
    mti: str
    stan: str
    transmission: str
    pan: str
    amount: int
    completion_amount: int
    started_at: float
    instrument: str = "credit"
    status: str = "pending"
    response_code: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    reversal: str = "none"
    reversal_stan: str | None = None
    reversal_attempts: int = 0
    query_attempts: int = 0
    completion: str = "none"
    completion_stan: str | None = None
    completion_attempts: int = 0
    late_responses: int = 0
    finished_at: float | None = None
    display: str = ""

    def snapshot(self) -> TxnRecord:
        """A frozen-in-time copy for the journal (the live record keeps changing)."""
        twin = object.__new__(TxnRecord)
        for name in self.__slots__:
            object.__setattr__(twin, name, getattr(self, name))
        return twin
