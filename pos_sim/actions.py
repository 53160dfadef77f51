"""What the terminal asks its driver to do. The terminal never does I/O; it returns these."""

from __future__ import annotations

from dataclasses import dataclass

from possim.pos_sim.records import SaleStatus, TxnRecord
from possim.protocol.events import Event


@dataclass(frozen=True, slots=True)
class Send:
    """Put these bytes on the link to the host."""

    data: bytes
    mti: str
    stan: str
    txn_id: int


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Arm (or re-arm) the named timer for virtual or real time ``at``."""

    name: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Disarm the named timer (its exchange was answered)."""

    name: str


@dataclass(frozen=True, slots=True)
class WriteJournal:
    """Persist this snapshot before executing any later action (a reversal record before the original)."""

    record: TxnRecord


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the cashier sees for a transaction; ``status`` is what the journal knows."""

    txn_id: int
    intent: str
    status: SaleStatus
    display: str


@dataclass(frozen=True, slots=True)
class ConfirmLife:
    """The host accepted the terminal's life and the terminal sells under it: journal that, so a
    restart on this journal resumes the life instead of being taken for a lost journal."""

    life: str


@dataclass(frozen=True, slots=True)
class CloseBatch:
    """A settlement closed the batch: journal the new open batch's number and which transactions
    the closed batch held (``settled``, as batch ``closed``), so a restart (``possim settle`` again)
    sends the next batch, not this one. ``settled_through`` is the boundary journals written before
    kept (the highest transaction of their closed batches), carried on unchanged; the sign-on's
    batch number is journaled as one with nothing settled."""

    batch: int
    settled_through: int
    settled: tuple[int, ...] = ()
    closed: int = 0


#: Besides these, the terminal returns trace events (``protocol.events``): a late response, a
#: bad frame, a reversal retry... the driver records them as they are.
Action = Send | StartTimer | CancelTimer | WriteJournal | Outcome | ConfirmLife | CloseBatch | Event
