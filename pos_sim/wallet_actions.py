"""What the QR terminal asks its driver to do, besides sending and timing (``pos_sim.actions``)."""

from __future__ import annotations

from dataclasses import dataclass

from possim.pos_sim.actions import CancelTimer, Send, StartTimer
from possim.pos_sim.records import SaleStatus
from possim.pos_sim.wallet_journal import WalletRecord
from possim.protocol.events import Event


@dataclass(frozen=True, slots=True)
class WriteWallet:
    """Persist this wallet record before executing any later action."""

    record: WalletRecord


@dataclass(frozen=True, slots=True)
class WalletResult:
    """What the cashier's screen shows for a wallet payment (the customer reacts to it)."""

    txn_id: int
    intent: str
    status: SaleStatus
    display: str


WalletAction = Send | StartTimer | CancelTimer | WriteWallet | WalletResult | Event
