"""The terminal's journal record of one transaction, and the values its fields take.

The states are ``StrEnum`` members: the journal stores their string values unchanged, so the
checker, which reads the journal's SQLite text, sees the same words as before.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import Literal

Kind = Literal["purchase", "auth"]


class SaleStatus(StrEnum):
    """What the terminal knows about the sale: pending -> approved | declined | unknown ->
    reversed | failed | approved (after a status query)."""

    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    UNKNOWN = "unknown"
    REVERSED = "reversed"
    FAILED = "failed"


class ReversalState(StrEnum):
    """Where the reversal of this sale stands. ``armed`` is the record written *before* the
    original leaves (it survives a power loss); ``pending`` means one is owed and being sent;
    ``escalated`` (CUP profile) means its tries ran out and the case was handed to the acquirer:
    the terminal sends no more, the acquirer's error handling settles the money."""

    NONE = "none"
    ARMED = "armed"
    PENDING = "pending"
    ACKED = "acked"
    ESCALATED = "escalated"


class CompletionState(StrEnum):
    """The completion advice (0220) of an authorization: owed, acknowledged, refused or given up."""

    NONE = "none"
    PENDING = "pending"
    ACKED = "acked"
    REJECTED = "rejected"
    LOST = "lost"


#: Sales whose fate the terminal still has to find out (or to tell the cashier).
UNSETTLED = frozenset({SaleStatus.PENDING, SaleStatus.UNKNOWN})


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
    status: SaleStatus = SaleStatus.PENDING
    response_code: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    reversal: ReversalState = ReversalState.NONE
    reversal_stan: str | None = None
    reversal_attempts: int = 0
    #: CUP profile: field 39 of the reversal, why it is sent (98 no answer, A0 MAC error, 06 other).
    reversal_reason: str | None = None
    query_attempts: int = 0
    completion: CompletionState = CompletionState.NONE
    completion_stan: str | None = None
    completion_attempts: int = 0
    #: CUP profile: field 7 of the online completion, so its reversal can copy it.
    completion_transmission: str | None = None
    late_responses: int = 0
    finished_at: float | None = None
    display: str = ""

    def __post_init__(self) -> None:
        """A record read back from the journal carries plain strings: make them states again."""
        if type(self.status) is not SaleStatus:  # a snapshot's fields are states already
            self.status = SaleStatus(self.status)
        if type(self.reversal) is not ReversalState:
            self.reversal = ReversalState(self.reversal)
        if type(self.completion) is not CompletionState:
            self.completion = CompletionState(self.completion)

    def snapshot(self) -> TxnRecord:
        """A frozen-in-time copy for the journal (the live record keeps changing): every field
        read in one call and passed to the constructor, which is cheaper than setting slot by slot."""
        return TxnRecord(*_FIELD_VALUES(self))


#: A record's field values in the constructor's order.
_FIELD_VALUES = attrgetter(*(f.name for f in fields(TxnRecord)))
