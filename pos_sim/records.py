"""The terminal's journal record of one transaction, and the values its fields take.

The states are ``StrEnum`` members: the journal stores their string values unchanged, so the
checker, which reads the journal's SQLite text, sees the same words as before. Each state has a
transition table (:mod:`protocol.transitions`): the terminals change a state only through it
(``TxnRecord.move_status`` and friends), so a move the design never meant raises where it is
made. The tables are what the terminals do, read from every place they change a state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import Literal

from possim.protocol.transitions import Transitions

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

_S, _R, _C = SaleStatus, ReversalState, CompletionState

#: A card sale: answered (approved, declined), unanswered (unknown: the policy, a status query or a
#: reversal settles it), not charged (failed: the host's answer or 77); an unknown sale is told
#: unknown again by the policy that gives up on it; a CUP pre-authorization whose online completion
#: went unanswered is reversed and shown failed after its approval.
SALE_MOVES: Transitions[SaleStatus] = Transitions("sale status", [_S.PENDING], {
    _S.PENDING: [_S.UNKNOWN, _S.APPROVED, _S.DECLINED, _S.FAILED, _S.REVERSED],
    _S.UNKNOWN: [_S.UNKNOWN, _S.APPROVED, _S.FAILED, _S.REVERSED],
    _S.APPROVED: [_S.FAILED],
})

#: A card sale's reversal: armed before the original leaves and disarmed by its answer; owed
#: (pending) from none, armed, or owed already (resumed after a power loss); then acknowledged, or
#: (CUP) escalated to the acquirer. Acknowledged and escalated are final.
REVERSAL_MOVES: Transitions[ReversalState] = Transitions("reversal", [_R.NONE], {
    _R.NONE: [_R.ARMED, _R.PENDING],
    _R.ARMED: [_R.NONE, _R.PENDING],
    _R.PENDING: [_R.PENDING, _R.ACKED, _R.ESCALATED],
})

#: A pre-authorization's completion advice: owed once approved; acknowledged or refused by the
#: host, or given up (lost). A lost one is tried again (CUP trickle feed) or acknowledged by the
#: batch upload, and may be given up again.
COMPLETION_MOVES: Transitions[CompletionState] = Transitions("completion advice", [_C.NONE], {
    _C.NONE: [_C.PENDING],
    _C.PENDING: [_C.ACKED, _C.REJECTED, _C.LOST],
    _C.LOST: [_C.ACKED, _C.REJECTED, _C.LOST],
})

#: A wallet payment (``pos_sim.wallet_journal.WalletRecord.status``): besides the card moves, an
#: unknown payment may be declined by a query's PAYERROR, and a failed one is reversed (or failed
#: again) when the cancel owed for it is answered.
WALLET_SALE_MOVES: Transitions[SaleStatus] = Transitions("wallet payment status", [_S.PENDING], {
    _S.PENDING: [_S.UNKNOWN, _S.APPROVED, _S.DECLINED, _S.FAILED, _S.REVERSED],
    _S.UNKNOWN: [_S.UNKNOWN, _S.APPROVED, _S.DECLINED, _S.FAILED, _S.REVERSED],
    _S.FAILED: [_S.FAILED, _S.REVERSED],
})

#: A wallet payment's cancel (撤销): armed before the pay leaves, disarmed by a final answer, owed,
#: resumed after a power loss, acknowledged. Nothing is escalated.
CANCEL_MOVES: Transitions[ReversalState] = Transitions("wallet cancel", [_R.NONE], {
    _R.NONE: [_R.ARMED, _R.PENDING],
    _R.ARMED: [_R.NONE, _R.PENDING],
    _R.PENDING: [_R.PENDING, _R.ACKED],
})


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

    def move_status(self, new: SaleStatus) -> None:
        """The sale's status becomes ``new``; raises ``IllegalTransitionError`` for a move ``SALE_MOVES`` lacks."""
        self.status = SALE_MOVES.move(self.status, new)

    def move_reversal(self, new: ReversalState) -> None:
        """The reversal's state becomes ``new``, through ``REVERSAL_MOVES``."""
        self.reversal = REVERSAL_MOVES.move(self.reversal, new)

    def move_completion(self, new: CompletionState) -> None:
        """The completion advice's state becomes ``new``, through ``COMPLETION_MOVES``."""
        self.completion = COMPLETION_MOVES.move(self.completion, new)

    def snapshot(self) -> TxnRecord:
        """A frozen-in-time copy for the journal (the live record keeps changing): every field
        read in one call and passed to the constructor, which is cheaper than setting slot by slot."""
        return TxnRecord(*_FIELD_VALUES(self))


#: A record's field values in the constructor's order.
_FIELD_VALUES = attrgetter(*(f.name for f in fields(TxnRecord)))
